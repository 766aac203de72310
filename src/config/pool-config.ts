/**
 * pool: the server connection pool settings, with a pointer to pgsplit's name for a PgBouncer key
 * (pool_mode, default_pool_size, ...) written by someone coming from PgBouncer.
 */
import { DEFAULT_CONFIG, POOL_MODES, type PgsplitConfig, type PoolMode } from './config.js';
import { isMap, show, type ConfigContext, type Raw } from './config-context.js';
import { POOL_KEYS } from './config-keys.js';
import { countFromRaw, durationOrOffFromRaw } from './config-values.js';

const MAX_PREPARED_STATEMENTS = 100_000;
/** PgBouncer's names of the pool settings, for the message that gives pgsplit's (min_pool_size counts all connections, min_idle idle ones). */
const PGBOUNCER_POOL_KEYS: Record<string, string> = {
  pool_mode: 'mode', default_pool_size: 'size', pool_size: 'size', min_pool_size: 'min_idle', query_wait_timeout: 'max_client_wait',
  max_prepared_statements: 'prepared_statements',
};

/**
 * pool: { mode, size, min_idle, max_client_wait, server_idle_timeout, server_lifetime, prepared_statements },
 * read from the whole file `r`. PgBouncer's key names are caught first, so that its users get the
 * pgsplit name rather than a bare "unknown key".
 */
export function poolFromRaw(r: Raw, ctx: ConfigContext): PgsplitConfig['pool'] {
  const poolRaw = r['pool'];
  if (isMap(poolRaw)) {
    for (const k of Object.keys(poolRaw)) {
      const ours = PGBOUNCER_POOL_KEYS[k];
      if (ours !== undefined) ctx.fail(`pool.${k}`, `unknown key pool.${k}; pgsplit's name for PgBouncer's ${k} is pool.${ours}: write pool: {${ours}: ...}`);
    }
  }
  const p = ctx.section(r, 'pool', POOL_KEYS, 'pool: {mode: transaction, size: 20}');
  const d = DEFAULT_CONFIG.pool;
  const mode: PoolMode = p['mode'] === undefined || p['mode'] === null ? d.mode : ctx.oneOf(p['mode'], POOL_MODES, 'pool.mode', 'a pool mode');
  const size = countFromRaw(p['size'], 'pool.size', d.size, 1, ctx, '20');
  const minIdle = countFromRaw(p['min_idle'], 'pool.min_idle', d.minIdle, 0, ctx, '0');
  if (minIdle > size) {
    ctx.fail('pool.min_idle', `${minIdle} is more than pool.size (${size}), and a pool never holds more connections than that; write a min_idle of at most ${size}, or raise pool.size`);
  }
  const ps = p['prepared_statements'];
  if (ps !== undefined && ps !== null && (typeof ps !== 'number' || !Number.isInteger(ps) || ps < 1 || ps > MAX_PREPARED_STATEMENTS)) {
    ctx.fail('pool.prepared_statements', `${show(ps)} is not a number of statements; write a whole number from 1 to ${MAX_PREPARED_STATEMENTS}, e.g. prepared_statements: 200`);
  }
  return {
    mode,
    size,
    minIdle,
    maxClientWaitMs: durationOrOffFromRaw(p['max_client_wait'], 'pool.max_client_wait', d.maxClientWaitMs, ctx, '120s'),
    serverIdleTimeoutMs: durationOrOffFromRaw(p['server_idle_timeout'], 'pool.server_idle_timeout', d.serverIdleTimeoutMs, ctx, '10min'),
    serverLifetimeMs: durationOrOffFromRaw(p['server_lifetime'], 'pool.server_lifetime', d.serverLifetimeMs, ctx, '1h'),
    preparedStatements: typeof ps === 'number' ? ps : d.preparedStatements,
  };
}
