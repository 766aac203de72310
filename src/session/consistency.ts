import { errors, type PgsplitError } from '../errors.js';
import type { LogSink } from '../log/session-log.js';
import { formatLsn, parseLsn } from '../monitor/lsn.js';
import type { RouteDecision } from '../router/router.js';
import type { NodeEntry, ReadRequirement, ServerNodes } from '../server/server-nodes.js';

/**
 * What Consistency needs of the proxy around the session (the session's context satisfies it). Read
 * live, not copied: a reload changes the settings in place.
 */
export interface ConsistencyContext {
  readonly nodes: ServerNodes;
  readonly monitor: {
    /** The primary's WAL position, read after the call; rejects when the primary cannot tell. */
    primaryLsnNow(): Promise<bigint>;
    /** True once `n` has replayed `lsn`, false after `timeoutMs` or when `n` fails. */
    waitForReplay(n: NodeEntry, lsn: bigint, timeoutMs: number): Promise<boolean>;
    /**
     * The position that covers every record inserted before pg_current_wal_insert_lsn() answered `insert`
     * (it may point past a page header; see recordEndAt).
     */
    recordEnd(insert: bigint): bigint;
    /** The primary's last known position and when it was read (performance.now()). */
    readonly lag: { readonly primaryLsn: bigint | null; readonly primarySampledAt: number };
  };
  /** routing.max_lag, ms. */
  readonly maxLagMs: number;
  /** routing.read_your_writes_timeout, ms. */
  readonly readYourWritesTimeoutMs: number;
}

/** The session's own bounds, SET pgsplit.max_lag and SET pgsplit.after (LocalAnswers satisfies it). */
export interface SessionBounds {
  /** null: routing.max_lag. */
  readonly maxLagMs: number | null;
  readonly afterLsn: bigint | null;
  /** The session's reads go to replicas: worth learning the primary's position as soon as a write ends. */
  readonly tagged?: boolean;
}

/**
 * Where a read may run, and why when that is not the router's reason. One value per choice (it replaces
 * the closure the session made per choice before); next() changes it in place when the session could not
 * reach the replica it names.
 */
export interface ReadChoice {
  /** The replica, or null: the primary. */
  node: NodeEntry | null;
  /** The reason to report instead of the router's ('causal-wait', 'fallback-...'), or null to keep it. */
  reason: string | null;
  /**
   * `node` is the replica the session has attached, kept: the session has a connection to it already,
   * so a failure to reach it is not retried elsewhere (it is not in `tried`).
   */
  kept: boolean;
  /** Null `node` because no replica qualifies: with routing.when_no_replica: error a read is refused (noReplicaError). */
  noReplica: boolean;
  /** What the read needs of a replica, with the floor as last raised. */
  req: ReadRequirement;
  /** The replicas named so far (and the one the unit avoids); null until the choice looks past the attached replica. */
  tried: Set<NodeEntry> | null;
  /** routing.read_your_writes_timeout as it was when the choice began: each wait of one choice uses the same bound. */
  readonly waitMs: number;
  /**
   * `node` has not been seen to replay this position (the floor), and was chosen without waiting for it
   * (see BehindFloor: the read carries a guard for it, or the transaction the unit opens records it for
   * its reads); null: the replica has it.
   */
  behindLsn: bigint | null;
}

/**
 * What a choice does with a replica that meets everything a read needs but the floor (it has not been
 * seen to replay the session's writes yet):
 * - 'wait': waits for it to (up to routing.read_your_writes_timeout), or looks further;
 * - 'guard': takes it at once, the read carrying a guard that checks the floor on the replica itself
 *   (see server-attach's mayGuard);
 * - 'later': takes it at once for a unit that reads nothing and opens a transaction there (a BEGIN alone,
 *   as pgbench -M extended and several drivers send it, or the SET LOCAL a deferred transaction opens
 *   with): what needs the floor are the transaction's reads,
 *   and its first read waits for it (see TaggedTransaction.floorLsn), or never does when a write moves the
 *   transaction to the primary first. The floor is still raised: the reads need it.
 */
