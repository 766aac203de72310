import { Frontend } from '../codec/message-types.js';
import { bindOf, parseOf, readParse } from '../codec/message-fields.js';
import type { Router, RouteDecision } from '../router/router.js';
import {
  isTransactionNeutral, movableIsolation, parseBeginModes, statementsOf, transactionCharacteristics, type Isolation,
} from '../router/transaction-statements.js';
import type { NodeEntry } from '../server/server-nodes.js';
import type { Binding } from './binding.js';
import type { ServerLink } from './server-link.js';
import type { TaggedTransaction } from './tagged-transaction.js';
import type { Unit } from './unit.js';

/**
 * What the chooser reads of the proxy around the session (the session's context satisfies it). Read live,
 * not copied: a reload changes the settings in place.
 */
export interface ChooserContext {
  readonly nodes: { readonly primary: NodeEntry };
  readonly router: Pick<Router, 'decide'>;
  /** routing.transactions: tagged READ COMMITTED transactions start on a replica and move at their first write. */
  readonly transactions: 'replica-until-write' | 'primary';
}

/**
 * The session's state the choice depends on, read live at each choice (the session hands a view of its
 * fields, built once; a test hands a plain object).
 */
export interface ChooserState {
  /** As the server last reported it (ReadyForQuery), or as pgsplit answered a deferred BEGIN. */
  readonly txStatus: 'I' | 'T' | 'E';
  /** A tagged session's transaction that is deferred or open on a replica (routing.transactions). */
  readonly tx: TaggedTransaction | null;
  /** Why the session is pinned to the primary (LISTEN, a temporary table, ...), or null. */
  readonly pinned: string | null;
  /** Reads may go to replicas. */
  readonly tagged: boolean;
  readonly clientEncoding: string | undefined;
  readonly standardConformingStrings: boolean;
  /** The session's default_transaction_isolation: null = not asked yet, 'unknown' = the server did not say. */
  readonly isolation: Isolation | 'unknown' | null;
}

/** The links the session holds, as the chooser reads them (Binding satisfies it; the chooser never changes them). */
export type ChooserLinks = Pick<Binding, 'openBatch' | 'tx' | 'last' | 'replicaLink' | 'linkTo'>;

/** Everything a TargetChooser reads; each is the session's own object, kept by reference. */
export interface ChooserParts {
  readonly ctx: ChooserContext;
  readonly state: ChooserState;
  readonly links: ChooserLinks;
  /**
   * Whether the attached replica still meets a read's requirement, and whether a replica is known to have
   * replayed a position (Consistency satisfies it).
   */
  readonly replicas: { mayStayOn(node: NodeEntry, d: RouteDecision): boolean; hasReplayed(node: NodeEntry, lsn: bigint): boolean };
  /** The sequences of the session's database: reads of them go to the primary (SequenceCatalog satisfies it). */
  readonly sequences: { mentions(text: string): boolean };
  /** The client's prepared statements by name, as Parse payloads (RequestWriter satisfies it). */
  readonly statements: { statement(name: string): Buffer | undefined };
}

/** Where a unit runs: an attached link, or the role of a server still to attach. */
export type Target = ServerLink | 'primary' | 'replica';

/**
 * Where each unit of a session must run. Transactions, open extended batches and COPY stay where they
 * began; a tagged session's transaction opens on a replica while it only reads and moves to the primary
 * at its first write (routing.transactions); otherwise the router decides. It only decides: no sockets,
 * and it changes nothing but the unit's decision fields (decision, txOpen, txMoveFrom, txBegin, floorWait,
 * and the queries and namedPortal it reads from an extended unit's frames). Built once per session.
 */
export class TargetChooser {
  private readonly ctx: ChooserContext;
  private readonly state: ChooserState;
  private readonly links: ChooserLinks;
  private readonly replicas: ChooserParts['replicas'];
  private readonly sequences: ChooserParts['sequences'];
  private readonly statements: ChooserParts['statements'];

  constructor(parts: ChooserParts) {
    this.ctx = parts.ctx;
    this.state = parts.state;
    this.links = parts.links;
    this.replicas = parts.replicas;
    this.sequences = parts.sequences;
    this.statements = parts.statements;
  }

