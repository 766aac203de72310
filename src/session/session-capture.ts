/**
 * A tagged session's deferred BEGIN (routing.transactions: replica-until-write) and the session state
 * pgsplit reads back from a server before it matters: the default transaction isolation (before the
 * first replica read), the settings changed on one server (before another serves the session), the
 * database's sequences. Module-level functions taking the session: no object or closure per session.
 */
import { commandComplete, readyForQuery } from '../codec/backend-messages.js';
import { isAmbiguousEncoding } from '../router/router.js';
import { CAPTURE_SEQUENCES_SQL, SEQUENCE_ROW } from '../router/sequence-catalog.js';
import { isolationOf, mayBeTransactionControl, movableIsolation, parseBeginModes, type Isolation } from '../router/transaction-statements.js';
import type { ServerLink } from './server-link.js';
import type { Session } from './session.js';
import { TaggedTransaction } from './tagged-transaction.js';
import type { Unit } from './unit.js';
import { attachToAsk, detach } from './server-attach.js';
import { writeToServer } from './server-writes.js';

/** The row of a capture that carries the default isolation (no setting has a name with a space). */
const ISOLATION_ROW = ' isolation';
const CAPTURE_ISOLATION_SQL = `SELECT '${ISOLATION_ROW}', pg_catalog.current_setting('default_transaction_isolation')`;

/**
 * What pgsplit answers itself of a tagged session's transaction control (routing.transactions:
 * replica-until-write): 'BEGIN' for a plain BEGIN it defers (see TaggedTransaction), 'COMMIT' /
 * 'ROLLBACK' for the end of a deferred transaction that never ran anything; 'isolation' when the
 * session's default isolation must be asked first; null when the Query goes to a server.
 */
export function deferredTag(session: Session, u: Unit): 'BEGIN' | 'COMMIT' | 'ROLLBACK' | 'isolation' | null {
  const tx = session.tx;
  if (tx === null ? session.txStatus !== 'I' || !session.local.tagged || session.pinned !== null : tx.phase !== 'deferred') return null;
  if (u.queries.length !== 1 || session.binding.copy !== null || isAmbiguousEncoding(session.clientEncoding)) return null;
  // Most of a tagged session's Queries are reads: not classified twice (here, then to be routed).
  if (!mayBeTransactionControl(u.queries[0] as string)) return null;
  const c = session.ctx.router.classify(u.queries[0] as string, session.standardConformingStrings);
  const s = c.statements[0];
  if (s === undefined || c.statements.length !== 1 || c.hints.route !== undefined) return null;
  if (tx !== null) {
    if ((s.transaction === 'commit' || s.transaction === 'rollback') && !s.chain) return s.transaction === 'commit' ? 'COMMIT' : 'ROLLBACK';
    return null;
  }
  if (s.transaction !== 'begin') return null;
  const modes = parseBeginModes(s.text);
  if (modes === null || modes.readOnly === true) return null;
  // Settings changed since they were last read: the default isolation may be among them.
  if (modes.isolation === undefined && session.settingsFrom !== null) return 'isolation';
  const iso = modes.isolation ?? session.isolation;
  if (iso === null) return 'isolation';
  return iso !== 'unknown' && movableIsolation(iso) ? 'BEGIN' : null;
}

/** Answers a deferred BEGIN, or the COMMIT/ROLLBACK of a deferred transaction, as the server would. */
export function answerDeferred(session: Session, tag: 'BEGIN' | 'COMMIT' | 'ROLLBACK', u: Unit): void {
  if (tag === 'BEGIN') {
    const s = session.ctx.router.classify(u.queries[0] as string, session.standardConformingStrings).statements[0];
    session.tx = new TaggedTransaction('deferred', s?.text ?? 'BEGIN');
    session.txStatus = 'T';
    session.local.transactionBegan();
  } else {
    session.tx = null;
    session.txStatus = 'I';
    session.local.transactionEnded(tag === 'COMMIT');
  }
  session.client.write(Buffer.concat([commandComplete(tag), readyForQuery(session.txStatus)]));
}

/**
 * Asks a server what the session holds (one swallowed query): its default_transaction_isolation and,
 * when settings changed there (settingsFrom), the settings made in the session, which then replace the
 * known ones (replayed on the other servers). Asks the link that changed them, else the replica's.
 * False when no link can be asked: the isolation is then 'unknown', and replicas serve no reads that
 * depend on it until it is asked again.
 */
export function captureSession(session: Session): boolean {
  const usable = (l: ServerLink): boolean =>
    session.binding.holds(l) && l.conn.state === 'ready' && !l.tracker.busy && !l.tracker.needsSync && !l.tracker.skipping && session.binding.copy !== l;
  let from = session.settingsFrom;
  if (from !== null && !usable(from)) {
    // Gone or in a state nothing can be asked in: what it changed cannot be read back.
    session.log.warn({ node: from.name }, 'session settings could not be read back from the server that changed them');
    session.settingsFrom = from = null;
  }
  // Otherwise a link that has every setting the session made: its replica's first (what is asked is the
  // same there, and it answers while the primary is down), else any.
  const current = (l: ServerLink): boolean => usable(l) && l.settingsVersion === session.settings.version;
  let link: ServerLink | undefined = from ?? session.binding.replicaLink;
  if (link === undefined || !current(link)) link = from ?? [...session.binding.attached()].find(current);
  if (link === undefined) {
    if (session.perTransaction && from === null && session.binding.empty && !session.connecting) {
      // Every connection went back to the pool: one is borrowed to ask.
      attachToAsk(session);
      return true;
    }
    session.isolation = 'unknown';
    session.settingsFrom = null;
    return false;
  }
  const target = link;
  const withSettings = from === target;
  let seen: Isolation | 'unknown' = 'unknown';
  const values = new Map<string, string>();
  const withSequences = session.sequences.needsLoad(performance.now());
  const sequences: string[] = [];
  const sql = `${withSettings ? `${session.settings.captureSql()} UNION ALL ${CAPTURE_ISOLATION_SQL}` : CAPTURE_ISOLATION_SQL}${withSequences ? ` UNION ALL ${CAPTURE_SEQUENCES_SQL}` : ''}`;
  const bytes = session.writer.internalQuery(target, sql, (row) => {
    if (row === null) {
      session.isolation = seen;
      if (withSequences) session.sequences.load(sequences, performance.now());
      if (withSettings && session.settingsFrom === target) {
        session.settingsFrom = null;
        session.settings.replace(values);
        target.settingsVersion = session.settings.version;
      }
      // A standby session whose default became serializable (a SET inside a READ ONLY transaction
      // there) refuses every statement after it: let it go; the next replica read gets a fresh
      // connection, and the replay never gives a standby a serializable default.
      if (seen === 'serializable' && target.node.role === 'replica' && session.binding.holds(target)) {
        queueMicrotask(() => {
          if (session.binding.holds(target) && !target.tracker.busy && !session.binding.holdsState(target)) detach(session, target);
        });
      }
    } else if (row[0] === ISOLATION_ROW) seen = isolationOf(row[1] ?? '') ?? 'unknown';
    else if (row[0] === SEQUENCE_ROW) {
      if (row[1] !== undefined && row[1] !== null) sequences.push(row[1]);
    }
    else if (row[0] !== undefined && row[0] !== null && row[1] !== undefined && row[1] !== null) values.set(row[0], row[1]);
  });
  session.awaitingInternal = true;
  writeToServer(session, target, bytes);
  return true;
}