export type BehindFloor = 'wait' | 'guard' | 'later';

/**
 * A session's read consistency: the position its replica reads must have replayed (its floor), raised
 * from the primary's position after it used the primary and when it moves to another replica, so that it
 * reads its own writes and its reads never go back in time; and the choice of a replica for a read
 * (waiting for one to catch up, or falling back to the primary, and why). No sockets: the session
 * connects to what it is told, and asks next() when it cannot.
 */
export class Consistency {
  /**
   * The session used the primary (or lost its replica) since the floor was last raised: the next replica
   * choice raises it to the primary's position first. Set by the session (it sees the units and the links).
   */
  raiseFloor = false;
  /** The position every replica serving this session's reads must have replayed; null: none yet. */
  private floorLsn: bigint | null = null;
  /** performance.now() when a unit last finished on the primary, and on a replica (see raiseFloorFromPrimary). */
  private primaryDoneAt = -Infinity;
  private replicaDoneAt = -Infinity;
  /**
   * The primary's position, asked for when the session's last unit on the primary ended (so it covers
   * that unit), for the next replica read to raise its floor without a round trip of its own; null when
   * none is pending. It fails to null (the read then asks again).
   */
  private prefetched: Promise<bigint | null> | null = null;
  /** The position `prefetched` resolved to, once it has (read synchronously by stayNow); null before. */
  private inHand: bigint | null = null;
  /** Prefetching pays: the last prefetch was used by a read (false after a write followed a write). */
  private prefetchPays = true;
  /** The replica the session last read from or chose: where a prefetched position is awaited. */
  private lastReplica: NodeEntry | null = null;
  /**
   * Settles `prefetched` with the position the session asked on the primary's connection right behind
   * its last unit there (positionBehind); null when no such question is out.
   */
  private settlePosition: ((insert: string | null) => void) | null = null;

  constructor(
    private readonly ctx: ConsistencyContext,
    private readonly bounds: SessionBounds,
    private readonly log: LogSink,
  ) {}

  /** A unit's answer completed on a node with this role at `now` (performance.now()). */
  answered(role: 'primary' | 'replica', now: number): void {
    if (role === 'primary') {
      this.primaryDoneAt = now;
      // A position asked behind the unit is on its way: it covers the unit, and costs no query of the monitor's.
      if (this.raiseFloor && this.bounds.tagged === true && this.settlePosition === null) this.prefetchFloor();
    } else this.replicaDoneAt = now;
  }

  /**
   * A tagged session's unit on the primary ended and its next replica read will need the primary's
   * position: ask for it now, and have the monitor watch the session's replica replay it, while the
   * client is still turning round. Skipped after a write that followed a write with no read between
   * (a bulk load would ask once per statement for nothing), until a read needs the position again.
   */
  private prefetchFloor(): void {
    if (this.prefetched !== null) this.prefetchPays = false;
    this.prefetched = null;
    this.inHand = null;
    if (!this.prefetchPays) return;
    const monitor = this.ctx.monitor;
    const replica = this.lastReplica;
    const waitMs = this.ctx.readYourWritesTimeoutMs;
    const asked: Promise<bigint | null> = monitor.primaryLsnNow().then(
      (lsn) => {
        if (this.prefetched === asked) this.inHand = lsn;
        if (replica !== null) void monitor.waitForReplay(replica, lsn, waitMs);
        return lsn;
      },
      () => null,
    );
    this.prefetched = asked;
  }