  /**
   * Where `u` must run: an attached link, or the role of a server still to attach. Sets u.decision (the
   * route and its reason, with the unit's classifications), and u.txOpen / u.txMoveFrom / u.txBegin when
   * the unit opens or moves the session's transaction; u.floorWait when the unit must wait for its
   * transaction's replica to replay the session's floor first.
   */
  choose(u: Unit): Target {
    u.txOpen = undefined;
    u.txMoveFrom = undefined;
    u.txBegin = undefined;
    u.txFloorLsn = undefined;
    u.floorWait = undefined;
    const st = this.state;
    const links = this.links;
    const queries = u.kind === 'function' ? [] : this.unitQueries(u);
    // Classify even when affinity decides the server: the session still applies the unit's effects
    // (settings, pins, transaction end) when it completes.
    const d = queries.length > 0
      ? this.ctx.router.decide(queries, {
        tagged: st.tagged, pinned: st.pinned, clientEncoding: st.clientEncoding, standardConformingStrings: st.standardConformingStrings,
      })
      : null;
    if (u.forcePrimary) {
      const p = links.linkTo(this.ctx.nodes.primary);
      u.decision = { target: 'primary', reason: u.forcePrimary, classifications: d?.classifications ?? [] };
      const mover = st.tx;
      if (mover !== null && mover.phase === 'replica' && links.tx !== null && links.tx.node.role === 'replica') {
        // Refused inside a transaction that may move: it moves (its replica side, now failed, is rolled back).
        u.txOpen = mover.opening(false);
        u.txMoveFrom = links.tx;
      }
      return p ?? 'primary';
    }
    if (links.openBatch) return follow(u, d, links.openBatch, 'open-batch');
    const primary = links.linkTo(this.ctx.nodes.primary);
    const tx = st.tx;
    if (st.txStatus !== 'I' && links.tx && links.tx.conn.state === 'ready') {
      const txLink = links.tx;
      if (tx !== null && st.txStatus === 'T' && txLink.node.role === 'replica') {
        // The transaction's first statement that may write: it moves to the primary (see TaggedTransaction).
        if (this.mustLeaveReplica(u, d)) return moveTransaction(u, d, tx, txLink, primary, 'tx-moved');
        const floor = tx.floorLsn;
        if (floor !== null && readsData(d) && !this.replicas.hasReplayed(txLink.node, floor)) {
          // Opened by a BEGIN alone on a replica behind the session's writes: its first read waits for them
          // there (Session.pump, awaitTransactionFloor), or, when they do not come in time, moves the
          // transaction to the primary as a write would (its replica side only ran BEGIN and neutral statements).
          if (u.floorWaited === 'missed') return moveTransaction(u, d, tx, txLink, primary, 'fallback-causal');
          if (u.floorWaited === undefined) u.floorWait = floor;
        }
        // Counted as a read-your-writes wait, as a read outside a transaction that waited is.
        if (u.floorWaited === 'replayed') return follow(u, d, txLink, 'causal-wait');
      }
      return follow(u, d, txLink, tx !== null && d?.target === 'replica' ? 'tx-read' : 'transaction');
    }
    if (tx !== null && tx.phase === 'deferred') {
      // The BEGIN pgsplit answered opens here, on a replica if this unit only reads, else on the primary.
      u.txOpen = tx.opening(false);
      if (d !== null && d.target === 'replica' && !u.namedPortal && !this.readsSequence(d)) {
        u.decision = { ...d, reason: 'tx-read' };
        return this.replicaChoice(u.decision);
      }
      if (d !== null && d.target === 'primary' && this.opensNeutral(u, d)) {
        u.decision = { ...d, target: 'replica', reason: 'transaction' };
        return this.replicaChoice(u.decision);
      }
      u.decision = d ?? { target: 'primary', reason: u.kind === 'function' ? 'function-call' : 'no-statement', classifications: [] };
      if (d !== null && d.target === 'replica') u.decision = { ...d, target: 'primary', reason: 'tx-cursor' };
      return primary ?? 'primary';
    }
    if (u.kind === 'function') {
      if (primary) return follow(u, d, primary, 'function-call');
      u.decision = { target: 'primary', reason: 'function-call', classifications: [] };
      return 'primary';
    }
    if (d === null) {
      if (links.last && links.last.conn.state === 'ready') return follow(u, d, links.last, 'follows-previous');
      u.decision = { target: 'primary', reason: 'no-statement', classifications: [] };
      return primary ?? 'primary';
    }
    u.decision = d;
    if (d.target === 'primary' && d.reason === 'begin' && this.ctx.transactions === 'replica-until-write') {
      const begin = this.replicaTransactionBegin(u, d);
      if (begin !== null && !this.readsSequence(d)) {
        u.txBegin = begin;
        u.decision = { ...d, target: 'replica', reason: 'tx-read' };
        return this.replicaChoice(u.decision);
      }
      return primary ?? 'primary';
    }
    if (d.target === 'replica') {
      if (this.readsSequence(d)) {
        u.decision = { ...d, target: 'primary', reason: 'sequence-read' };
        return primary ?? 'primary';
      }
      if (this.isolationBlocksReplica(d)) {
        u.decision = { ...d, target: 'primary', reason: 'tx-isolation' };
        return primary ?? 'primary';
      }
      return this.replicaChoice(d);
    }
    return primary ?? 'primary';
  }

