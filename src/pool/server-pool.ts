/**
 * A pool of server connections for one (node, server role, database, user): at most pool.size of them,
 * handed to clients one lease at a time, so that many clients run on few server connections (as
 * PgBouncer, PgDog and pgcat do).
 *
 * Lifecycle of a connection: connecting → leased ⇄ (cleaning →) idle → closed. A client that finds no
 * idle connection waits in a FIFO queue; a new connection (while the pool is under pool.size) or a
 * released one goes to the longest waiter. A wait longer than pool.max_client_wait ends with an error
 * naming the pool. On release the connection's cleanup plan (ServerState.cleanupPlan) runs; a connection
 * that cannot be cleaned, that failed, or that outlived pool.server_lifetime is closed instead. Idle
 * connections are taken newest first (LIFO, PgBouncer's default), so the ones least used age out through
 * pool.server_idle_timeout, down to pool.min_idle, which the pool also keeps open ahead of demand.
 * A server that sends anything to an idle connection (a FATAL at shutdown, idle_session_timeout) has
 * its connection closed. In transaction mode a client parks its lease between transactions instead of
 * releasing it, until another client needs a connection (ParkedLeases); parked ones count as idle.
 *
 * How sessions use it (through PooledSource): acquire with the client's login before a transaction's
 * (transaction mode) or the session's (session mode) first statement; run ServerState.settingsPlan for
 * the client's settings; feed every server message through lease.state.observe; set the state's dirty
 * flags from the classifier (SET, LISTEN, temporary tables, advisory locks, SQL PREPARE); release at the
 * ReadyForQuery 'I' that ends the transaction (or at the session's end), releaseWithError when the
 * connection failed or the client left mid-statement.
 */
import type { PgsplitConfig } from '../config/config.js';
import { errors, PgsplitError } from '../errors.js';
import { ServerConnection, type ServerTarget } from '../server/server-connection.js';
import { ServerState, type CleanupPlan } from '../server/server-state.js';
import { runInternalQuery } from '../server/server-query.js';
import { Lease, type PooledServer } from './lease.js';
import { ParkedLeases } from './parked-leases.js';

/** What a pool is for: its key in the pool registry and in SHOW POOLS. */
export interface PoolKey {
  /** Node name from the config ('primary', 'replica1', ...). */
  node: string;
  role: 'primary' | 'replica';
  database: string;
  /** The login its connections use. */
  user: string;
}

/**
 * What a pool needs of the configuration: pool.* (durations in ms; 0 turns a limit off) and
 * limits.connect_timeout, which bounds a new connection and the cleanup statement of a released one.
 * pool.mode is the session's business (when it releases), not the pool's.
 */
export type PoolSettings = Omit<PgsplitConfig['pool'], 'mode'> & { connectTimeoutMs: number };

export function poolSettingsFrom(config: PgsplitConfig): PoolSettings {
  const { mode: _mode, ...pool } = config.pool;
  return { ...pool, connectTimeoutMs: config.limits.connectTimeoutMs };
}

/** The counters of SHOW POOLS for one pool. */
export interface PoolStats {
  clientsActive: number;
  clientsWaiting: number;
  serversActive: number;
  serversIdle: number;
  /** Connecting, or running the cleanup of a released lease. */
  serversPending: number;
  /** Of serversPending, those running the cleanup of a released lease (the rest are connecting). */
  serversCleaning: number;
  /** How long the client waiting longest has waited so far, ms. */
  longestWaitMs: number;
  /** Since the pool started. */
  connects: number;
  closes: number;
  waitTimeouts: number;
}

/** One connection of a pool, for SHOW SERVERS (connections being opened or cleaned are not listed). */
export interface PoolServerRow {
  /** Pool-local number. */
  id: number;
  state: 'active' | 'idle';
  /** The lease holder's identity (as given to acquire); null when idle. */
  client: string | null;
  backendPid: number;
}

export type Connect = (target: ServerTarget, params: Record<string, string>, timeoutMs: number) => Promise<ServerConnection>;

/**
 * The startup parameters a connection logs in with beyond the pool's own (user, database): a client's
 * settings (client_encoding, DateStyle, TimeZone, options -c ...). They are the connection's reset values,
 * which RESET and DISCARD ALL return to, so a client gets connections logged in with its own: a RESET in
 * the client's session then means what it means on a direct connection. `key` compares logins; clients of
 * one application send the same parameters and share every connection.
 */
