import type { RouteDecision } from '../router/router.js';
import { ProtocolTracker, type Expectation } from '../server/protocol-tracker.js';
import type { ServerConnection } from '../server/server-connection.js';
import type { ServerHold } from '../server/server-source.js';
import type { NodeEntry } from '../server/server-nodes.js';
import type { LocalCommand } from './local-command.js';
import type { Unit } from './unit.js';

/**
 * One server reply the session waits for: the tracker's fields (see Expectation), and what the session
 * does when it comes. Carried effects are route decisions (a SET, DISCARD, COMMIT sent unsynced).
 */
export interface Expect extends Expectation<RouteDecision> {
  /** For 'sync': the client unit it completes, whose effects apply when it succeeds. */
  unit?: Unit;
  /** Undoes the bookkeeping of a Parse/Close the server never carried out (it failed or was skipped). */
  undo?: () => void;
  /** For 'sync': the unit ends a transaction (COMMIT, ROLLBACK, PREPARE TRANSACTION). */
  endsTx?: boolean;
  /** For a swallowed 'sync': the unit a replica refused, to run on the primary once this sync is answered, and why. */
  rerun?: Unit;
  rerunWhy?: 'rerun-25006' | 'rerun-settings' | 'rerun-guard';
  /**
   * For the swallowed 'sync' of the empty Query sent after a probe: the statement pgsplit answers itself
   * once the server has run (or skipped) it in the client's place.
   */
  local?: LocalCommand;
  /**
   * For a swallowed 'sync': the Sync pgsplit sent (after a probe) to end a replica's unsynced batch before a
   * statement that must run on the primary. Failed, the batch had an error: the client's messages up to its
   * own Sync are skipped, as the server would have skipped them.
   */
  endsReplicaBatch?: boolean;
  /** For a swallowed 'sync': an internal query's rows go here, then null when its answer is complete. */
  capture?: (row: Array<string | null> | null) => void;
  /**
   * For a swallowed 'sync' with `capture`: the primary's position asked right behind a tagged session's
   * unit (RequestWriter.positionQuery). The session does not wait for it (unlike its other internal
   * queries), an error in it is nobody's concern, and a link lost before its answer ends it with null.
   */
  position?: boolean;
  /**
   * For a swallowed 'parse': the guard ahead of a read (RequestWriter.guard), with the position it checks.
   * It stays at the head until the guard's CommandComplete: its ParseComplete, BindComplete and row are
   * pgsplit's; an error means the replica is behind, and the server skips the read.
   */
  guard?: bigint;
  /** For a swallowed 'sync': the Sync pgsplit sends after a guarded Query (RequestWriter.guardSync); part of that unit. */
  afterGuard?: boolean;
  /** For a swallowed 'sync': one query of the session's settings replay (see SessionSettings.replayFor). */
  replay?: boolean;
}

/**
 * A server connection as one session uses it: its protocol state (the tracker), the statements prepared
 * on it, and the session's own state about it (settings replayed, an answer held back, how it failed).
 */
export class ServerLink {
  readonly node: NodeEntry;
  /** The connection as the session's ServerSource handed it out (given back to it on detach). */
  readonly hold: ServerHold;
  readonly conn: ServerConnection;
  /** The replies this server owes, skip-to-Sync after an error, COPY windows. */
  readonly tracker: ProtocolTracker<RouteDecision, Expect>;
  /** Named statements prepared on this server: name -> Parse payload (the connection's, see ServerConnection.prepared). */
  readonly prepared: Map<string, Buffer>;
  settingsVersion = 0;
  /** A statement that may change session settings ran here (see Session.unitEffects): a pool must reset them. */
  settingsTouched = false;
  /** Frames of a replica's answer held back until its first row (see ResponseRelay). */
  held: Buffer[] | null = null;
  heldBytes = 0;
  /** performance.now() when the server last sent something (a frozen server sends nothing). */
  lastDataAt = performance.now();
  /** A FATAL from this server went to the client: it already knows why the session ends. */
  fatalForwarded = false;
  /**
   * The settings replay before the unit now running failed here (the replica refused a value the primary
   * holds): the unit's answer, computed with other settings than the session's, must not reach the client.
   */
  replayFailed = false;
  /**
   * Parked with its pool between transactions (server-attach's giveBackIdle): still attached, idle, and
   * the pool's to reclaim until the session uses it again (claim).
   */
  parked = false;
  /** What the pool calls to reclaim it while parked: made once per link. */
  reclaimer: (() => void) | null = null;

  /** The session uses the link again: a parked one is no longer the pool's to reclaim. */
  claim(): void {
    if (!this.parked) return;
    this.parked = false;
    this.hold.unpark?.();
  }

  /** A guard sent ahead of a read here has not answered yet, or failed and its read waits to go round again (see Expect.guard). */
  guardPending(): boolean {
    for (const e of this.tracker.queue) if (e.guard !== undefined || e.rerunWhy === 'rerun-guard') return true;
    return false;
  }

  /**
   * The connection's answers and events stop reaching the session (server-attach's bind pointed them
   * at it). Called once, when the session lets the link go, before the connection goes back.
   */
  unbind(): void {
    this.conn.clearHolder();
  }

  /** `onSkipped`: an expectation the server will never answer (it followed an error), newest first. */
  constructor(node: NodeEntry, hold: ServerHold, onSkipped: (e: Expect) => void) {
    this.node = node;
    this.hold = hold;
    this.conn = hold.conn;
    this.prepared = hold.conn.prepared;
    this.tracker = new ProtocolTracker<RouteDecision, Expect>(onSkipped);
  }

  get name(): string {
    return this.node.endpoint.name;
  }

  /**
   * Expects the answer to a probe (PROBE_PARSE) about to be sent. It destroys the server's unnamed
   * statement (prepared again where the client uses it next), and what follows it (a Query, a
   * FunctionCall, the empty Query) ends the server's extended batch.
   */
  pushProbe(): void {
    this.tracker.pushProbe({ kind: 'parse', swallow: true, probe: true });
    this.prepared.delete('');
  }
}