  /** A read that names a sequence relation: the primary's state of it is the true one (see SequenceCatalog). */
  private readsSequence(d: RouteDecision): boolean {
    for (const c of d.classifications) for (const s of c.statements) if (this.sequences.mentions(s.text)) return true;
    return false;
  }

  /** The attached replica if it still meets the read's requirement; else 'replica' (raising the floor, waiting, another replica or the primary, in Session.replicaFor). */
  private replicaChoice(d: RouteDecision): ServerLink | 'replica' {
    const r = this.links.replicaLink;
    if (r && this.replicas.mayStayOn(r.node, d)) return r;
    return 'replica';
  }

  /**
   * A read of a tagged session outside a transaction (or one opening with BEGIN READ ONLY) that must not
   * run on a standby: the session's default isolation is serializable (PostgreSQL refuses it there, 0A000),
   * or no server said what it is.
   */
  private isolationBlocksReplica(d: RouteDecision): boolean {
    const isolation = this.state.isolation;
    if (isolation === null) return false; // asked before the read is sent (see Session.pump)
    const first = d.classifications[0]?.statements[0];
    const modes = first !== undefined && first.transaction === 'begin-read-only' ? parseBeginModes(first.text) : null;
    const iso = modes?.isolation ?? isolation;
    return iso === 'serializable' || iso === 'unknown';
  }

  /**
   * For a unit that opens a transaction with BEGIN, alone or followed only by reads (as pgjdbc and psycopg
   * send it): the BEGIN
   * text when the transaction may start on a replica and move later, else null (it runs on the primary).
   */
  private replicaTransactionBegin(u: Unit, d: RouteDecision): string | null {
    if (!this.state.tagged || this.state.pinned !== null || u.namedPortal) return null;
    const all = statementsOf(d.classifications);
    const first = all[0];
    // A BEGIN alone in an extended batch (psycopg sends it so) opens on the replica by itself: answering
    // it here would mean answering Parse/Bind/Describe/Execute of it, and a server does that as cheaply.
    if (first === undefined || first.transaction !== 'begin') return null;
    for (let i = 1; i < all.length; i++) if (!(all[i] as (typeof all)[number]).replicaSafe) return null;
    const modes = parseBeginModes(first.text);
    // READ WRITE sent as the client wrote it would be refused by a standby (0A000).
    if (modes === null || modes.readOnly !== undefined) return null;
    const iso = modes.isolation ?? this.state.isolation;
    // Not known yet: asked before the unit is sent (see Session.pump), and decided again then.
    if (iso === null) return first.text;
    return iso !== 'unknown' && movableIsolation(iso) ? first.text : null;
  }