export interface LoginParams {
  readonly key: string;
  readonly params: Readonly<Record<string, string>>;
  /** The settings these parameters set (options -c ones included): values a reset returns to. */
  readonly settings: ReadonlyMap<string, string>;
}

/** The pool's login alone. */
export const POOL_LOGIN: LoginParams = Object.freeze({ key: '', params: Object.freeze({}), settings: new Map<string, string>() });

interface Waiter {
  identity: string;
  login: LoginParams;
  since: number;
  resolve: (lease: Lease) => void;
  reject: (err: Error) => void;
  /** Stops its max_client_wait timer and its abort listener: called once it leaves the queue. */
  done: () => void;
}

/** How often idle timeouts, lifetimes and min_idle are looked after, at most. */
/** What a leased connection's data goes to until its holder points it elsewhere. */
function noop(): void {}

/** What release returns when the connection is back at once (no cleanup to wait for). */
const RELEASED: Promise<void> = Promise.resolve();
const MAINTENANCE_MS = 1000;

/**
 * What ends a client's wait for a connection (it went away): the part of an AbortSignal acquire uses, so
 * that one serves, or something lighter (the session's SessionClosing).
 */
export interface WaitSignal {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** Why an aborted acquire failed: the signal's reason when it is an Error. */
function abortReason(signal: WaitSignal | undefined): Error {
  const r: unknown = signal?.reason;
  return r instanceof Error ? r : new Error('the client stopped waiting for a server connection');
}

/** A readable name of a pool, for messages and logs. */
export function poolName(key: PoolKey): string {
  return `${key.node} (${key.role}) database "${key.database}" user "${key.user}"`;
}

/**
 * A pool's short label, `database/user` (its node and role go beside it): the `pool` column of SHOW
 * SERVERS and the `pool` label of the pool metrics.
 */
export function poolLabel(key: PoolKey): string {
  return `${key.database}/${key.user}`;
}

export class ServerPool {
  readonly key: PoolKey;
  private readonly idle: PooledServer[] = [];
  private readonly leased = new Set<Lease>();
  /** Of `leased`, those parked by their holders between transactions (see ParkedLeases). */
  private readonly parked = new ParkedLeases();
  private readonly waiters: Waiter[] = [];
  /** Connections being opened, and released ones running their cleanup: they count towards pool.size. */
  private pending = 0;
  /** Of `pending`, the released connections running their cleanup. */
  private cleaning = 0;
  private nextId = 1;
  /** The login of the last connection opened: what connections opened for pool.min_idle log in with. */
  private lastLogin: LoginParams = POOL_LOGIN;
  private counters = { connects: 0, closes: 0, waitTimeouts: 0 };
  private closedWith: PgsplitError | null = null;
  private timer: NodeJS.Timeout;
  /**
   * Told how long each client waited for its lease, in ms (0 when a connection was idle), as it is handed
   * out: the metrics' wait histogram. Set by the registry; called once per lease, so it must be cheap.
   */
  onWaited: ((ms: number) => void) | null = null;

  /**
   * `params`: the startup parameters of its connections (user, database; a client's own values are
   * applied per lease through ServerState.settingsPlan). `connect` is ServerConnection.connect unless a
   * test gives another.
   */
  constructor(
    key: PoolKey,
    private readonly target: ServerTarget,
    private readonly params: Record<string, string>,
    private settings: PoolSettings,
    private readonly connect: Connect = (t, p, ms) => ServerConnection.connect(t, p, ms, 'limits.connect_timeout'),
  ) {
    this.key = key;
    this.timer = this.startMaintenance();
    this.maintain();
  }

  /**
   * New settings (a reload): a smaller pool.size closes idle connections beyond it now and leased ones as
   * they come back; a larger one, or a client's wait, applies from the next acquire. Leases already out
   * and clients already waiting keep their terms (a waiter's max_client_wait timer runs on).
   */
  reconfigure(settings: PoolSettings): void {
    if (this.closedWith !== null) return;
    this.settings = settings;
    clearInterval(this.timer);
    this.timer = this.startMaintenance();
    while (this.total > settings.size && this.idle.length > 0) {
      const oldest = this.idle.shift();
      if (oldest !== undefined) this.dispose(oldest);
    }
    // Parked ones come back (and are closed) until the pool fits.
    while (this.total > settings.size && this.parked.reclaimOldest(null)) { /* each pass gives one back */ }
    this.maintain();
  }

