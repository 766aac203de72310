/**
 * What a session writes to its servers: a unit (the settings replay first, the transaction pgsplit
 * opens, pins and COPY noted, its frames with re-prepares), COPY data, the end of a replica's batch.
 * (local-run.ts sends the probe that stands for a statement pgsplit answers itself behind a batch.)
 * Module-level functions taking the session: no object or closure per session.
 */
import { FrameCoalescer } from '../codec/frame-coalescer.js';
import { Frontend } from '../codec/message-types.js';
import { errors } from '../errors.js';
import type { QueryClassification } from '../router/statement-classifier.js';
import type { ServerLink } from './server-link.js';
import type { Session } from './session.js';
import { TaggedTransaction } from './tagged-transaction.js';
import type { Unit } from './unit.js';
import { endsTransaction, hasEffects, startsCopyFrom } from './statement-effects.js';

/** What a unit's bytes are gathered in: one for every session (one thread; send does not call itself), reset at each unit. */
const SEND_OUT = new FrameCoalescer();

/** Ends `link`'s unsynced batch with a probe and a Sync of pgsplit's (see Expect.endsReplicaBatch). */
export function endReplicaBatch(session: Session, link: ServerLink): void {
  const bytes = session.writer.endBatch(link);
  session.binding.openBatch = null;
  session.awaitingInternal = true;
  writeToServer(session, link, bytes);
}

/** COPY data, CopyDone or CopyFail to the server that runs (or last ran) the COPY. */
export function sendCopy(session: Session, link: ServerLink, u: Unit): void {
  writeToServer(session, link, session.writer.copy(link, u));
}

/**
 * A unit the client sent while `link` reads COPY FROM STDIN data. PostgreSQL ignores Sync and Flush
 * there (so does pgsplit: expecting an answer would wait for good), and ends the connection over
 * anything else (08P01): a Query or extended message goes to that server, which says so itself (or, if
 * the COPY failed meanwhile, answers it as usual). Returns false when the session ended.
 */
export function duringCopyIn(session: Session, u: Unit, link: ServerLink): boolean {
  if (u.frames.length > 0 && u.frames.every((f) => f.type === Frontend.Sync || f.type === Frontend.Flush)) return true;
  if (u.kind === 'terminate') {
    session.close();
    return false;
  }
  if (u.kind === 'local') {
    session.fatal(errors.unexpectedMessage('Q', 'during COPY FROM STDIN: end the COPY with CopyDone or CopyFail first'));
    return false;
  }
  u.decision = { target: link.node.role, reason: 'copy-in', classifications: [] };
  send(session, u, link);
  return true;
}