  /**
   * Inside a transaction open on a replica: whether this unit must run on the primary (so the transaction
   * moves first). Reads, and single transaction-neutral statements (SAVEPOINT, SET, ...), stay; a statement
   * that may write, a named portal (a cursor that must survive a later move), a primary hint or a pin move it.
   */
  private mustLeaveReplica(u: Unit, d: RouteDecision | null): boolean {
    if (u.kind === 'function') return true;
    if (d === null) return false;
    if (u.namedPortal || mustRunOnPrimary(d)) return true;
    if (d.target === 'replica') return this.readsSequence(d);
    const all = statementsOf(d.classifications);
    let neutral = 0;
    for (const s of all) {
      if (s.replicaSafe) continue;
      const characteristics = transactionCharacteristics(s);
      if (characteristics === 'read-write') return true;
      // After a read, a change of isolation fails on the replica exactly as on the primary (25001: must
      // be called before any query); moved, it would run first there and succeed.
      if (characteristics === null && !isTransactionNeutral(s)) return true;
      neutral++;
    }
    // Its effects are replayed on the primary only if it is known to have run: one statement, synced.
    return neutral > 0 && (all.length > 1 || !u.complete);
  }

  /**
   * A deferred transaction whose first statement is a SAVEPOINT or a SET (LOCAL) that a standby runs as
   * the primary would (as ORMs and row-level security setups open with SET LOCAL app.tenant_id): it opens
   * on the replica with it, and the statement is replayed if the transaction moves (see needsReplay), as
   * when it follows a read. One synced statement only, so that having run is certain.
   */
  private opensNeutral(u: Unit, d: RouteDecision): boolean {
    if (!u.complete || u.namedPortal || this.state.pinned !== null || (u.kind !== 'simple' && u.kind !== 'extended')) return false;
    if (mustRunOnPrimary(d)) return false;
    const all = statementsOf(d.classifications);
    const s = all[0];
    return all.length === 1 && s !== undefined && s.transaction !== 'commit' && s.transaction !== 'rollback' && isTransactionNeutral(s);
  }

  /** Query texts of a unit: Parse texts, and the texts of named statements its Binds use. */
  private unitQueries(u: Unit): string[] {
    if (u.kind === 'simple') return u.queries;
    const out: string[] = [];
    // Names parsed in this unit: most units parse one statement or none, so a Set only from the second.
    let parsedFirst: string | undefined;
    let parsedMore: Set<string> | undefined;
    for (const f of u.frames) {
      if (f.type === Frontend.Parse) {
        const p = parseOf(f);
        if (p) {
          out.push(p.query);
          if (parsedFirst === undefined) parsedFirst = p.name;
          else (parsedMore ??= new Set()).add(p.name);
        }
      } else if (f.type === Frontend.Bind) {
        const b = bindOf(f);
        if (b && b.portal !== '') u.namedPortal = true;
        if (b && b.statement !== parsedFirst && parsedMore?.has(b.statement) !== true) {
          const stored = this.statements.statement(b.statement);
          const q = stored ? readParse(stored)?.query : undefined;
          if (q !== undefined) out.push(q);
        }
      }
    }
    u.queries = out;
    return out;
  }
}

/** The unit follows `link` (a transaction, an open batch, the previous unit, the primary for a function call), for `reason`. */
function follow(u: Unit, d: RouteDecision | null, link: ServerLink, reason: string): ServerLink {
  u.decision = { target: link.node.role, reason, classifications: d?.classifications ?? [] };
  return link;
}

/**
 * The transaction open on replica `from` moves to the primary with `u` (for `reason`): the primary opens
 * it (the client's BEGIN, then the statements to replay), the replica rolls its side back (it only read).
 */
function moveTransaction(u: Unit, d: RouteDecision | null, tx: TaggedTransaction, from: ServerLink, primary: ServerLink | undefined, reason: string): Target {
  u.txOpen = tx.opening(false);
  u.txMoveFrom = from;
  u.decision = { target: 'primary', reason, classifications: d?.classifications ?? [] };
  return primary ?? 'primary';
}

/**
 * Whether a unit that stays in a replica transaction reads the database, so that it needs the session's
 * floor: anything but COMMIT / ROLLBACK and transaction-neutral statements (savepoints, SET LOCAL, ...).
 * A unit with no statement (a Sync, a Describe) reads nothing.
 */
function readsData(d: RouteDecision | null): boolean {
  if (d === null) return false;
  for (const c of d.classifications) for (const s of c.statements) if (!isTransactionNeutral(s)) return true;
  return false;
}

/** The router sent the unit to the primary for a reason no replica transaction may override: a primary hint, a client encoding, a pin. */
function mustRunOnPrimary(d: RouteDecision): boolean {
  return d.reason === 'hint-primary' || d.reason === 'client-encoding' || d.reason.startsWith('pinned:');
}
