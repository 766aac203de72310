/**
 * Attaching servers to a session and letting them go: the replica a read runs on (as Consistency
 * chooses, skipping replicas that cannot be reached) or the primary, the connection itself (from the
 * session's ServerSource, with its listeners), and its release: at the session's end, when its server
 * failed, or in pool.mode transaction as soon as it holds nothing of the client's (giveBackIdle).
 * Module-level functions taking the session: no object or closure per session.
 */
import { PgsplitError, SqlState, errors } from '../errors.js';
import { isTransactionNeutral } from '../router/transaction-statements.js';
import { ServerStartupError, isUnreachable } from '../server/server-connection.js';
import type { NodeEntry } from '../server/server-nodes.js';
import type { ServerHold } from '../server/server-source.js';
import type { BehindFloor } from './consistency.js';
import { ServerLink } from './server-link.js';
import type { Session } from './session.js';
import type { Unit } from './unit.js';
import { onServerLost } from './failure-policy.js';
import { captureSession } from './session-capture.js';
import { onlyReads } from './statement-effects.js';

/**
 * Attaches a server for a unit (or for the session's start, without one): a replica through
 * replicaFor, or the primary. A replica that cannot be reached is skipped; nothing has been sent yet,
 * so falling back is safe.
 */
export async function attachFor(session: Session, role: 'primary' | 'replica', u?: Unit): Promise<ServerLink> {
  return role === 'replica' ? replicaFor(session, u) : attachPrimary(session);
}

/**
 * The replica a read runs on, or the primary, as Consistency chooses (raising the floor, keeping or
 * waiting for the attached replica, another one, or the primary); a replica that cannot be reached is
 * reported to the monitor and the next choice taken. Else the primary, or an error under
 * routing.when_no_replica: error.
 */
async function replicaFor(session: Session, u: Unit | undefined): Promise<ServerLink> {
  const d = u?.decision;
  if (u !== undefined) u.guardLsn = u.txFloorLsn = undefined;
  const behind = u !== undefined ? behindFloor(session, u) : 'wait';
  const choice = await session.consistency.choose(session.binding.replica, d, u?.avoid, behind);
  for (let node = choice.node; node !== null; node = choice.node) {
    // Noted before connecting, as the reason of this attempt; a retry with the same reason needs no new decision.
    if (u && d && choice.reason !== null && u.decision?.reason !== choice.reason) u.decision = { ...d, reason: choice.reason };
    // The guard (or the floor the transaction owes its reads) is for this replica: the unit goes there
    // now (or, failing to connect, the next choice has none).
    if (u !== undefined && choice.behindLsn !== null) noteBehind(u, behind, choice.behindLsn);
    // The attached replica: its link exists already.
    if (choice.kept && session.binding.hasNode(node)) return connectReplica(session, node);
    try {
      return await connectReplica(session, node);
    } catch (e) {
      if (u !== undefined) u.guardLsn = u.txFloorLsn = undefined;
      // Refused, unreachable, shutting down / starting up (57P03, or 57P01 while connecting), or a pooled
      // connection lost under pgsplit's own settings statement (nothing of the client's ran): try the next one.
      const notNow = e instanceof ServerStartupError && (e.fields.C === SqlState.cannotConnectNow || e.fields.C === SqlState.adminShutdown);
      const lostBorrowing = e instanceof PgsplitError && e.code === 'SERVER_LOST';
      if (!isUnreachable(e) && !notNow && !lostBorrowing) throw e;
      session.ctx.monitor.reportUnreachable(node, (e as Error).message);
      session.log.warn({ node: node.endpoint.name, err: (e as Error).message }, 'replica unreachable; trying the next one');
    }
    await session.consistency.next(choice);
  }
  // routing.when_no_replica: error refuses reads, not sessions: a session starting now gets the primary
  // as its first server (its writes work), and its reads are refused one by one.
  if (choice.noReplica && session.ctx.whenNoReplica === 'error' && u !== undefined) throw session.consistency.noReplicaError(choice.req);
  if (u && d && choice.reason !== null) u.decision = { ...d, reason: choice.reason };
  return attachPrimary(session);
}

