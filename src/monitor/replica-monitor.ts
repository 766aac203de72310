import type { Logger } from 'pino';
import type { PgsplitConfig } from '../config/config.js';
import type { NodeEntry, ServerNodes } from '../server/server-nodes.js';
import { serialize } from '../codec/frontend-messages.js';
import { LagTracker } from './lag-tracker.js';
import { parseLsn, recordEndAt } from './lsn.js';
import type { MonitorConnection } from './monitor-connection.js';
import { MonitorProbe } from './monitor-probe.js';

/** monitor.interval / timeout / rise from the config, in ms and checks (defaults in DEFAULT_CONFIG). */
export type MonitorOptions = PgsplitConfig['monitor'];

// The monitor's queries, each a whole Query message built once: some run hundreds of times a second.
// Their answers come back as text columns in this order (see MonitorConnection).
//
// One check for every server: a replica answers with its received and replayed positions, a primary
// with its current one. The CASE keeps pg_current_wal_insert_lsn() from running during recovery, where
// it raises an error.
const CHECK = serialize.query(
  'SELECT pg_is_in_recovery() AS in_recovery, ' +
  'CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS current, ' +
  'pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed');
/**
 * The cheap samples between checks (monitor.lag_interval, monitor.fast_interval): WAL positions only. The
 * primary's CASE keeps a primary in recovery from raising an error every few milliseconds.
 */
const PRIMARY_POSITION = serialize.query('SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS lsn');
const REPLICA_POSITION = serialize.query('SELECT pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed');
/** The primary's position for read-your-writes (primaryLsnNow). */
const PRIMARY_LSN_NOW = serialize.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
/**
 * A replica's replay rate is measured over spans at least this long while it has received WAL it has not
 * replayed yet: replay comes in bursts, so a shorter span could read 0 on a healthy replica. A waiter
 * whose position the replica has received gives up when replay has not moved for this long.
 */
const RATE_SPAN_MS = 50;
/**
 * Received but not replayed WAL counts as a replay backlog only past this many bytes: the received
 * position may end inside a record that continues in WAL not sent yet (a flush ends on a page boundary
 * under synchronous_commit = off), which no replica can replay, however fast.
 */
const BACKLOG_SLACK = 16384n;
/** wal_segment_size in bytes (pg_settings reports it so), read once per connection to the primary. */
const SEGMENT_SIZE = serialize.query("SELECT setting AS segment_size FROM pg_settings WHERE name = 'wal_segment_size'");

/**
 * A replica's replay rate while it has received WAL it has not replayed: from `at`, when it was seen so at
 * `lsn`, to its next sample at least RATE_SPAN_MS later. `bytesPerMs` is null while unknown (no such
 * backlog that long). WAL the primary has not sent yet (not flushed under synchronous_commit = off, or
 * the network) says nothing about replay, so it does not count.
 */
interface ReplayRate {
  at: number;
  lsn: bigint | null;
  bytesPerMs: number | null;
}

/** A session waiting for a replica to replay `lsn`; `finish` settles it once. */
interface ReplayWaiter {
  lsn: bigint;
  /** Local time its wait ends. */
  deadline: number;
  /** Since when (and at which replay position) the replica has held all the WAL up to `lsn`; null: not yet. */
  held: { at: number; replayed: bigint } | null;
  finish: (ok: boolean) => void;
}

/**
 * Checks every server on a short interval over a connection of its own: reachable, in recovery or not,
 * and WAL positions, from which it keeps each replica's lag in bytes and in time (see LagTracker). It
 * writes what it finds into the ServerNodes entries, which the sessions read when they choose a
 * replica. It also answers two questions on demand: the primary's position right now (read-your-writes),
 * and "tell me when this replica has replayed that far" (bounded waits).
 *
 * Health has hysteresis: a failed or timed-out check takes a server out at once; it is put back after
 * `rise` consecutive passed checks (the very first pass at startup counts as enough).
 */
