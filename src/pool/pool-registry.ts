/**
 * Every server pool of a pgsplit process, one per (node, server role, database, user), created on first
 * use: what a session asks for a connection, SHOW POOLS lists, and a reload or shutdown closes.
 */
import { errors, type PgsplitError } from '../errors.js';
import type { ServerTarget } from '../server/server-connection.js';
import { ServerPool, type Connect, type PoolKey, type PoolServerRow, type PoolSettings, type PoolStats } from './server-pool.js';

/** One row of SHOW POOLS. */
export interface PoolRow extends PoolKey, PoolStats {}

/** One pooled connection, with its pool's key: a row of SHOW SERVERS. */
export interface PoolServerEntry extends PoolKey, PoolServerRow {}

export class PoolRegistry {
  private readonly pools = new Map<string, ServerPool>();

  /**
   * Told, for every lease any pool hands out, its pool and how long the client waited, ms (0 when a
   * connection was idle): the metrics' wait histogram. May be set at any time; cheap, once per lease.
   */
  onWaited: ((key: PoolKey, ms: number) => void) | null = null;

  constructor(private settings: PoolSettings, private readonly connect?: Connect) {}

  /**
   * The pool for `key`, created on first use with `target` (where and with which credentials) and
   * `params` (startup parameters of its connections: user, database).
   */
  pool(key: PoolKey, target: ServerTarget, params: Record<string, string>): ServerPool {
    const id = JSON.stringify([key.node, key.role, key.database, key.user]);
    let pool = this.pools.get(id);
    if (pool === undefined) {
      const created = new ServerPool(key, target, params, this.settings, this.connect);
      created.onWaited = (ms) => this.onWaited?.(created.key, ms);
      this.pools.set(id, created);
      pool = created;
    }
    return pool;
  }

  /** SHOW POOLS: every pool's key and counters, in creation order. */
  rows(): PoolRow[] {
    return [...this.pools.values()].map((p) => ({ ...p.key, ...p.stats() }));
  }

  /** SHOW SERVERS: every pooled connection, pool by pool in creation order. */
  servers(): PoolServerEntry[] {
    return [...this.pools.values()].flatMap((p) => p.servers().map((s) => ({ ...p.key, ...s })));
  }

  /** New settings (a reload): for every pool, and those created from now on (see ServerPool.reconfigure). */
  reconfigure(settings: PoolSettings): void {
    this.settings = settings;
    for (const pool of this.pools.values()) pool.reconfigure(settings);
  }

  /** Closes the pools of a node taken out of the configuration: waiting clients get `why`. */
  closeNode(node: string, why: PgsplitError): void {
    for (const [id, pool] of this.pools) {
      if (pool.key.node !== node) continue;
      pool.close(why);
      this.pools.delete(id);
    }
  }

  /** Every pool's idle connections closed now (see ServerPool.closeIdle). */
  closeIdle(): void {
    for (const pool of this.pools.values()) pool.closeIdle();
  }

  /** Shutdown: every pool closed. */
  close(why: PgsplitError = errors.shuttingDown()): void {
    for (const pool of this.pools.values()) pool.close(why);
    this.pools.clear();
  }
}