/**
 * Guards a read may carry in a row. A replica mostly replays a commit within a fraction of a millisecond:
 * a read that found it behind usually finds it there one round trip later, and a guard costs no more
 * than that round trip, where a wait costs a question of the monitor's and then the read's own.
 */
const MAX_GUARD_TRIES = 3;

/** What a replica choice for `u` does with a replica behind only the floor (see BehindFloor): a BEGIN alone takes it ('later'), a read that can carry a guard too ('guard'); else it waits. */
function behindFloor(session: Session, u: Unit): BehindFloor {
  if (opensOnly(session, u)) return 'later';
  return mayGuard(session, u) ? 'guard' : 'wait';
}

/** `u` goes to a replica not seen to replay `lsn`: a guard checks it there, or (a unit that only opens a transaction) its transaction's reads owe it. */
function noteBehind(u: Unit, behind: BehindFloor, lsn: bigint): void {
  if (behind === 'guard') u.guardLsn = lsn;
  else u.txFloorLsn = lsn;
}

/**
 * A whole unit that only opens a transaction that may move off a replica, reading nothing there, so that
 * it needs no floor of its own: a BEGIN alone (u.txBegin), or the transaction-neutral statement (SET LOCAL,
 * SAVEPOINT) that opens a deferred one (u.txOpen; see TargetChooser.opensNeutral). Not a BEGIN followed by
 * reads in the same unit (as pgjdbc sends it): those reads need the floor now. Not an unsynced piece
 * either: what follows it in the batch would follow it to the replica unchecked.
 */
function opensOnly(session: Session, u: Unit): boolean {
  if (!u.complete || u.decision === undefined) return false;
  if (u.txBegin !== undefined) {
    let n = 0;
    for (const c of u.decision.classifications) n += c.statements.length;
    return n === 1;
  }
  if (u.txOpen === undefined || session.tx === null || session.tx.phase !== 'deferred') return false;
  for (const c of u.decision.classifications) for (const st of c.statements) if (!isTransactionNeutral(st)) return false;
  return u.decision.classifications.length > 0;
}

/**
 * Whether a read can carry a guard (see Consistency.choose, RequestWriter.guard): the guard is an extended
 * statement that fails when the replica is behind, so that the server skips the read up to the next Sync
 * and the read runs again after a wait. So: a whole unit (a Query, or extended messages with their Sync)
 * whose answer is held back until its first row (outside a transaction and an open batch: see send's
 * `retryable`), not a re-run of a failed guard, and a session whose servers took guards so far. The read
 * runs in the transaction the guard opened (a Query commits it only at its own end): only plain reads
 * (a BEGIN, SET TRANSACTION or DISCARD would act otherwise there), and only under read committed, where
 * each statement takes its snapshot when it starts, after the guard's check; under repeatable read the
 * snapshot would be the guard's, taken before the check ran.
 */
function mayGuard(session: Session, u: Unit): boolean {
  if (u.guardFailures >= MAX_GUARD_TRIES || session.guardsRefused || !u.complete || u.forcePrimary !== undefined) return false;
  if (session.txStatus !== 'I' || session.tx !== null || u.txOpen !== undefined || u.txBegin !== undefined || session.binding.openBatch !== null) return false;
  if (session.isolation !== 'read committed' && session.isolation !== 'read uncommitted') return false;
  return (u.kind === 'simple' || u.kind === 'extended') && u.decision !== undefined && onlyReads(u.decision.classifications);
}

/** Attaches `node` as the session's replica (the previous one, if any, is let go). */
async function connectReplica(session: Session, node: NodeEntry): Promise<ServerLink> {
  const existing = session.binding.linkTo(node);
  if (existing) return claimed(existing);
  const link = await connect(session, node);
  const before = session.binding.replica;
  if (before !== null && before !== node) {
    const old = session.binding.linkTo(before);
    // A switch: replicaFor raised the floor for it already.
    const raise = session.consistency.raiseFloor;
    if (old && !old.tracker.busy) detach(session, old);
    session.consistency.raiseFloor = raise;
  }
  session.binding.bindReplica(node);
  return link;
}

/** The session's link to the primary, attached if it has none. */
async function attachPrimary(session: Session): Promise<ServerLink> {
  const existing = session.binding.linkTo(session.ctx.nodes.primary);
  if (existing) return claimed(existing);
  return connect(session, session.ctx.nodes.primary);
}