export class ReplicaMonitor {
  readonly lag: LagTracker;
  /** Queries sent to the servers so far (checks, position samples): the monitor's load, for benchmarks. */
  queries = 0;
  /** Called when a server goes out of rotation (sessions move their work off it). */
  onDown: ((n: NodeEntry, reason: string) => void) | null = null;
  private readonly probes: MonitorProbe[];
  private opts: MonitorOptions;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The primary's position requests: their own connection, so that checks never queue behind them. */
  private readonly lsnProbe: MonitorProbe;
  private lsnInFlight: Promise<bigint> | null = null;
  private lsnNext: Promise<bigint> | null = null;
  /** The primary's wal_segment_size (from its checks; 16 MiB, the default, until the first). */
  private segmentSize = 16n * 1024n * 1024n;
  private readonly replayWaiters = new Map<NodeEntry, ReplayWaiter[]>();
  private readonly rates = new Map<NodeEntry, ReplayRate>();
  /** The timer of the position samples (monitor.lag_interval). */
  private lagTimer: NodeJS.Timeout | null = null;
  /** Local time the primary's recorded position last moved forward. */
  private primaryMovedAt = -Infinity;

  constructor(
    private readonly nodes: ServerNodes,
    opts: MonitorOptions,
    private readonly log: Logger,
  ) {
    this.opts = opts;
    this.probes = [nodes.primary, ...nodes.replicas].map((n) => this.probe(n));
    this.lsnProbe = this.probe(nodes.primary);
    // Positions asked for more often than the samples (read-your-writes) share an entry: the grain stays
    // about half a sampling interval, and the history is not filled by requests.
    this.lag = new LagTracker({ minSpacingMs: opts.lagIntervalMs / 2 });
  }

  /** A probe of `n`; a new connection to the primary first reads its wal_segment_size. */
  private probe(n: NodeEntry): MonitorProbe {
    return new MonitorProbe(n, async (c: MonitorConnection, timeoutMs: number) => {
      if (n.role !== 'primary') return;
      const seg = (await c.run(SEGMENT_SIZE, timeoutMs))?.[0];
      if (seg !== undefined && seg !== null && /^\d+$/.test(seg)) this.segmentSize = BigInt(seg);
    });
  }

  /** Starts checking; the first round runs at once. */
  start(): void {
    if (this.timer || this.stopped) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
    this.startLagTimer();
  }

  private startLagTimer(): void {
    if (this.lagTimer) clearInterval(this.lagTimer);
    this.lagTimer = null;
    if (this.opts.lagIntervalMs >= this.opts.intervalMs) return; // the checks sample as often
    this.lagTimer = setInterval(() => this.lagTick(), this.opts.lagIntervalMs);
    this.lagTimer.unref();
  }

  /**
   * New monitor.interval / timeout / rise (a reload): the next checks use them; the timer restarts when
   * the interval changed.
   */
  configure(opts: MonitorOptions): void {
    const interval = opts.intervalMs !== this.opts.intervalMs;
    const lagInterval = opts.lagIntervalMs !== this.opts.lagIntervalMs;
    this.opts = opts;
    this.lag.setMinSpacing(opts.lagIntervalMs / 2);
    if (interval && this.timer) {
      clearInterval(this.timer);
      this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
      this.timer.unref();
    }
    if ((interval || lagInterval) && this.timer) this.startLagTimer();
  }

  /** Starts checking a replica a reload added; the first check runs at once. */
  addNode(n: NodeEntry): void {
    const p = this.probe(n);
    this.probes.push(p);
    if (!this.stopped) this.check(p).catch(() => {});
  }