/** Sends a unit: settings replay first if needed, then its frames with any re-prepares injected. */
export function send(session: Session, u: Unit, link: ServerLink): void {
  const guard = u.guardLsn;
  u.guardLsn = undefined;
  if (guard !== undefined && (link.node.role !== 'replica' || link.tracker.busy || link.tracker.needsSync || session.txStatus !== 'I' ||
    session.binding.openBatch !== null || !u.complete || (u.kind !== 'simple' && u.kind !== 'extended') || u.forcePrimary !== undefined)) {
    // Chosen for a guard it can no longer carry (never expected: mayGuard asked the same): nothing sent,
    // the unit goes back to wait for the replica instead.
    u.guardFailures = Number.MAX_SAFE_INTEGER;
    session.requeue(u);
    return;
  }
  // Frames of one client chunk are adjacent in memory: the coalescer sends them as one buffer, one write.
  const out = SEND_OUT.reset();
  const idle = !link.tracker.busy;
  // A unit with an Execute may start a COPY too: the frame loop below marks it (no second pass here).
  link.tracker.nextUnit(u.kind === 'simple');
  const replay = session.settings.replayFor(link.settingsVersion, link.node.role === 'replica');
  const opening = u.txOpen;
  // Not behind unsynced extended messages: after an error among them the server would skip the replay.
  // Not inside a transaction either, unless pgsplit opens it on this server now (after the replay).
  if (replay !== null && (session.txStatus === 'I' || opening !== undefined) && !session.binding.openBatch && !link.tracker.needsSync) {
    session.writer.replay(link, replay, session.settings.version, out);
  }
  if (opening !== undefined) openTransaction(session, u, link, opening, out);
  // A BEGIN alone may open on a replica behind the session's floor: the transaction's reads owe it (see TaggedTransaction.floorLsn).
  else if (u.txBegin !== undefined) session.tx = link.node.role === 'replica' ? new TaggedTransaction('replica', u.txBegin, u.txFloorLsn ?? null) : null;
  u.txFloorLsn = undefined;
  const d = u.decision;
  // What ran on the primary may be newer than any replica: later replica reads must catch up first.
  let settlePosition: ((insert: string | null) => void) | null = null;
  if (link.node.role === 'primary' && (d !== undefined || u.kind === 'function')) {
    session.consistency.raiseFloor = true;
    // Only a tagged session's next read needs the position (positionBehind says so too): untagged units skip the checks.
    if (session.local.tagged) settlePosition = session.consistency.positionBehind(d !== undefined && mayAskPositionBehind(session, u, link, d.classifications));
  }
  if (d) {
    // A guarded read is counted where it runs: once its guard passed (Session.guardPassed), or when it is sent again.
    if (guard === undefined) session.ctx.events.routed(link.name, d.reason);
    for (const c of d.classifications) {
      notePins(session, c, link);
      const h = c.hints;
      if (h.malformed.length > 0) session.ctx.events.malformedHints(h.malformed.length);
      if (h.route !== undefined || h.maxLagMs !== undefined || h.after !== undefined) session.ctx.events.hints(1);
    }
    if (session.ctx.log.isLevelEnabled('debug')) session.log.debug({ node: link.name, reason: d.reason }, 'routed');
  }
  const endsTx = d !== undefined && endsTransaction(d.classifications);
  u.sentAt = performance.now();
  // Inside a transaction that may still move, a 25006 (a read that wrote after all) moves it, and the
  // unit runs again on the primary: its answer is held back the same way.
  const movable = session.tx !== null && session.tx.phase === 'replica' && session.binding.tx === link && session.txStatus === 'T';
  u.retryable = link.node.role === 'replica' && !u.forcePrimary && u.complete && (session.txStatus === 'I' || movable) &&
    !session.binding.openBatch && (u.kind === 'simple' || u.kind === 'extended');
  if (u.retryable && !link.tracker.busy) session.relay.hold(link);
  let flush = false;
  if (d !== undefined && !link.tracker.skipping && startsCopyFrom(d.classifications, u.complete)) {
    if (u.complete) session.binding.copyPending = { link, unit: u, executes: 0 };
    else {
      // Unsynced: a Flush makes the server answer each Execute (or start the COPY) now. Only on an idle
      // link, so that every Execute's end that comes back is this unit's.
      let executes = 0;
      for (const f of u.frames) if (f.type === Frontend.Execute) executes++;
      if (executes > 0 && idle) {
        session.binding.copyPending = { link, unit: u, executes };
        flush = true;
      }
    }
  }
  if ((u.kind === 'simple' || u.kind === 'function') && link.tracker.needsSync) {
    // Behind unsynced extended messages: the probe's answer tells whether the server runs this or skips
    // it. Either way the batch ends here (a Query or FunctionCall leaves extended mode).
    session.writer.probe(link, out);
  }
  // The guard's answer is swallowed ahead of the held answer (retryable: nothing reaches the client before its first row).
  if (guard !== undefined) session.writer.guard(link, guard, out);
  session.writer.frames(u, link, endsTx, flush, out);
  if (guard !== undefined && u.kind === 'simple') session.writer.guardSync(link, out);
  if (u.kind === 'extended' && !u.complete && d !== undefined && hasEffects(d)) {
    link.tracker.carry(d);
  }
  // A batch stays open until its Sync; so does a server skipping to that Sync after an error.
  session.binding.openBatch = (u.kind === 'extended' && !u.complete) || link.tracker.skipping ? link : null;
  session.binding.last = link;
  if (settlePosition !== null) session.writer.positionQuery(link, (insert) => settlePosition(session.txStatus === 'I' ? insert : null), out);
  writeToServer(session, link, out.take());
}