/** A link to `node` (the session's own, if it has one), its answers relayed and its failures handled (onServerLost). */
async function connect(session: Session, node: NodeEntry): Promise<ServerLink> {
  const existing = session.binding.linkTo(node);
  if (existing) return claimed(existing);
  let hold: ServerHold;
  // Counted as in use while connecting, so that a reload removing the node waits for this link too.
  session.connectingTo = node;
  try {
    hold = await session.source.acquire(node, session.login, session.serverParams, session.closing);
  } finally {
    session.connectingTo = null;
  }
  if (session.state === 'closed') {
    session.source.release(hold, 'clean');
    throw errors.shuttingDown();
  }
  return bind(session, node, hold);
}

/**
 * The primary's link at once, without waiting, when the session has one or its source can lend one now
 * (ServerSource.acquireNow: an idle pooled connection that needs no settings); null when a connection
 * must be waited for (attachFor). In pool.mode transaction most units of an untagged session borrow
 * this way: no promise, no turn of the event loop between the client's bytes and the server's.
 */
export function attachPrimaryNow(session: Session): ServerLink | null {
  return attachNow(session, session.ctx.nodes.primary);
}

/**
 * The session's replica at once, when the read may stay there (Consistency.stayNow: no floor to raise,
 * or its position in hand, and the replica meets the read's requirement now, or all but the floor with a
 * guard) and the session's source can lend an idle connection there now; null otherwise (attachFor then
 * decides, waits or moves). In pool.mode
 * transaction a tagged session keeps its replica with no link between reads: most of its reads borrow
 * this way, as attachPrimaryNow does for the primary (no promise, no turn of the event loop).
 */
export function attachReplicaNow(session: Session, u: Unit): ServerLink | null {
  const node = session.binding.replica;
  const d = u.decision;
  if (node === null || d === undefined || u.avoid !== undefined) return null;
  // A read right after the session's write usually lands here too: its floor is in hand, and a guard
  // ahead of it stands for the wait (see Consistency.stayNow).
  const behind = behindFloor(session, u);
  const lsn = session.consistency.stayNow(node, d, behind);
  if (lsn === undefined) return null;
  const link = attachNow(session, node);
  u.guardLsn = u.txFloorLsn = undefined;
  if (link !== null && lsn !== null) noteBehind(u, behind, lsn);
  return link;
}

/** The session's link to `node`, or one over a connection its source lends at once; null when it must be waited for. */
function attachNow(session: Session, node: NodeEntry): ServerLink | null {
  const existing = session.binding.linkTo(node);
  if (existing) return claimed(existing);
  const hold = session.source.acquireNow?.(node, session.login, session.serverParams) ?? null;
  return hold === null ? null : bind(session, node, hold);
}

/**
 * `link`, taken back from its pool if it was parked there (see park): from here until it is idle again,
 * nobody else can have its connection, whatever the session awaits before it writes.
 */
function claimed(link: ServerLink): ServerLink {
  link.claim();
  return link;
}

/** A link over `hold`: attached, its answers relayed, its failures handled (onServerLost). */
function bind(session: Session, node: NodeEntry, hold: ServerHold): ServerLink {
  const conn = hold.conn;
  const link = new ServerLink(node, hold, session.skipped);
  session.binding.attach(link);
  conn.dispatchEvents();
  conn.onData = (chunk: Buffer) => session.relay.onServerData(link, chunk);
  conn.onDrain = () => session.input.resume();
  conn.onError = (e: Error) => onServerLost(session, link, e.message);
  conn.onClose = () => onServerLost(session, link, 'the server closed the connection');
  // A pooled connection outlives the session's use of it: link.unbind() turns these off when the link is let go.
  session.log.debug({ node: node.endpoint.name }, 'server attached');
  return link;
}

/**
 * Lets a link go: politely, or with `abort` (its server failed or froze) at once. `keepReplica`: an idle
 * link given back to its pool (giveBackIdle) leaves its node the session's replica (Binding.release).
 */