  /** Stops checking a retired replica: its connection closes, sessions waiting for its replay give up. */
  removeNode(n: NodeEntry): void {
    const i = this.probes.findIndex((p) => p.node === n);
    if (i < 0) return;
    const p = this.probes[i] as MonitorProbe;
    p.retire('removed from the configuration');
    this.probes.splice(i, 1);
    for (const w of [...(this.replayWaiters.get(n) ?? [])]) w.finish(false);
    this.replayWaiters.delete(n);
    this.rates.delete(n);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.lagTimer) clearInterval(this.lagTimer);
    this.lagTimer = null;
    for (const waiters of this.replayWaiters.values()) for (const w of waiters) w.finish(false);
    this.replayWaiters.clear();
    // Retired, not just dropped: a check cut short here does not report its server down (which would
    // move the sessions still draining off it with the wrong error).
    for (const p of this.probes) p.retire('pgsplit is shutting down');
    this.lsnProbe.retire('pgsplit is shutting down');
  }

  /**
   * Runs one round of checks now and resolves when every check of it has finished (for tests and startup).
   * A check already in flight started before this call, maybe with the login a reload just replaced, so
   * it is waited for and another runs after it.
   */
  async checkNow(): Promise<void> {
    await Promise.all(this.probes.map(async (p) => {
      if (p.inFlight) await p.inFlight;
      await this.check(p);
    }));
  }

  /**
   * Checks until every reachable replica's lag is known, for at most monitor.timeout: at startup a
   * replica still replaying what came before the primary's first sample has an unknown lag (too much),
   * and would get no reads until the next checks, although it is a few milliseconds behind.
   */
  async warmUp(): Promise<void> {
    const deadline = performance.now() + this.opts.timeoutMs;
    await this.checkNow();
    const unknown = (): boolean => this.nodes.replicas.some((r) => r.health === 'up' && r.inRecovery === true && this.lagMs(r) === null);
    while (unknown() && !this.stopped && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
      await this.checkNow();
    }
  }

  private tick(): void {
    for (const p of this.probes) this.check(p).catch((e: unknown) => this.log.error({ err: String(e) }, 'monitor check failed unexpectedly'));
  }

  /**
   * The position samples between checks: the primary's every time (its moves are what lag is measured
   * against), a replica's while it is behind the primary's latest position or the primary moved within
   * the last check interval. An idle primary with current replicas costs one query per interval to it.
   */
  private lagTick(): void {
    const now = performance.now();
    const primaryLsn = this.lag.primaryLsn;
    const writing = now - this.primaryMovedAt < this.opts.intervalMs;
    for (const p of this.probes) {
      const n = p.node;
      if (n.health !== 'up') continue;
      if (n.role === 'replica' && !writing && n.replayedLsn !== null && primaryLsn !== null && n.replayedLsn >= primaryLsn) continue;
      this.sample(p).catch(() => {});
    }
  }

  /**
   * Asks a server for its WAL position alone (one small query; at most one in flight per server): the
   * primary's insert position, a replica's received and replayed ones. A check in flight answers the same
   * and more, so it stands in. A sample that fails is a failed check.
   */
  private sample(p: MonitorProbe): Promise<void> {
    if (p.inFlight) return p.inFlight;
    if (p.sampling) return p.sampling;
    const started = performance.now();
    const run = this.failingAsCheck(p, async () => {
      if (p.node.role === 'primary') {
        const row = await this.run(p, PRIMARY_POSITION);
        const insert = parseLsn(row?.[0] ?? '');
        if (insert !== null && !p.retired) this.notePrimary(recordEndAt(insert, this.segmentSize), started);
      } else {
        const row = await this.run(p, REPLICA_POSITION);
        if (!row) throw new Error('the position query returned no row');
        if (!p.retired) this.noteReplica(p.node, row[0] ?? null, row[1] ?? null, started);
      }
    });
    p.sampling = run.finally(() => {
      p.sampling = null;
    });
    return p.sampling;
  }

  /** The primary was at `lsn` at local time `at` (a sample stands for the moment its query started). */
  private notePrimary(lsn: bigint, at: number): void {
    const before = this.lag.primaryLsn;
    this.lag.recordPrimary(lsn, at);
    if (before === null || lsn > before) this.primaryMovedAt = at;
  }

  /** A replica's positions as a check or sample found them at local time `at`; wakes its waiters. */
  private noteReplica(n: NodeEntry, received: string | null, replayed: string | null, at: number): void {
    n.receivedLsn = received === null ? null : parseLsn(received);
    n.replayedLsn = replayed === null ? null : parseLsn(replayed);
    this.noteRate(n, n.receivedLsn, n.replayedLsn, at);
    this.wakeReplayWaiters(n);
  }

  /** Keeps the replica's replay rate over spans in which it had a replay backlog (see ReplayRate). */
  private noteRate(n: NodeEntry, received: bigint | null, replayed: bigint | null, at: number): void {
    let r = this.rates.get(n);
    if (!r) {
      r = { at, lsn: replayed, bytesPerMs: null };
      this.rates.set(n, r);
    }
    const backlog = replayed !== null && received !== null && received - replayed > BACKLOG_SLACK;
    if (!backlog || r.lsn === null || replayed < r.lsn) {
      // Replayed all it received (nothing to judge a rate by), or a new start: the next span begins here.
      r.at = at;
      r.lsn = replayed;
      if (!backlog) r.bytesPerMs = null;
      return;
    }
    if (at - r.at < RATE_SPAN_MS) return;
    r.bytesPerMs = Number(replayed - r.lsn) / (at - r.at);
    r.at = at;
    r.lsn = replayed;
  }

  /**
   * True when replica `n` cannot replay up to `lsn` within `ms` at the rate it has been replaying while
   * behind (paused replay: never). False when that rate is unknown (it has not stayed behind long enough
   * to tell): then it is worth waiting.
   */
  cannotCatchUp(n: NodeEntry, lsn: bigint, ms: number): boolean {
    const rate = this.rates.get(n)?.bytesPerMs ?? null;
    if (rate === null || n.replayedLsn === null || n.replayedLsn >= lsn) return false;
    return Number(lsn - n.replayedLsn) > rate * ms;
  }

  private check(p: MonitorProbe): Promise<void> {
    if (p.inFlight) return p.inFlight;
    const started = performance.now();
    const run = this.failingAsCheck(p, async () => {
      const row = await this.run(p, CHECK);
      if (!row) throw new Error('the check query returned no row');
      if (!p.retired) this.passed(p.node, row, started);
    });
    p.inFlight = run.finally(() => {
      p.inFlight = null;
    });
    return p.inFlight;
  }

  /** Runs a check or sample of `p`; when it fails, its connection is dropped and the server fails its check. */
  private async failingAsCheck(p: MonitorProbe, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (e) {
      p.drop();
      if (!p.retired) this.failed(p.node, e instanceof Error ? e.message : String(e));
    }
  }

  /** Runs `query` on the probe's connection (connecting first when it has none), within monitor.timeout. */
  private run(p: MonitorProbe, query: Buffer): Promise<Array<string | null> | null> {
    this.queries++;
    return p.run(query, this.opts);
  }

  /** A check passed: `row` is its answer (see CHECK), as text. */
  private passed(n: NodeEntry, row: Array<string | null>, started: number): void {
    const [inRecoveryText, current = null, received = null, replayed = null] = row;
    const inRecovery = inRecoveryText === 't';
    n.inRecovery = inRecovery;
    if (n.role === 'primary') {
      const insert = current === null ? null : parseLsn(current);
      // A sample stands for the moment the query started: the position can only be later than that.
      if (insert !== null) this.notePrimary(recordEndAt(insert, this.segmentSize), started);
      if (inRecovery && n.health !== 'down') this.log.warn({ node: n.endpoint.name }, 'the primary is in recovery: writes will fail until it is promoted');
    } else {
      if (!inRecovery && !n.promoted) {
        n.promoted = true;
        this.log.warn({ node: n.endpoint.name }, 'replica is no longer in recovery (promoted?): no reads go to it');
      } else if (inRecovery && n.promoted) n.promoted = false;
      this.noteReplica(n, received, replayed, started);
    }
    n.okStreak++;
    n.failReason = null;
    if (n.health === 'unknown' || (n.health === 'down' && n.okStreak >= this.opts.rise)) {
      if (n.health === 'down') this.log.info({ node: n.endpoint.name, checks: n.okStreak }, 'server back in rotation');
      n.health = 'up';
    }
  }

  private failed(n: NodeEntry, reason: string): void {
    n.okStreak = 0;
    n.failReason = reason;
    if (n.health !== 'down') {
      n.health = 'down';
      this.log.warn({ node: n.endpoint.name, reason }, 'server out of rotation');
      try {
        this.onDown?.(n, reason);
      } catch (e) {
        this.log.error({ node: n.endpoint.name, err: String(e) }, 'moving work off a server failed');
      }
    }
    if (n.role === 'replica') this.wakeReplayWaiters(n);
  }

  /**
   * A session could not reach this server (connection refused, host unreachable, connect timeout): out
   * until checks pass again.
   */
  reportUnreachable(n: NodeEntry, reason: string): void {
    this.failed(n, reason);
  }

  /**
   * A session lost one connection to this server (its backend ended, a socket error): that alone says
   * little about the server (pg_terminate_backend, idle_session_timeout), so it is checked again at once
   * and taken out only if that check fails.
   */
  recheck(n: NodeEntry): void {
    const p = this.probes.find((x) => x.node === n);
    if (p) this.check(p).catch(() => {});
  }

  /** Lag of a replica in ms at this moment: an upper bound; null when unknown (counts as too much). */
  lagMs(n: NodeEntry): number | null {
    if (n.replayedLsn === null) return null;
    return this.lag.timeLag(n.replayedLsn, performance.now());
  }

  /** Lag of a replica in bytes behind the primary's latest known position, or null. */
  lagBytes(n: NodeEntry): number | null {
    if (n.replayedLsn === null) return null;
    return this.lag.bytesBehind(n.replayedLsn);
  }

  /**
   * A session saw replica `n` replay `lsn` (a read's guard passed there): its known position moves up to
   * it, as a sample would have found, so that reads needing no more stay there without a guard.
   */
  replayedAtLeast(n: NodeEntry, lsn: bigint): void {
    if (n.replayedLsn !== null && n.replayedLsn >= lsn) return;
    n.replayedLsn = lsn;
    if (n.receivedLsn === null || n.receivedLsn < lsn) n.receivedLsn = lsn;
    this.wakeReplayWaiters(n);
  }

  /** The position covering what was inserted before the primary answered pg_current_wal_insert_lsn() with `insert`. */
  recordEnd(insert: bigint): bigint {
    return recordEndAt(insert, this.segmentSize);
  }

  /**
   * The primary's WAL position, read after this call (so after every write the caller has seen complete),
   * on a connection of its own. Callers share queries: one in flight, and one that starts when it ends,
   * which every later caller joins.
   */
  primaryLsnNow(): Promise<bigint> {
    if (this.lsnNext) return this.lsnNext;
    if (!this.lsnInFlight) return this.startLsnQuery();
    const next = this.lsnInFlight.then(() => undefined, () => undefined).then(() => {
      if (this.lsnNext === next) this.lsnNext = null;
      return this.startLsnQuery();
    });
    this.lsnNext = next;
    return next;
  }

  private startLsnQuery(): Promise<bigint> {
    const started = performance.now();
    const q = (async () => {
      try {
        const insert = parseLsn((await this.run(this.lsnProbe, PRIMARY_LSN_NOW))?.[0] ?? '');
        if (insert === null) throw new Error('the primary did not report a WAL position');
        const lsn = recordEndAt(insert, this.segmentSize);
        this.notePrimary(lsn, started);
        return lsn;
      } catch (e) {
        this.lsnProbe.drop(); // a query stuck on a frozen primary must not hold up the next one
        throw e;
      }
    })();
    this.lsnInFlight = q;
    const clear = (): void => {
      if (this.lsnInFlight === q) this.lsnInFlight = null;
    };
    q.then(clear, clear);
    return q;
  }

  /**
   * Resolves true once replica `n` has replayed `lsn`, false when `timeoutMs` pass first, the replica
   * fails, or its replay rate says it cannot get there in time (then at once). No query when its last
   * known position covers `lsn`; else it is asked for its position at once and every
   * monitor.fast_interval while anyone waits on it.
   */
  waitForReplay(n: NodeEntry, lsn: bigint, timeoutMs: number): Promise<boolean> {
    if (n.replayedLsn !== null && n.replayedLsn >= lsn) return Promise.resolve(true);
    if (timeoutMs <= 0 || this.stopped || this.cannotCatchUp(n, lsn, timeoutMs)) return Promise.resolve(false);
    if (!this.probes.some((p) => p.node === n)) return Promise.resolve(false); // retired: nothing would ever tell
    return new Promise((resolve) => {
      let list = this.replayWaiters.get(n);
      if (!list) {
        list = [];
        this.replayWaiters.set(n, list);
      }
      const w: ReplayWaiter = {
        lsn,
        deadline: performance.now() + timeoutMs,
        held: null,
        finish: (ok) => {
          clearTimeout(timer);
          const l = this.replayWaiters.get(n);
          const i = l ? l.indexOf(w) : -1;
          if (l && i >= 0) l.splice(i, 1);
          resolve(ok);
        },
      };
      // The wait is bounded by its own timer, not by how long a check of the replica takes.
      const timer = setTimeout(() => w.finish(false), timeoutMs);
      list.push(w);
      if (list.length === 1) this.pollReplay(n).catch(() => {});
    });
  }

  /**
   * Samples a replica's position while sessions wait for it to replay one: at once, then every
   * monitor.fast_interval (start to start; one query in flight), until no one waits. A check or sample
   * already in flight when the wait began may predate the position waited for: its answer is taken, and
   * a sample of the wait's own follows at once.
   */
  private async pollReplay(n: NodeEntry): Promise<void> {
    const probe = this.probes.find((p) => p.node === n);
    while (!this.stopped && probe && (this.replayWaiters.get(n)?.length ?? 0) > 0) {
      const own = probe.inFlight === null && probe.sampling === null;
      const started = performance.now();
      await this.sample(probe);
      const rest = this.opts.fastIntervalMs - (performance.now() - started);
      if (own && rest > 0 && (this.replayWaiters.get(n)?.length ?? 0) > 0) await new Promise((r) => setTimeout(r, rest));
    }
  }

  private wakeReplayWaiters(n: NodeEntry): void {
    const list = this.replayWaiters.get(n);
    if (!list || list.length === 0) return;
    const replayed = n.replayedLsn;
    const ok = n.health !== 'down' && n.inRecovery === true;
    const now = performance.now();
    const received = n.receivedLsn;
    for (const w of [...list]) {
      if (!ok) w.finish(false);
      else if (replayed !== null && replayed >= w.lsn) w.finish(true);
      else if (this.cannotCatchUp(n, w.lsn, w.deadline - now)) w.finish(false);
      else if (replayed !== null && received !== null && received >= w.lsn) {
        // The replica has every record up to the position: only its replay is missing. Replay that does
        // not move at all for a while is paused or blocked (a conflict with a query on the replica).
        if (w.held === null || replayed > w.held.replayed) w.held = { at: now, replayed };
        else if (now - w.held.at >= RATE_SPAN_MS) w.finish(false);
      }
    }
  }
}