  /** Idle timeouts and lifetimes are looked at twice per period of the shorter of them, at most every second. */
  private startMaintenance(): NodeJS.Timeout {
    const { serverIdleTimeoutMs, serverLifetimeMs } = this.settings;
    const period = Math.max(10, Math.min(MAINTENANCE_MS, ...[serverIdleTimeoutMs, serverLifetimeMs].filter((ms) => ms > 0).map((ms) => ms / 2)));
    const timer = setInterval(() => this.maintain(), period);
    timer.unref();
    return timer;
  }

  get name(): string {
    return poolName(this.key);
  }

  /** Closed (shutdown, or its node left the configuration): it lends nothing more. */
  get closed(): boolean {
    return this.closedWith !== null;
  }

  private get total(): number {
    return this.idle.length + this.leased.size + this.pending;
  }

  /**
   * A connection for `identity` (client id and address, for logs) logged in with `login`: an idle one at
   * once, else the next to come free or be opened, in arrival order. When the pool is full and only
   * connections of other logins are idle, the oldest of them is closed to open one for this client (mixed
   * clients cost reconnects, never a connection with the wrong reset values). Rejects with POOL_WAIT_TIMEOUT past pool.max_client_wait,
   * with the server's error when opening a connection for it fails, once the pool is closed, and with
   * `signal`'s reason when it aborts (the client went away while waiting: it leaves the queue).
   */
  acquire(identity: string, signal?: WaitSignal, login: LoginParams = POOL_LOGIN): Promise<Lease> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    const now = performance.now();
    // Idle connections while clients wait are of logins none of them has (they would have been lent): an
    // idle one of this client's login is its to take without jumping the queue.
    if (this.waiters.length === 0 || this.idle.length > 0) {
      const server = this.takeIdleOrParked(now, login.key);
      if (server !== undefined) return Promise.resolve(this.lease(server, identity, now, now));
    }
    return new Promise<Lease>((resolve, reject) => {
      const leave = (err: Error): void => {
        const i = this.waiters.indexOf(waiter);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        waiter.done();
        reject(err);
      };
      const timer = this.settings.maxClientWaitMs <= 0 ? null : setTimeout(() => {
        this.counters.waitTimeouts++;
        leave(errors.poolWaitTimeout(this.name, Math.round(performance.now() - now), this.settings.size));
      }, this.settings.maxClientWaitMs);
      const onAbort = (): void => leave(abortReason(signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter: Waiter = {
        identity, login, since: now, resolve, reject,
        done: () => {
          if (timer !== null) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      this.waiters.push(waiter);
      this.grow();
    });
  }

  /** An idle connection at once, when one is idle and nobody waits; else null (acquire waits). */
  tryAcquire(identity: string, login: LoginParams = POOL_LOGIN): Lease | null {
    if (this.closedWith !== null || (this.waiters.length > 0 && this.idle.length === 0)) return null;
    const now = performance.now();
    const server = this.takeIdleOrParked(now, login.key);
    return server === undefined ? null : this.lease(server, identity, now, now);
  }

  /**
   * pool.mode transaction: the holder keeps `lease` between its transactions until another client needs a
   * connection (see ParkedLeases); `reclaim` makes it let go then, synchronously. False when it must come
   * back now: clients wait, the pool is closed, or the connection is not fit to lend (`now`: the holder's
   * latest reading of performance.now(), for the lifetime and idle timeout).
   */
  park(lease: Lease, reclaim: () => void, now: number): boolean {
    if (lease.ended || this.closedWith !== null || this.waiters.length > 0) return false;
    const state = lease.state;
    if (state.transactionStatus !== 'I' || state.unusable !== null || this.expired(lease.server, now)) return false;
    this.parked.add(lease, reclaim, now);
    return true;
  }

  /** The holder of a parked lease uses it again. */
  unpark(lease: Lease): void {
    this.parked.remove(lease);
  }

  /**
   * The client is done with the connection (in transaction mode: at the end of each transaction). Its
   * cleanup plan runs; then it goes to the longest waiter, or idle. A connection that cannot be cleaned
   * (left in a transaction, out of step), whose cleanup fails, or past pool.server_lifetime is closed.
   * Resolves once the connection is back (or closed); the client need not wait for it.
   */
  release(lease: Lease): Promise<void> {
    if (!this.end(lease)) return RELEASED;
    const server = lease.server;
    // Part of a server message still unread: whatever comes next is out of step with any new client.
    if (server.conn.reader.bufferedBytes > 0) server.state.unusable ??= 'part of a server message was still unread';
    const plan = server.state.cleanupPlan();
    if (plan.kind === 'close' || this.closedWith !== null) {
      this.dispose(server);
      return RELEASED;
    }
    // Most releases need no cleanup (transaction mode, nothing changed): no promise of their own.
    if (plan.sql !== null) return this.cleanThenGiveBack(server, plan.kind, plan.sql);
    this.giveBackUnlessDone(server);
    return RELEASED;
  }

  /** Runs a connection's cleanup, then gives it back (closed instead when the cleanup failed). */
  private async cleanThenGiveBack(server: PooledServer, kind: CleanupPlan['kind'], sql: string): Promise<void> {
    this.pending++;
    this.cleaning++;
    let ok = false;
    try {
      const result = await runInternalQuery(server.conn, server.state, sql, this.settings.connectTimeoutMs);
      ok = result.error === null && result.status === 'I';
    } catch {
      ok = false;
    }
    this.pending--;
    this.cleaning--;
    if (!ok || this.closedWith !== null) return this.dispose(server);
    server.state.cleaned(kind);
    // The statements clients prepared under their own names went with it.
    if (kind === 'deallocate-all' || kind === 'discard-all') server.conn.prepared.clear();
    this.giveBackUnlessDone(server);
  }

  /** Idle again (or to a waiter), unless past its lifetime or beyond a pool.size lowered by a reload. */
  private giveBackUnlessDone(server: PooledServer): void {
    const now = performance.now();
    if (this.expired(server, now) || this.total >= this.settings.size) this.dispose(server);
    else this.giveBack(server, now);
  }

  /** The connection failed, or its state cannot be known (client gone mid-statement): closed, not reused. */
  releaseWithError(lease: Lease): void {
    if (!this.end(lease)) return;
    this.dispose(lease.server, true);
  }

  /**
   * The connection leaves the pool without being closed: its caller owns it from now on (and closes it).
   * Its place in pool.size is free again.
   */
  remove(lease: Lease): ServerConnection {
    this.end(lease);
    lease.server.conn.socket.removeAllListeners('close');
    this.grow();
    return lease.server.conn;
  }

  /** Closes every idle connection now, parked ones included (the leased ones stay); for a benchmark between its phases. */
  closeIdle(): void {
    this.parked.reclaimAll();
    for (const s of this.idle.splice(0)) this.dispose(s);
  }

  /** The counters of SHOW POOLS. */
  stats(): PoolStats {
    const now = performance.now();
    return {
      // A parked connection holds nothing of its client's and goes to whoever needs it: idle.
      clientsActive: this.leased.size - this.parked.size,
      clientsWaiting: this.waiters.length,
      serversActive: this.leased.size - this.parked.size,
      serversIdle: this.idle.length + this.parked.size,
      serversPending: this.pending,
      serversCleaning: this.cleaning,
      longestWaitMs: this.waiters.length === 0 ? 0 : Math.round(now - (this.waiters[0]?.since ?? now)),
      ...this.counters,
    };
  }

  /** SHOW SERVERS: the leased connections, then the idle ones (parked ones first). */
  servers(): PoolServerRow[] {
    const active = [...this.leased].filter((l) => l.parkIndex < 0);
    return [
      ...active.map((l): PoolServerRow => ({ id: l.server.id, state: 'active', client: l.identity, backendPid: l.conn.backendPid })),
      ...this.parked.all().map((l): PoolServerRow => ({ id: l.server.id, state: 'idle', client: null, backendPid: l.conn.backendPid })),
      ...this.idle.map((s): PoolServerRow => ({ id: s.id, state: 'idle', client: null, backendPid: s.conn.backendPid })),
    ];
  }

  /**
   * Closes the idle connections and refuses new acquires with `why`; waiting clients get `why` too.
   * Leased connections are closed as they come back.
   */
  close(why: PgsplitError = errors.shuttingDown()): void {
    if (this.closedWith !== null) return;
    this.closedWith = why;
    clearInterval(this.timer);
    for (const w of this.waiters.splice(0)) {
      w.done();
      w.reject(why);
    }
    // Their holders let them go now, and they are closed as they come back.
    this.parked.reclaimAll();
    for (const s of this.idle.splice(0)) this.dispose(s);
  }

  /** Closes idle connections past their idle timeout (down to min_idle) or lifetime; opens up to min_idle. */
  private maintain(): void {
    if (this.closedWith !== null) return;
    const now = performance.now();
    const { serverIdleTimeoutMs: idleMs, minIdle } = this.settings;
    // A connection parked as long as pool.server_idle_timeout (its client idle that long), or past its
    // lifetime, comes back: idle, it is closed like any other once it has been idle too long.
    for (const l of this.parked.all()) {
      if ((idleMs > 0 && now - l.parkedSince >= idleMs) || this.expired(l.server, now)) this.parked.reclaim(l);
    }
    // Oldest idle first (the front of the list): those are the ones LIFO reuse leaves unused.
    for (const s of [...this.idle]) {
      const idleTooLong = idleMs > 0 && now - s.idleSince >= idleMs && this.idle.length > minIdle;
      if (idleTooLong || this.expired(s, now)) {
        this.idle.splice(this.idle.indexOf(s), 1);
        this.dispose(s);
      }
    }
    this.grow();
  }

  /**
   * Opens connections while clients wait for more than are being opened (each with the login of the
   * waiter it is for), and up to min_idle. A full pool with idle connections while clients wait has only
   * connections of other logins idle (one of a waiter's own would have been lent): the oldest makes way.
   */
  private grow(): void {
    for (;;) {
      if (this.closedWith !== null) return;
      const forWaiter = this.waiters[this.pending];
      if (forWaiter === undefined && this.idle.length + this.pending >= this.settings.minIdle) return;
      if (this.total >= this.settings.size) {
        // A parked connection is its client's only until someone needs one: this waiter does. One of its
        // login comes back to it; else one of another login comes back and is closed to make room.
        if (forWaiter !== undefined && (this.parked.reclaimOldest(forWaiter.login.key) || this.parked.reclaimOldest(null))) continue;
        const oldest = forWaiter === undefined ? undefined : this.idle.shift();
        if (oldest === undefined) return;
        this.closeConnection(oldest);
      }
      this.open(forWaiter?.login ?? this.lastLogin, forWaiter);
    }
  }

  /** Opens a connection logging in with `login`, for `waiter` (or for min_idle). */
  private open(login: LoginParams, waiter: Waiter | undefined): void {
    this.pending++;
    const params = login.key === '' ? this.params : { ...this.params, ...login.params };
    this.connect(this.target, params, this.settings.connectTimeoutMs).then((conn) => {
      this.pending--;
      this.counters.connects++;
      this.lastLogin = login;
      const now = performance.now();
      const server: PooledServer = {
        id: this.nextId++, conn, login: login.key, createdAt: now, idleSince: now,
        state: new ServerState(conn.parameters, this.settings.preparedStatements, login.settings),
        whileIdle: noop,
      };
      // Made once per connection, not at every return to idle (transaction mode: every transaction).
      server.whileIdle = () => this.sentWhileIdle(server);
      // For its whole life: a socket error without a listener would end the process.
      conn.socket.on('error', () => undefined);
      conn.socket.on('close', () => this.lost(server));
      if (this.closedWith !== null) return this.dispose(server);
      this.giveBack(server);
    }, (e: unknown) => {
      this.pending--;
      // The client the connection was opened for learns why, or, when it has left, the next with its login:
      // the failure may be the login's own (a startup parameter the server refuses), never another
      // login's business. The others keep waiting (the next release or attempt may succeed).
      let i = waiter === undefined ? -1 : this.waiters.indexOf(waiter);
      if (i < 0 && waiter !== undefined) i = this.waiters.findIndex((w) => w.login.key === login.key);
      const w = i < 0 ? undefined : this.waiters[i];
      if (w !== undefined) {
        this.waiters.splice(i, 1);
        w.done();
        w.reject(e instanceof Error ? e : new Error(String(e)));
      } else if (waiter !== undefined) {
        // Its client left: the clients still waiting need the place it took.
        this.grow();
      }
    });
  }

  /**
   * A usable connection: to the longest waiter with its login, or idle. When clients of other logins
   * wait, it is closed instead so that one can be opened for them.
   */
  private giveBack(server: PooledServer, now = performance.now()): void {
    if (this.waiters.length > 0) {
      const i = this.waiters.findIndex((w) => w.login.key === server.login);
      const w = this.waiters[i];
      if (w === undefined) return this.dispose(server);
      // The front of the queue most often: shift is O(1) in V8, splice moves every other waiter.
      if (i === 0) this.waiters.shift();
      else this.waiters.splice(i, 1);
      w.done();
      w.resolve(this.lease(server, w.identity, w.since, now));
      return;
    }
    server.idleSince = now;
    server.conn.onData = server.whileIdle;
    this.idle.push(server);
  }

  /** Anything a server sends to an idle connection means it is going away (a FATAL, a shutdown). */
  private sentWhileIdle(server: PooledServer): void {
    server.state.unusable = 'the server sent something while idle';
    const i = this.idle.indexOf(server);
    if (i >= 0) this.idle.splice(i, 1);
    this.dispose(server);
  }

  /**
   * An idle connection logged in with `login`; in a full pool, else the one parked longest with that login,
   * given back for it. Below pool.size a connection is opened instead (acquire): parked ones stay with their
   * clients, so that a pool of busy clients grows to one connection each (up to pool.size), not to as many
   * as run at one moment, and none of them borrows again at every transaction.
   */
  private takeIdleOrParked(now: number, login: string): PooledServer | undefined {
    const idle = this.takeIdle(now, login);
    if (idle !== undefined || this.total < this.settings.size) return idle;
    return this.parked.reclaimOldest(login) ? this.takeIdle(now, login) : undefined;
  }

  /** The newest idle connection logged in with `login` (the last one, most often); spent ones met are closed. */
  private takeIdle(now: number, login: string): PooledServer | undefined {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const s = this.idle[i] as PooledServer;
      if (this.expired(s, now) || s.conn.state !== 'ready') {
        this.idle.splice(i, 1);
        this.dispose(s);
      } else if (s.login === login) {
        this.idle.splice(i, 1);
        return s;
      }
    }
    return undefined;
  }

  private lease(server: PooledServer, identity: string, since: number, now: number): Lease {
    server.conn.onData = noop;
    const lease = new Lease(server, identity, Math.round(now - since), now);
    this.leased.add(lease);
    this.onWaited?.(now - since);
    return lease;
  }

  /** Takes a lease back once; false when it had already ended. */
  private end(lease: Lease): boolean {
    if (lease.ended) return false;
    lease.ended = true;
    this.leased.delete(lease);
    this.parked.remove(lease);
    return true;
  }

  private expired(s: PooledServer, now: number): boolean {
    return this.settings.serverLifetimeMs > 0 && now - s.createdAt >= this.settings.serverLifetimeMs;
  }

  /** The server closed a connection: gone from idle; a leased one is closed when it comes back. */
  private lost(server: PooledServer): void {
    server.state.unusable ??= 'the server closed the connection';
    const i = this.idle.indexOf(server);
    if (i >= 0) {
      this.idle.splice(i, 1);
      this.dispose(server);
    }
  }

  /**
   * Closes a connection that is in no list any more (politely, or `abort`ing what it runs), and opens
   * another if clients wait.
   */
  private dispose(server: PooledServer, abort = false): void {
    this.closeConnection(server, abort);
    this.grow();
  }

  private closeConnection(server: PooledServer, abort = false): void {
    server.conn.onData = () => {};
    if (server.conn.state !== 'closed') {
      if (abort) server.conn.abort();
      else server.conn.close();
      this.counters.closes++;
    }
  }
}