export function detach(session: Session, link: ServerLink, abort = false, keepReplica = false): void {
  // A link left inside a transaction, an open batch or a COPY, or running something, is not reusable.
  const outcome = link.tracker.busy || abort ? 'broken' : session.binding.holdsState(link) || session.binding.copyPending?.link === link ? 'unfinished' : 'dirty';
  // The session's settings are on it (replayed, or changed there): a pool resets them before the next borrower.
  if (link.settingsVersion !== 0 || link.settingsTouched) link.hold.left?.(session.identityChanged ? 'identity' : 'settings');
  // A replay ran the session's LOADs here too: nothing but a new connection undoes a loaded library.
  if (link.settingsVersion !== 0 && session.settings.loadsLibraries) link.hold.left?.('load');
  const released = session.binding.release(link, keepReplica);
  if (released === null) return;
  // The next replica may be behind this one: raise the floor before reading there.
  if (released.wasReplica) session.consistency.raiseFloor = true;
  for (const e of link.tracker.queue) {
    if (e.local !== undefined) session.awaitingProbe = false;
    // Its default isolation stays unknown (null): asked again of another link before the next replica read.
    // A position asked behind a unit ends without one (the next read asks the primary itself).
    if (e.position === true) e.capture?.(null);
    else if (e.capture !== undefined) session.awaitingInternal = false;
  }
  if (session.settingsFrom === link) {
    // Worth a warning only while the session goes on (its other servers miss those settings), not at its end.
    if (session.state !== 'closed') session.log.warn({ node: link.name }, 'the server that changed session settings is gone before they were read back');
    session.settingsFrom = null;
  }
  link.unbind();
  session.source.release(link.hold, outcome);
}

/**
 * pool.mode transaction: each attached link that holds nothing of the client's goes back to its pool
 * (see detach): no transaction, open batch or COPY on it, no reply owed, no answer held, no pin. A
 * link where the session's settings changed is asked for them first (captureSession), and goes back
 * once that is answered: the next connection gets them replayed.
 */
export function giveBackIdle(session: Session): void {
  if (session.state !== 'ready' || session.awaitingProbe || session.awaitingInternal || session.terminating || session.binding.copyPending !== null) return;
  for (const l of session.binding.attached()) {
    if (l.parked || l.tracker.busy || l.tracker.needsSync || l.tracker.skipping || l.held !== null || session.binding.holdsState(l)) continue;
    // LISTEN, a temporary table, SQL PREPARE, ...: the session keeps its primary connection (see server-writes.ts, notePins).
    if (session.pinned !== null && l.node.role === 'primary') continue;
    if (session.settingsFrom === l) {
      if (!session.anyBusy()) captureSession(session);
      return;
    }
    if (!park(session, l)) detach(session, l, false, true);
  }
}

/**
 * Instead of giving an idle link back: it stays attached, parked with its pool, and the session's next
 * transaction there takes it back with no borrow (see ParkedLeases) unless another client needed it first,
 * when the pool reclaims it (reclaimed). False when the pool wants it back now (clients wait) or the
 * connection is the session's own.
 */
function park(session: Session, link: ServerLink): boolean {
  const hold = link.hold;
  if (hold.park === undefined) return false;
  if (!hold.park(link.reclaimer ??= () => reclaimed(session, link), link.lastDataAt)) return false;
  link.parked = true;
  return true;
}

/** The pool needs a parked link's connection: let go now, as giveBackIdle would have (the session's replica stays). */
function reclaimed(session: Session, link: ServerLink): void {
  if (!link.parked) return;
  link.parked = false;
  // Parked only while idle, and taken back (claim) before anything is sent: nothing of the client's is on it.
  if (!link.tracker.busy) detach(session, link, false, true);
}

/** Borrows the session's first server (its replica when tagged) for captureSession to ask; then sends what waits. */
export function attachToAsk(session: Session): void {
  session.connecting = true;
  attachFor(session, session.local.tagged ? 'replica' : 'primary').then(() => {
    session.connecting = false;
    if (session.state === 'ready') session.pump();
  }, (e: unknown) => {
    session.connecting = false;
    if (session.state === 'closed') return;
    // Routed with what is known; the unit's own attach says what is wrong.
    session.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'no server to read the session\'s settings from');
    session.isolation = 'unknown';
    session.pump();
  });
}
