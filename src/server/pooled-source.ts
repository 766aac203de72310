/**
 * Server connections borrowed from the proxy's pools (pool.*): at most pool.size connections per (node,
 * server role, database, user), however many clients connect. pool.mode session lends a connection for
 * the client's whole session; pool.mode transaction for one transaction (or one statement outside a
 * transaction), the session giving it back at the ReadyForQuery that ends it unless something pins it.
 *
 * A client borrows only connections logged in with its own startup parameters (LoginParams: all but
 * user, database and application_name), so that RESET, RESET ALL and DISCARD ALL return to the client's
 * startup values as on a direct connection; clients of one application send the same ones and share
 * every connection. Other settings are applied on borrow with one set_config statement
 * (ServerState.settingsPlan) holding only what differs from what the connection holds. In session mode those are the client's startup parameters, and on
 * return DISCARD ALL undoes everything the unwatched session may have left. In transaction mode they are
 * every parameter the client was told at startup (the server's defaults it saw, with its own startup
 * parameters), so that a value another borrower's startup set never shows; what the client leaves
 * beyond its transaction the session reports (ServerHold.left), and the pool's cleanup undoes only that.
 * A connection left inside a transaction, or failed, is closed.
 */
import { errorResponse } from '../codec/backend-messages.js';
import { SqlState } from '../errors.js';
import type { Lease } from '../pool/lease.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import { POOL_LOGIN, type LoginParams, type ServerPool, type WaitSignal } from '../pool/server-pool.js';
import { ServerStartupError, type ServerConnection } from './server-connection.js';
import { loginTarget, type SessionLogin } from './server-login.js';
import type { NodeEntry } from './server-nodes.js';
import type { PoolMode } from '../config/config.js';
import { runInternalQuery } from './server-query.js';
import { DedicatedSource, type LeftOnConnection, type ReleaseOutcome, type ServerHold, type ServerSource, type SourceLimits } from './server-source.js';
import { optionSettings } from '../session/startup-options.js';

/** Startup parameters that are not settings: they pick the login and the protocol, fixed by the pool key. */
const NOT_SETTINGS = new Set(['user', 'database', 'options', 'replication']);

/**
 * The pool.mode values whose sessions borrow pooled connections (every mode: DedicatedSource serves only
 * servers the monitor finds down). The session and bench:pool both read this, so the benchmark reports
 * what the code does.
 */
export const POOLED_MODES: ReadonlySet<PoolMode> = new Set<PoolMode>(['session', 'transaction']);

/** The settings a client's startup parameters ask for (options -c ones last, as the server applies them). */
export function startupSettings(params: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(params)) if (!NOT_SETTINGS.has(name)) out.set(name, value);
  for (const [name, value] of optionSettings(params.options ?? '')) out.set(name, value);
  return out;
}

/** Entries kept in each of the shared caches below; the oldest entry goes first. */
const SHARED_MAX = 512;