  /**
   * A unit goes to the primary. A tagged session's next replica read will need the primary's position
   * after it: when `canFollow` (the session can send a query of its own right behind the unit on the same
   * connection, see server-writes' send), returns the function that takes that query's answer (the text
   * of pg_current_wal_insert_lsn(), or null when it failed or the session was inside a transaction). The
   * answer comes a few microseconds after the unit's own, with no round trip and no query of the
   * monitor's. Otherwise null (the
   * position is asked of the monitor when the unit's answer comes, or by the next read). A position
   * asked behind an earlier unit no longer covers what the session did.
   */
  positionBehind(canFollow: boolean): ((insert: string | null) => void) | null {
    if (this.bounds.tagged !== true) return null;
    if (this.prefetched !== null) this.prefetchPays = false;
    this.prefetched = null;
    this.inHand = null;
    this.settlePosition = null;
    if (!canFollow || !this.prefetchPays || this.ctx.nodes.replicas.length === 0) return null;
    let resolve!: (lsn: bigint | null) => void;
    const asked = new Promise<bigint | null>((r) => {
      resolve = r;
    });
    this.prefetched = asked;
    const monitor = this.ctx.monitor;
    // No check of the replica from here: the read checks it itself (a guard ahead of it, see choose).
    const settle = (insert: string | null): void => {
      if (this.settlePosition === settle) this.settlePosition = null;
      const at = insert === null ? null : parseLsn(insert);
      const lsn = at === null ? null : monitor.recordEnd(at);
      if (this.prefetched === asked) this.inHand = lsn;
      resolve(lsn);
    };
    this.settlePosition = settle;
    return settle;
  }

  /**
   * The synchronous part of choose, for the session's replica `node` (server-attach's attachReplicaNow):
   * when the floor needs no raising, or the position to raise it to is in hand already (the answer asked
   * behind the session's write came with it), decides at once: null, the read may stay there; a position,
   * it may stay there without having replayed it (`behind`: 'guard', the read carries a guard for it;
   * 'later', the unit only opens a transaction); undefined, choose must decide (ask, wait, move). No
   * promise, no turn of the event loop, on a tagged session's every read after a write.
   */
  stayNow(node: NodeEntry, d: RouteDecision, behind: BehindFloor): bigint | null | undefined {
    if (this.raiseFloor) {
      const lsn = this.inHand;
      if (lsn === null) return undefined;
      // As raiseFloorFromPrimary does with a prefetched position.
      this.prefetched = null;
      this.inHand = null;
      this.prefetchPays = true;
      this.raiseFloorTo(lsn);
      this.raiseFloor = false;
    }
    this.lastReplica = node;
    const req = this.requirement(d);
    const why = this.ctx.nodes.ineligibility(node, req);
    if (why === null) return null;
    return why === 'position' && behind !== 'wait' && req.minLsn !== null ? req.minLsn : undefined;
  }

  /** What a read needs of a replica: the lag bound (hint, session, config) and the minimum position. */
  requirement(d: RouteDecision | undefined): ReadRequirement {
    let maxLagMs = this.bounds.maxLagMs ?? this.ctx.maxLagMs;
    let minLsn = this.floorLsn;
    const afterLsn = this.bounds.afterLsn;
    if (afterLsn !== null && (minLsn === null || afterLsn > minLsn)) minLsn = afterLsn;
    for (const c of d?.classifications ?? []) {
      if (c.hints.maxLagMs !== undefined) maxLagMs = Math.min(maxLagMs, c.hints.maxLagMs);
      const after = c.hints.after !== undefined ? parseLsn(c.hints.after) : null;
      if (after !== null && (minLsn === null || after > minLsn)) minLsn = after;
    }
    return { maxLagMs, minLsn };
  }

  /**
   * The read may stay on the attached replica `node` without asking anyone (the fast path, checked for
   * every routed read): the floor needs no raising and the replica meets the requirement now.
   */
  mayStayOn(node: NodeEntry, d: RouteDecision): boolean {
    return !this.raiseFloor && this.ctx.nodes.ineligibility(node, this.requirement(d)) === null;
  }

  /**
   * `node` is known to have replayed `lsn` (the floor a replica transaction opened by a BEGIN alone still
   * owes its reads, see TaggedTransaction.floorLsn). Only the position: the transaction met the rest of
   * the requirement when it opened, and stays where it opened.
   */
  hasReplayed(node: NodeEntry, lsn: bigint): boolean {
    return node.replayedLsn !== null && node.replayedLsn >= lsn;
  }

