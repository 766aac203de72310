/**
 * The keys the config file allows, per section. One list, so that unknown-key errors, the
 * PGSPLIT_* environment variables (configKeys) and the "belongs under" hint all agree.
 */
import { MONITOR_LOGIN_KEYS, USER_LOGIN_KEYS } from './login-config.js';

export const TOP_KEYS = ['listen', 'primary', 'replicas', 'users', 'databases', 'auth', 'tls', 'routing', 'monitor', 'limits', 'pool', 'metrics', 'admin', 'log'] as const;
export const TLS_KEYS = ['mode', 'cert', 'key', 'ca'] as const;
export const SERVER_KEYS = ['url', 'name', 'weight'] as const;
export const USER_KEYS = ['name', 'password', ...USER_LOGIN_KEYS] as const;
export const AUTH_KEYS = ['method'] as const;
export const ROUTING_KEYS = [
  'application_names', 'default', 'writing_functions', 'read_only_functions', 'unknown_functions', 'max_lag',
  'read_your_writes_timeout', 'when_no_replica', 'transactions',
] as const;
export const MONITOR_KEYS = ['interval', 'timeout', 'rise', 'lag_interval', 'fast_interval', ...MONITOR_LOGIN_KEYS] as const;
export const LIMITS_KEYS = [
  'max_message_size', 'max_client_connections', 'max_user_connections', 'startup_timeout', 'idle_in_transaction_timeout', 'max_pending_bytes',
  'connect_timeout', 'shutdown_grace',
] as const;
export const POOL_KEYS = ['mode', 'size', 'min_idle', 'max_client_wait', 'server_idle_timeout', 'server_lifetime', 'prepared_statements'] as const;
export const METRICS_KEYS = ['listen'] as const;
export const LOG_KEYS = ['level'] as const;
export const ADMIN_KEYS = ['users'] as const;

/** Every key of the config file, dotted (`routing.max_lag`), for the environment's key list to be checked against. */
export function configKeys(): string[] {
  const sections: Record<string, readonly string[]> = {
    auth: AUTH_KEYS, tls: TLS_KEYS, routing: ROUTING_KEYS, monitor: MONITOR_KEYS, limits: LIMITS_KEYS, pool: POOL_KEYS, metrics: METRICS_KEYS, admin: ADMIN_KEYS,
    log: LOG_KEYS,
  };
  return TOP_KEYS.flatMap((k) => (sections[k] === undefined ? [k] : sections[k].map((s) => `${k}.${s}`)));
}

/** Nested keys someone may write at the top level by mistake, with the section they belong to. */
export const NESTED_HOME: Record<string, string> = {
  method: 'auth',
  application_names: 'routing',
  default: 'routing',
  writing_functions: 'routing',
  read_only_functions: 'routing',
  unknown_functions: 'routing',
  max_lag: 'routing',
  read_your_writes_timeout: 'routing',
  when_no_replica: 'routing',
  transactions: 'routing',
  interval: 'monitor',
  rise: 'monitor',
  lag_interval: 'monitor',
  fast_interval: 'monitor',
  max_message_size: 'limits',
  max_client_connections: 'limits',
  max_user_connections: 'limits',
  idle_in_transaction_timeout: 'limits',
  max_pending_bytes: 'limits',
  startup_timeout: 'limits',
  connect_timeout: 'limits',
  shutdown_grace: 'limits',
  min_idle: 'pool',
  max_client_wait: 'pool',
  server_idle_timeout: 'pool',
  server_lifetime: 'pool',
  prepared_statements: 'pool',
  level: 'log',
  metrics_listen: 'metrics',
};