/**
 * Whether pgsplit may ask the primary's position right behind `u` on `link` (Consistency.positionBehind):
 * only behind a whole unit (a Query, or extended messages up to their Sync) run outside a transaction and
 * opening none of pgsplit's, that cannot start a COPY FROM STDIN (the server would take the Query for
 * bad COPY data), with nothing else from the client waiting (a later unit would make the position stale
 * before it is used).
 */
function mayAskPositionBehind(session: Session, u: Unit, link: ServerLink, classifications: readonly QueryClassification[]): boolean {
  return u.complete && (u.kind === 'simple' || u.kind === 'extended') && session.txStatus === 'I' && u.txOpen === undefined &&
    u.txBegin === undefined && session.input.length === 0 && !link.tracker.skipping && !startsCopyFrom(classifications, true);
}

/**
 * Opens the session's transaction on `link` ahead of `u`: the BEGIN pgsplit answered (and, when it moves
 * from a replica, the statements the primary must know), each a Query whose answer the client never sees.
 * The replica it leaves rolls its side back: it only read.
 */
function openTransaction(session: Session, u: Unit, link: ServerLink, opening: string[], out: FrameCoalescer): void {
  const from = u.txMoveFrom;
  if (from !== undefined && from !== link && session.binding.holds(from)) {
    writeToServer(session, from, session.writer.rollback(from));
    session.log.debug({ from: from.name, to: link.name }, 'transaction moved to the primary');
  }
  // Decided when the unit's server was chosen: a replica gets a BEGIN it accepts (see opening).
  const texts = link.node.role === 'replica' && session.tx !== null ? session.tx.opening(true) : opening;
  session.writer.swallowedQueries(link, texts, out);
  session.binding.tx = link;
  // What the replica's side changed is rolled back there; the replay makes it the primary's.
  if (from !== undefined && session.settingsFrom === from) session.settingsFrom = link;
  const tx = session.tx;
  if (tx !== null && link.node.role === 'replica') {
    tx.phase = 'replica';
    // Opened by a statement that reads nothing, on a replica behind the session's floor: its reads owe it.
    tx.floorLsn = u.txFloorLsn ?? null;
  } else session.tx = null;
}

/**
 * A statement that leaves session state on its server (LISTEN, a temporary table, SQL PREPARE, a WITH
 * HOLD cursor, a session advisory lock, setseed) pins the session to the primary, and in pool.mode
 * transaction to the connection itself (giveBackIdle keeps it); the pool learns what to clean when it
 * comes back at the session's end.
 */
function notePins(session: Session, c: QueryClassification, link: ServerLink): void {
  for (const s of c.statements) {
    const reason = s.pinsPrimary;
    if (reason === undefined) continue;
    link.hold.left?.(reason);
    if (session.perTransaction) session.ctx.events.pinned?.(reason);
    if (session.pinned === null) {
      session.pinned = reason;
      session.log.debug({ reason }, 'session pinned to the primary');
    }
  }
}

export function writeToServer(session: Session, link: ServerLink, bufs: Buffer[]): void {
  // A parked link written to without an attach (COPY data following the last unit, settings read back):
  // no longer the pool's to reclaim.
  link.claim();
  const s = link.conn.socket;
  if (s.destroyed) return;
  if (bufs.length === 1) s.write(bufs[0] as Buffer);
  else if (bufs.length > 1) {
    s.cork();
    for (const b of bufs) s.write(b);
    s.uncork();
  }
  if (s.writableNeedDrain) session.input.serverFull(s);
}