  /**
   * The replica a read runs on, or the primary. In order: raise the floor if the session used the
   * primary since its last replica read (read-your-writes, monotonic reads); keep the attached replica
   * `current` if it qualifies, or wait up to routing.read_your_writes_timeout for it to replay the floor;
   * else move to another qualifying replica (raising the floor first, so reads never go back in time),
   * or wait for one; else the primary. `avoid` is never chosen (a replica that just failed the unit).
   *
   * With `behind` 'guard' (the read can carry one: see server-attach's mayGuard), a replica that meets
   * everything but the floor is chosen at once, with `behindLsn` set: the replica itself checks, right
   * before the read, that it has replayed the floor, and the read does not run there if not. Most of the
   * time it has (replay follows a commit within a fraction of a millisecond), and the read costs no wait
   * and no question of the monitor's. With 'later' (a BEGIN alone), such a replica is chosen at once too,
   * and the transaction's first read waits instead (see BehindFloor).
   */
  async choose(current: NodeEntry | null, d: RouteDecision | undefined, avoid: NodeEntry | undefined, behind: BehindFloor = 'wait'): Promise<ReadChoice> {
    const choice: ReadChoice = {
      node: null, reason: null, kept: false, noReplica: false, req: NO_REQUIREMENT, tried: null, waitMs: this.ctx.readYourWritesTimeoutMs, behindLsn: null,
    };
    if (current !== null) this.lastReplica = current;
    if (this.raiseFloor) {
      // The primary cannot say where it is: only it can serve a read that must see its writes.
      if (!(await this.raiseFloorFromPrimary())) return primary(choice, 'fallback-no-position');
      this.raiseFloor = false;
    }
    const nodes = this.ctx.nodes;
    let req = this.requirement(d);
    choice.req = req;
    if (current) {
      const why = nodes.ineligibility(current, req);
      if (why === null) return kept(choice, current);
      if (why === 'position' && behind !== 'wait' && req.minLsn !== null) {
        choice.behindLsn = req.minLsn;
        return kept(choice, current);
      }
      if (why === 'position' && req.minLsn !== null && (await this.ctx.monitor.waitForReplay(current, req.minLsn, choice.waitMs))) {
        if (nodes.ineligibility(current, req) === null) {
          choice.reason = 'causal-wait';
          return kept(choice, current);
        }
      }
      // Moving to another replica: it must hold everything the current one may have shown.
      if (!(await this.raiseFloorFromPrimary())) return primary(choice, 'fallback-no-position');
      req = this.requirement(d);
      choice.req = req;
    }
    choice.tried = new Set<NodeEntry>(avoid !== undefined ? [avoid] : []);
    return this.pick(choice, behind);
  }

  /** The session could not reach `choice.node` (refused, unreachable, not accepting connections): the next choice, in place. */
  next(choice: ReadChoice): Promise<ReadChoice> {
    choice.node = null;
    choice.kept = false;
    choice.behindLsn = null;
    return this.pick(choice);
  }

  /** The error for a read refused under routing.when_no_replica: error, naming each replica's reason and the fix. */
  noReplicaError(req: ReadRequirement): PgsplitError {
    return errors.noReplica(this.noReplicaDetail(req), this.noReplicaHint(req));
  }

  /** A qualifying replica not tried yet (the least loaded), or one behind only the floor once it has caught up; else the primary. */
  private async pick(choice: ReadChoice, behind: BehindFloor = 'wait'): Promise<ReadChoice> {
    const nodes = this.ctx.nodes;
    const req = choice.req;
    const tried = choice.tried ?? (choice.tried = new Set<NodeEntry>());
    let node = nodes.pickReplica(req, tried);
    if (!node && req.minLsn !== null) {
      const late = nodes.pickReplica(req, tried, true);
      if (late && behind !== 'wait') {
        choice.behindLsn = req.minLsn;
        node = late;
      } else if (late && (await this.ctx.monitor.waitForReplay(late, req.minLsn, choice.waitMs)) && nodes.ineligibility(late, req) === null) {
        choice.reason = 'causal-wait';
        node = late;
      }
    }
    if (!node) {
      choice.noReplica = true;
      return primary(choice, this.fallbackReason(req));
    }
    tried.add(node);
    choice.node = node;
    this.lastReplica = node;
    return choice;
  }