/** `cache`'s value for `key`, built on first use: what clients with the same startup parameters share. */
function shared<V>(cache: Map<string, V>, key: string, build: () => V): V {
  let found = cache.get(key);
  if (found === undefined) {
    found = build();
    if (cache.size >= SHARED_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(key, found);
  }
  return found;
}

/**
 * Clients of one pool with the same startup parameters want the same settings: one map serves them all
 * (a map per idle client would be most of what it costs).
 */
const SHARED_SETTINGS = new Map<string, Map<string, string>>();

function sharedSettings(pool: ServerPool, params: Record<string, string>, build: () => Map<string, string>): Map<string, string> {
  return shared(SHARED_SETTINGS, `${pool.name}\0${JSON.stringify(params)}`, build);
}

/**
 * Startup parameters a pooled connection does not log in with: the pool key's, and application_name, which
 * is set per borrow like any SET (tagging by application name must not split the pool's connections).
 */
const NOT_LOGIN = new Set(['user', 'database', 'replication', 'application_name']);

/** Clients with the same startup parameters share one LoginParams. */
const SHARED_LOGINS = new Map<string, LoginParams>();

function loginParams(params: Record<string, string>): LoginParams {
  const own: Record<string, string> = {};
  for (const name of Object.keys(params).sort()) if (!NOT_LOGIN.has(name)) own[name] = params[name] as string;
  const key = JSON.stringify(own);
  if (key === '{}') return POOL_LOGIN;
  return shared(SHARED_LOGINS, key, () => Object.freeze({ key, params: Object.freeze(own), settings: startupSettings(own) }));
}

/** Borrows tried when pgsplit's settings statement finds the lent connection dead (see PooledSource.acquire). */
const BORROW_ATTEMPTS = 3;

/** A borrowed connection: the lease, and the pool it goes back to. */
class PooledHold implements ServerHold {
  constructor(readonly pool: ServerPool, readonly lease: Lease) {}

  get conn(): ServerConnection {
    return this.lease.conn;
  }

  observe(type: number, payload: Buffer): void {
    this.lease.state.observe(type, payload);
  }

  left(what: LeftOnConnection): void {
    this.lease.state.left(what);
  }

  park(reclaim: () => void, now: number): boolean {
    return this.pool.park(this.lease, reclaim, now);
  }

  unpark(): void {
    this.pool.unpark(this.lease);
  }
}

export class PooledSource implements ServerSource {
  /**
   * `identity`: who borrows (session id, client address), for logs and SHOW POOLS; `limits`: the bound on
   * the settings statement run on borrow (limits.connect_timeout); `mode`: pool.mode.
   */
  private readonly identity: string;

  constructor(private readonly pools: PoolRegistry, identity: string, private readonly limits: SourceLimits,
    private readonly mode: PoolMode = 'session') {
    // Kept flat: V8 keeps a string built by concatenation as a tree of its pieces (some 150 bytes for
    // 'session N user@address', held as long as the client stays connected), 50 or so once flat.
    this.identity = Buffer.from(identity, 'utf8').toString('utf8');
    this.direct = new DedicatedSource(limits);
  }

  /**
   * The settings every borrowed connection must hold for this client (see the file comment), built at
   * the first borrow from the startup parameters asked with.
   */
  private wanted: ReadonlyMap<string, string> | null = null;

  /** What the connections this client borrows log in with, from its startup parameters at the first borrow. */
  private login: LoginParams = POOL_LOGIN;

  /**
   * For a server the monitor finds down: a connection of the session's own, opened within monitor.timeout
   * (DedicatedSource), so that a statement fails at once instead of waiting behind the pool's connections
   * to a frozen server (their cleanup and connects are bounded by limits.connect_timeout only).
   */
  private readonly direct: DedicatedSource;

  /**
   * The pools this session borrowed from last, by node (a session uses a primary and at most one replica
   * at a time): in transaction mode it borrows at every transaction, and finding the pool (its key, the
   * login target) would cost more than the borrow. A closed pool is looked up again.
   */
  private nodeA: NodeEntry | null = null;
  private poolA: ServerPool | null = null;
  private nodeB: NodeEntry | null = null;
  private poolB: ServerPool | null = null;

  private poolFor(node: NodeEntry, login: SessionLogin, params: Record<string, string>): ServerPool {
    if (node === this.nodeA && this.poolA !== null && !this.poolA.closed) return this.poolA;
    if (node === this.nodeB && this.poolB !== null && !this.poolB.closed) return this.poolB;
    const target = loginTarget(node.endpoint, node.configKey, login);
    const user = target.user ?? params.user ?? '';
    const pool = this.pools.pool({ node: node.endpoint.name, role: node.role, database: login.database, user }, target,
      { user, database: login.database });
    // The primary's slot, and one for the replica of the moment.
    if (node.role === 'primary') {
      this.nodeA = node;
      this.poolA = pool;
    } else {
      this.nodeB = node;
      this.poolB = pool;
    }
    return pool;
  }

  acquireNow(node: NodeEntry, login: SessionLogin, params: Record<string, string>): ServerHold | null {
    // Down: a connection of its own (acquire). Not borrowed yet: the client's settings are not worked out.
    if (node.health === 'down' || this.wanted === null) return null;
    const pool = this.poolFor(node, login, params);
    const lease = pool.tryAcquire(this.identity, this.login);
    if (lease === null) return null;
    if (lease.state.settingsPlan(this.wanted).sql !== null) {
      // It needs the client's settings first: a round trip, which acquire makes.
      void pool.release(lease);
      return null;
    }
    if (this.mode === 'session') lease.state.clientSession = true;
    return new PooledHold(pool, lease);
  }

  async acquire(node: NodeEntry, login: SessionLogin, params: Record<string, string>, signal?: WaitSignal): Promise<ServerHold> {
    if (node.health === 'down') return this.direct.acquire(node, login, params);
    const pool = this.poolFor(node, login, params);
    if (this.wanted === null) this.login = loginParams(params);
    for (let attempt = 1; ; attempt++) {
      const lease = await pool.acquire(this.identity, signal, this.login);
      const state = lease.state;
      // Session mode: whatever happens from here, the connection is DISCARDed (or closed) before anyone else has it.
      if (this.mode === 'session') state.clientSession = true;
      const wanted = this.wanted ??= sharedSettings(pool, params, () => this.clientSettings(params, state.startup));
      const plan = state.settingsPlan(wanted);
      if (plan.sql === null) return new PooledHold(pool, lease);
      let failed: Record<string, string> | null;
      try {
        const result = await runInternalQuery(lease.conn, state, plan.sql, this.limits.connectTimeoutMs);
        failed = result.error;
      } catch (e) {
        pool.releaseWithError(lease);
        // The connection died under pgsplit's own statement, before anything of the client's ran on it (a
        // server shutting down ends its idle sessions): another is borrowed, a new one if need be, whose
        // failure to connect the caller handles (the next replica, or the client's error).
        if (attempt < BORROW_ATTEMPTS) continue;
        throw e;
      }
      if (failed !== null) {
        void pool.release(lease);
        // As a direct connection refuses a bad startup parameter: FATAL, with the server's own words.
        const fields: Record<string, string> = { ...failed, S: 'FATAL', V: 'FATAL' };
        const raw = errorResponse({ severity: 'FATAL', code: fields.C ?? SqlState.connectionException, message: fields.M ?? 'invalid startup parameter', detail: fields.D, hint: fields.H });
        throw new ServerStartupError(fields, raw);
      }
      state.applied(plan);
      return new PooledHold(pool, lease);
    }
  }
  /**
   * The client's startup settings; in transaction mode with the server's defaults for every reported
   * parameter it did not set (`defaults`: what a pooled connection reported at its own startup), so that
   * a value another client's startup put on a connection is set back before this client's statements.
   */
  private clientSettings(params: Record<string, string>, defaults: ReadonlyMap<string, string>): Map<string, string> {
    const own = startupSettings(params);
    if (this.mode !== 'transaction') return own;
    const named = new Set([...own.keys()].map((n) => n.toLowerCase()));
    const out = new Map<string, string>();
    for (const [name, value] of defaults) if (!named.has(name.toLowerCase())) out.set(name, value);
    for (const [name, value] of own) out.set(name, value);
    return out;
  }

  /** Back to its pool (cleaned there); an unfinished or broken one is closed instead. */
  release(hold: ServerHold, outcome: ReleaseOutcome): void {
    if (!(hold instanceof PooledHold)) {
      this.direct.release(hold, outcome);
      return;
    }
    // The session may have paused it (client backpressure): the pool's cleanup must be able to read.
    hold.conn.socket.resume();
    // Statements under clients' own names stay for the next borrower (ServerConnection.prepared), up to
    // pool.prepared_statements of them: past that the cleanup deallocates them all.
    if (hold.conn.prepared.size > hold.lease.state.prepared.capacity) hold.lease.state.clientPrepared = true;
    if (outcome === 'broken' || outcome === 'unfinished') hold.pool.releaseWithError(hold.lease);
    else void hold.pool.release(hold.lease);
  }
}
