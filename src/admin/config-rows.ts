import type { PgsplitConfig, ServerEndpoint } from '../config/config.js';

/** SHOW CONFIG: the configuration in force as key/value rows, spelled as in the file; never a password. */
export function configRows(c: PgsplitConfig): Array<{ key: string; value: string }> {
  const server = (e: ServerEndpoint): string =>
    `${e.name} postgres://${e.user ? `${e.user}@` : ''}${e.host}:${e.port}/${e.database ?? ''} weight=${e.weight} sslmode=${e.tls.mode}`;
  return [
    { key: 'listen', value: `${c.listen.host}:${c.listen.port}` },
    { key: 'primary', value: server(c.primary) },
    ...c.replicas.map((r, i) => ({ key: `replicas[${i}]`, value: server(r) })),
    { key: 'users', value: c.users.map((u) => u.name).join(',') || '(none: development mode)' },
    // How users log in to the servers (server_user mappings and databases:); never a password.
    { key: 'users.server_user', value: c.users.filter((u) => u.serverUser !== undefined).map((u) => `${u.name}=${u.serverUser ?? ''}`).join(',') },
    { key: 'databases', value: Object.entries(c.databases).map(([a, b]) => `${a}=${b}`).join(',') },
    { key: 'auth.method', value: c.auth.method },
    { key: 'tls.mode', value: c.tls.mode },
    { key: 'tls.cert', value: c.tls.certFile ?? '' },
    { key: 'tls.ca', value: c.tls.caFile ?? '' },
    { key: 'routing.application_names', value: c.routing.applicationNames.join(',') },
    { key: 'routing.default', value: c.routing.default },
    { key: 'routing.max_lag', value: `${c.routing.maxLagMs}ms` },
    { key: 'routing.read_your_writes_timeout', value: `${c.routing.readYourWritesTimeoutMs}ms` },
    { key: 'routing.when_no_replica', value: c.routing.whenNoReplica },
    { key: 'routing.transactions', value: c.routing.transactions },
    { key: 'routing.unknown_functions', value: c.routing.unknownFunctions },
    { key: 'monitor.interval', value: `${c.monitor.intervalMs}ms` },
    { key: 'monitor.timeout', value: `${c.monitor.timeoutMs}ms` },
    { key: 'monitor.rise', value: String(c.monitor.rise) },
    { key: 'monitor.lag_interval', value: `${c.monitor.lagIntervalMs}ms` },
    { key: 'monitor.fast_interval', value: `${c.monitor.fastIntervalMs}ms` },
    { key: 'monitor.user', value: c.monitor.user ?? "(the servers' URLs)" },
    { key: 'limits.max_message_size', value: String(c.limits.maxMessageSize) },
    { key: 'limits.max_client_connections', value: String(c.limits.maxClientConnections) },
    { key: 'limits.max_user_connections', value: c.limits.maxUserConnections === 0 ? '0 (no per-user limit)' : String(c.limits.maxUserConnections) },
    { key: 'limits.idle_in_transaction_timeout', value: c.limits.idleInTransactionTimeoutMs === 0 ? '0 (off)' : `${c.limits.idleInTransactionTimeoutMs}ms` },
    { key: 'limits.max_pending_bytes', value: String(c.limits.maxPendingBytes) },
    { key: 'limits.startup_timeout', value: `${c.limits.startupTimeoutMs}ms` },
    { key: 'limits.connect_timeout', value: `${c.limits.connectTimeoutMs}ms` },
    { key: 'limits.shutdown_grace', value: `${c.limits.shutdownGraceMs}ms` },
    { key: 'metrics.listen', value: c.metrics.listen ? `${c.metrics.listen.host}:${c.metrics.listen.port}` : '(off)' },
    { key: 'admin.users', value: c.admin.users.join(',') },
    { key: 'log.level', value: c.log.level },
  ];
}