  /** The floor only rises: a read must never go back in time. */
  private raiseFloorTo(lsn: bigint): void {
    if (this.floorLsn === null || lsn > this.floorLsn) this.floorLsn = lsn;
  }

  /** Raises the session's floor to the primary's position now; false when the primary cannot tell. */
  private async raiseFloorFromPrimary(): Promise<boolean> {
    let lsn: bigint | null = null;
    const prefetched = this.prefetched;
    this.prefetched = null;
    this.inHand = null;
    if (prefetched !== null) {
      // Asked for after the session's last unit on the primary ended: it covers everything the session saw.
      lsn = await prefetched;
      this.prefetchPays = true;
      if (lsn !== null) {
        this.raiseFloorTo(lsn);
        return true;
      }
    } else this.prefetchPays = true;
    try {
      lsn = await this.ctx.monitor.primaryLsnNow();
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'primary position unavailable');
      // With the primary out, its last known position will do, if it was read after everything this
      // session saw finished (on the primary or on a replica); else nothing replica-side is safe.
      const lag = this.ctx.monitor.lag;
      const fresh = lag.primarySampledAt > Math.max(this.primaryDoneAt, this.replicaDoneAt);
      lsn = this.ctx.nodes.primary.health === 'down' && fresh ? lag.primaryLsn : null;
      if (lsn === null) return false;
    }
    this.raiseFloorTo(lsn);
    return true;
  }

  /**
   * Why the primary serves a tagged read: 'fallback-causal' when a replica is only behind the position
   * the read needs, 'fallback-lag' when one is only past the lag bound, else 'fallback-no-replica'
   * (all down, disabled or promoted, or none configured).
   */
  private fallbackReason(req: ReadRequirement): string {
    const why = this.ctx.nodes.replicas.map((r) => this.ctx.nodes.ineligibility(r, req));
    if (why.includes('position')) return 'fallback-causal';
    if (why.includes('lag')) return 'fallback-lag';
    return 'fallback-no-replica';
  }

  /** What to do about it, for the reasons the replicas give (the first that applies). */
  private noReplicaHint(req: ReadRequirement): string {
    const why = new Set(this.ctx.nodes.replicas.map((r) => this.ctx.nodes.ineligibility(r, req)));
    if (this.ctx.nodes.replicas.length === 0) return 'configure replicas (replicas: in the config), or set routing.when_no_replica: primary';
    if (why.has('position')) return 'the replicas have not replayed this session\'s writes yet: retry, raise routing.read_your_writes_timeout, or set routing.when_no_replica: primary';
    if (why.has('lag')) return 'the replicas lag more than the bound: raise it (SET pgsplit.max_lag, routing.max_lag), wait for them, or set routing.when_no_replica: primary';
    if (why.has('disabled')) return 'a replica was disabled (admin console DISABLE, or weight 0): ENABLE it, or set routing.when_no_replica: primary';
    if (why.has('down')) return 'the replicas are down or failing their checks (SHOW NODES in the admin console): bring them back, or set routing.when_no_replica: primary';
    return 'no replica is in recovery (promoted or removed): fix the replicas: list, or set routing.when_no_replica: primary';
  }

  private noReplicaDetail(req: ReadRequirement): string {
    const parts = this.ctx.nodes.replicas.map((r) => `${r.endpoint.name}: ${this.ctx.nodes.ineligibility(r, req) ?? 'eligible'}`);
    return `max_lag ${req.maxLagMs} ms${req.minLsn !== null ? `, after ${formatLsn(req.minLsn)}` : ''}; ${parts.join(', ') || 'no replicas configured'}`;
  }
}

/** The requirement of a choice that went to the primary before one was worked out (never read then). */
const NO_REQUIREMENT: ReadRequirement = Object.freeze({ maxLagMs: 0, minLsn: null });

function primary(choice: ReadChoice, reason: string): ReadChoice {
  choice.node = null;
  choice.reason = reason;
  return choice;
}

function kept(choice: ReadChoice, node: NodeEntry): ReadChoice {
  choice.node = node;
  choice.kept = true;
  return choice;
}
