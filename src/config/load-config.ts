/**
 * Loading and validating the pgsplit configuration: YAML file → PGSPLIT_* environment → flag overrides →
 * resolved PgsplitConfig. This file merges the three sources and walks the sections; each section's
 * reader lives in its own file (server-endpoint-config, users-config, client-tls-config,
 * function-policy-config, pool-config, login-config), the value parsers in config-values and
 * listen-address, the YAML file in config-file.
 *
 * Every problem becomes a ConfigError whose key is the dotted path of the offending value
 * (`replicas[1]`, `limits.max_message_size`) and whose message says what is wrong and what to write
 * instead. Values are echoed only after maskUrl(), and user passwords are never echoed at all.
 */
import { ConfigError } from '../errors.js';
import {
  AUTH_METHODS,
  DEFAULT_CONFIG,
  LOG_LEVELS,
  NO_REPLICA_POLICIES,
  ROUTE_TARGETS,
  TRANSACTION_POLICIES,
  type AuthMethod,
  type LogLevel,
  type NoReplicaPolicy,
  type PgsplitConfig,
  type RouteTarget,
  type ServerEndpoint,
  type TransactionPolicy,
  type UserEntry,
} from './config.js';
import { settingsFromEnv, SCALAR_KEYS, type EnvSetting } from './env-config.js';
import { databasesFromRaw, monitorLoginFromRaw } from './login-config.js';
import { ConfigContext, describe, isMap, show, type Raw } from './config-context.js';
import { ADMIN_KEYS, AUTH_KEYS, LIMITS_KEYS, LOG_KEYS, METRICS_KEYS, MONITOR_KEYS, ROUTING_KEYS, TLS_KEYS, TOP_KEYS } from './config-keys.js';
import { countFromRaw, durationFromRaw, durationOrOffFromRaw, sizeFromRaw, stringList } from './config-values.js';
import { isLoopback, listenFromRaw } from './listen-address.js';
import { serverFromRaw } from './server-endpoint-config.js';
import { usersFromRaw } from './users-config.js';
import { tlsFromRaw } from './client-tls-config.js';
import { functionPolicyFromRaw, type RoutingPolicy } from './function-policy-config.js';
import { poolFromRaw } from './pool-config.js';
import { readConfigFile, readYamlFile, substituteEnv } from './config-file.js';

export { maskUrl } from './config.js';

/** Values given on the command line (or by a caller); they win over the file. */
export interface ConfigOverrides {
  /** HOST:PORT */
  listen?: string;
  /** postgres:// URL */
  primary?: string;
  /** Replaces the file's replicas: list. */
  replicas?: string[];
  /** HOST:PORT */
  metricsListen?: string;
  logLevel?: string;
  /** Replaces the file's routing.application_names list. */
  applicationNames?: string[];
  /** routing.max_lag (--max-lag). */
  maxLag?: string;
  /** Replaces the file's users: list. */
  users?: UserEntry[];
}

// ---------------------------------------------------------------------------------------------------------
// Overrides and resolution

/** Environment settings, then flags: flags over environment over file. */
function applyOverrides(raw: Raw, o: ConfigOverrides, env: readonly EnvSetting[], sources: Map<string, string>): Raw {
  const out: Raw = { ...raw };
  const setIn = (section: string, key: string, value: unknown) => {
    const cur = out[section];
    if (cur === undefined || cur === null) out[section] = { [key]: value };
    else if (isMap(cur)) out[section] = { ...cur, [key]: value };
    // otherwise leave the invalid section for validation to report
  };
  for (const e of env) {
    const dot = e.key.indexOf('.');
    if (dot < 0) out[e.key] = e.value;
    else setIn(e.key.slice(0, dot), e.key.slice(dot + 1), e.value);
    sources.set(e.key, e.variable);
  }
  if (o.listen !== undefined) { out['listen'] = o.listen; sources.set('listen', '--listen'); }
  if (o.primary !== undefined) { out['primary'] = o.primary; sources.set('primary', '--primary'); }
  if (o.replicas !== undefined) { out['replicas'] = [...o.replicas]; sources.set('replicas', '--replica'); }
  if (o.metricsListen !== undefined) { setIn('metrics', 'listen', o.metricsListen); sources.set('metrics.listen', '--metrics-listen'); }
  if (o.logLevel !== undefined) { setIn('log', 'level', o.logLevel); sources.set('log.level', '--log-level'); }
  if (o.applicationNames !== undefined) {
    setIn('routing', 'application_names', [...o.applicationNames]);
    sources.set('routing.application_names', '--tag-application-name');
  }
  if (o.maxLag !== undefined) { setIn('routing', 'max_lag', o.maxLag); sources.set('routing.max_lag', '--max-lag'); }
  if (o.users !== undefined) {
    out['users'] = o.users.map((u) => ({
      name: u.name, password: u.password,
      ...(u.serverUser !== undefined ? { server_user: u.serverUser } : {}),
      ...(u.serverPassword !== undefined ? { server_password: u.serverPassword } : {}),
    }));
    sources.set('users', 'the users override');
  }
  return out;
}

/**
 * Same validation as loadConfig, from an already-parsed object (snake_case keys, as in the YAML file).
 * `env` holds PGSPLIT_* settings (settingsFromEnv); none unless given.
 */
export function resolveConfig(raw: unknown, overrides: ConfigOverrides = {}, env: readonly EnvSetting[] = []): PgsplitConfig {
  return resolveWithSources(raw, overrides, env).config;
}

/** A resolved config, and where each value that is not a default came from: 'file', a PGSPLIT_* variable or a flag. */
export interface SourcedConfig {
  config: PgsplitConfig;
  /** Dotted key → 'file', 'PGSPLIT_…' or '--flag'; keys left at their default are absent. */
  sources: Map<string, string>;
}

function resolveWithSources(raw: unknown, overrides: ConfigOverrides, env: readonly EnvSetting[]): SourcedConfig {
  const sources = new Map<string, string>();
  const ctx: ConfigContext = new ConfigContext(sources);
  if (raw === undefined || raw === null) raw = {};
  if (!isMap(raw)) {
    throw new ConfigError('(file)', `the configuration must be a YAML mapping of keys such as primary: and listen:, not ${describe(raw)}; see pgsplit --help for an example file`);
  }
  ctx.checkKeys(raw, TOP_KEYS, '');
  const config = resolveMerged(applyOverrides(raw, overrides, env, sources), ctx);
  const fileRaw = raw;
  const inFile = (key: string): boolean => {
    const [a, b] = key.split('.') as [string, string | undefined];
    const v = b === undefined ? fileRaw[a] : (isMap(fileRaw[a]) ? (fileRaw[a] as Raw)[b] : undefined);
    return v !== undefined && v !== null;
  };
  const all = new Map(sources);
  for (const key of [...SCALAR_KEYS.map((k) => k.key), 'replicas', 'users', 'databases', 'routing.application_names']) {
    if (!all.has(key) && inFile(key)) all.set(key, 'file');
  }
  return { config, sources: all };
}

function resolveMerged(r: Raw, ctx: ConfigContext): PgsplitConfig {
  const d = DEFAULT_CONFIG;

  const listen = r['listen'] === undefined || r['listen'] === null
    ? { ...d.listen }
    : listenFromRaw(r['listen'], 'listen', ctx, '127.0.0.1:6432');

  if (r['primary'] === undefined || r['primary'] === null) {
    ctx.fail('primary', `is missing; pass --primary postgres://USER:PASSWORD@HOST:PORT/DATABASE or set primary: in the config file`);
  }
  const primary = serverFromRaw(r['primary'], 'primary', 'primary', ctx);

  const replicas: ServerEndpoint[] = [];
  const rawReplicas = r['replicas'];
  if (rawReplicas !== undefined && rawReplicas !== null) {
    if (!Array.isArray(rawReplicas)) {
      ctx.fail('replicas', `must be a list, not ${describe(rawReplicas)}; write replicas: [postgres://USER:PASSWORD@HOST:PORT/DATABASE, ...]`);
    }
    rawReplicas.forEach((item: unknown, i) => replicas.push(serverFromRaw(item, `replicas[${i}]`, `replica${i + 1}`, ctx)));
  }
  const names = new Map<string, string>([[primary.name, 'primary']]);
  replicas.forEach((rep, i) => {
    const other = names.get(rep.name);
    if (other !== undefined) {
      ctx.fail(`replicas[${i}]`, `the server name ${JSON.stringify(rep.name)} is already used by ${other}; give this replica its own name: with a mapping {url: ..., name: ...}`);
    }
    names.set(rep.name, `replicas[${i}]`);
  });

  const authRaw = ctx.section(r, 'auth', AUTH_KEYS, 'auth: {method: scram-sha-256}');
  const method: AuthMethod = authRaw['method'] === undefined || authRaw['method'] === null
    ? d.auth.method
    : ctx.oneOf(authRaw['method'], AUTH_METHODS, 'auth.method', 'an authentication method');

  const users = usersFromRaw(r['users'], method, ctx);
  const databases = databasesFromRaw(r['databases'], (k, m) => ctx.fail(k, m));

  const tls = tlsFromRaw(ctx.section(r, 'tls', TLS_KEYS, 'tls: {mode: require, cert: /etc/pgsplit/server.crt, key: /etc/pgsplit/server.key}'), ctx);

  const routingRaw = ctx.section(r, 'routing', ROUTING_KEYS, 'routing: {application_names: ["reporting-*"], default: primary}');
  const applicationNames = stringList(routingRaw['application_names'], 'routing.application_names', ctx, '"reporting-*"');
  const routeDefault: RouteTarget = routingRaw['default'] === undefined || routingRaw['default'] === null
    ? d.routing.default
    : ctx.oneOf(routingRaw['default'], ROUTE_TARGETS, 'routing.default', 'a route');
  const functionPolicy = functionPolicyFromRaw(routingRaw, ctx);
  const maxLagMs = durationFromRaw(routingRaw['max_lag'], 'routing.max_lag', d.routing.maxLagMs, ctx, '1s');
  const readYourWritesTimeoutMs = durationFromRaw(routingRaw['read_your_writes_timeout'], 'routing.read_your_writes_timeout', d.routing.readYourWritesTimeoutMs, ctx, '200ms');
  const whenNoReplica: NoReplicaPolicy = routingRaw['when_no_replica'] === undefined || routingRaw['when_no_replica'] === null
    ? d.routing.whenNoReplica
    : ctx.oneOf(routingRaw['when_no_replica'], NO_REPLICA_POLICIES, 'routing.when_no_replica', 'a policy for reads when no replica is eligible');
  const transactions: TransactionPolicy = routingRaw['transactions'] === undefined || routingRaw['transactions'] === null
    ? d.routing.transactions
    : ctx.oneOf(routingRaw['transactions'], TRANSACTION_POLICIES, 'routing.transactions', 'where a tagged session runs its transactions');

  const monitorRaw = ctx.section(r, 'monitor', MONITOR_KEYS, 'monitor: {interval: 100ms, timeout: 1s, rise: 3}');
  const intervalMs = durationFromRaw(monitorRaw['interval'], 'monitor.interval', d.monitor.intervalMs, ctx, '100ms');
  const timeoutMs = durationFromRaw(monitorRaw['timeout'], 'monitor.timeout', d.monitor.timeoutMs, ctx, '1s');
  let rise = d.monitor.rise;
  const riseRaw = monitorRaw['rise'];
  if (riseRaw !== undefined && riseRaw !== null) {
    if (typeof riseRaw !== 'number' || !Number.isInteger(riseRaw) || riseRaw < 1 || riseRaw > 100) {
      ctx.fail('monitor.rise', `${show(riseRaw)} is not a number of checks; write a whole number from 1 to 100, e.g. rise: 3`);
    }
    rise = riseRaw;
  }
  // Unset, they are never longer than monitor.interval (a 5 ms interval needs no 10 ms lag samples).
  const lagIntervalMs = durationFromRaw(monitorRaw['lag_interval'], 'monitor.lag_interval', Math.min(d.monitor.lagIntervalMs, intervalMs), ctx, '10ms');
  const fastIntervalMs = durationFromRaw(monitorRaw['fast_interval'], 'monitor.fast_interval', Math.min(d.monitor.fastIntervalMs, intervalMs), ctx, '2ms');
  // Faster samples are the point of both: one slower than the full checks would only add queries.
  for (const [key, ms, example] of [['lag_interval', lagIntervalMs, '10ms'], ['fast_interval', fastIntervalMs, '2ms']] as const) {
    if (ms > intervalMs) ctx.fail(`monitor.${key}`, `${show(monitorRaw[key] ?? `${ms}ms`)} is longer than monitor.interval (${intervalMs} ms); write at most the interval, e.g. ${key}: ${example}`);
  }
  const monitorLogin = monitorLoginFromRaw(monitorRaw, (k, m) => ctx.fail(k, m));

  const limitsRaw = ctx.section(r, 'limits', LIMITS_KEYS, 'limits: {max_message_size: 64MB, max_client_connections: 1000}');
  const maxMessageSize = sizeFromRaw(limitsRaw['max_message_size'], 'limits.max_message_size', d.limits.maxMessageSize, ctx);
  const maxClientConnections = countFromRaw(limitsRaw['max_client_connections'], 'limits.max_client_connections', d.limits.maxClientConnections, 1, ctx, '1000');
  const maxUserConnections = countFromRaw(limitsRaw['max_user_connections'], 'limits.max_user_connections', d.limits.maxUserConnections, 0, ctx, '100 (0: no per-user limit)');
  const idleInTransactionTimeoutMs = durationOrOffFromRaw(limitsRaw['idle_in_transaction_timeout'], 'limits.idle_in_transaction_timeout', d.limits.idleInTransactionTimeoutMs, ctx, '60s');
  const maxPendingBytes = sizeFromRaw(limitsRaw['max_pending_bytes'], 'limits.max_pending_bytes', d.limits.maxPendingBytes, ctx);
  const startupTimeoutMs = durationFromRaw(limitsRaw['startup_timeout'], 'limits.startup_timeout', d.limits.startupTimeoutMs, ctx, '10s');
  const connectTimeoutMs = durationFromRaw(limitsRaw['connect_timeout'], 'limits.connect_timeout', d.limits.connectTimeoutMs, ctx, '5s');
  const shutdownGraceMs = durationFromRaw(limitsRaw['shutdown_grace'], 'limits.shutdown_grace', d.limits.shutdownGraceMs, ctx, '30s');

  const pool = poolFromRaw(r, ctx);

  const metricsRaw = ctx.section(r, 'metrics', METRICS_KEYS, 'metrics: {listen: "127.0.0.1:9187"}');
  const metricsListen = metricsRaw['listen'] === undefined || metricsRaw['listen'] === null
    ? null
    : listenFromRaw(metricsRaw['listen'], 'metrics.listen', ctx, '127.0.0.1:9187');
  if (metricsListen !== null && metricsListen.port !== 0 && metricsListen.port === listen.port && metricsListen.host === listen.host) {
    ctx.fail('metrics.listen', `is the same address as listen (${listen.host}:${listen.port}); give metrics another port, e.g. metrics: {listen: "127.0.0.1:9187"}`);
  }

  const adminRaw = ctx.section(r, 'admin', ADMIN_KEYS, 'admin: {users: [ops]}');
  const adminUsers = stringList(adminRaw['users'], 'admin.users', ctx, '"ops"');
  adminUsers.forEach((name, i) => {
    if (users.some((u) => u.name === name)) return;
    ctx.fail(`admin.users[${i}]`, users.length === 0
      ? `names "${name}", but no users: are configured (development mode, where any client may open the admin console); add ${JSON.stringify(name)} to users: with a password, or remove it from admin.users`
      : `names "${name}", who is not in users:, so nobody could log in as that admin; add ${JSON.stringify(name)} to users: with a password, or correct the name`);
  });
  const logRaw = ctx.section(r, 'log', LOG_KEYS, 'log: {level: info}');
  const level: LogLevel = logRaw['level'] === undefined || logRaw['level'] === null
    ? d.log.level
    : ctx.oneOf(logRaw['level'], LOG_LEVELS, 'log.level', 'a log level');

  if (users.length === 0 && !isLoopback(listen.host)) {
    ctx.fail('listen', `${listen.host}:${listen.port} is not a loopback address, but no users: are configured, so pgsplit would trust every client (development mode); add users: [{name: USER, password: "..."}] or listen on 127.0.0.1`);
  }

  return {
    listen,
    primary,
    replicas,
    users,
    databases,
    auth: { method },
    tls,
    routing: { applicationNames, default: routeDefault, ...functionPolicy, maxLagMs, readYourWritesTimeoutMs, whenNoReplica, transactions },
    monitor: { intervalMs, timeoutMs, rise, lagIntervalMs, fastIntervalMs, ...monitorLogin },
    limits: {
      maxMessageSize, maxClientConnections, maxUserConnections, idleInTransactionTimeoutMs, maxPendingBytes, startupTimeoutMs, connectTimeoutMs,
      shutdownGraceMs,
    },
    pool,
    metrics: { listen: metricsListen },
    admin: { users: adminUsers },
    log: { level },
  };
}


/**
 * Reads only the routing function policy of a config file (routing.writing_functions,
 * read_only_functions, unknown_functions), validated as loadConfig does. The rest of the file is not
 * resolved, so a file whose other values use unset ${ENV_VAR}s (passwords) still works, and a file
 * without primary: is accepted. Unknown top-level or routing keys are still errors.
 */
export function loadRoutingPolicy(file: string, env: NodeJS.ProcessEnv = process.env): RoutingPolicy {
  let raw = readYamlFile(file);
  if (raw === undefined || raw === null) raw = {};
  if (!isMap(raw)) {
    throw new ConfigError('(file)', `the configuration must be a YAML mapping of keys such as primary: and routing:, not ${describe(raw)}; see pgsplit --help for an example file`);
  }
  const ctx = new ConfigContext(new Map());
  ctx.checkKeys(raw, TOP_KEYS, '');
  const routing = substituteEnv(raw['routing'], 'routing', env);
  const routingRaw = ctx.section({ routing }, 'routing', ROUTING_KEYS, 'routing: {read_only_functions: [report_totals], unknown_functions: primary}');
  return functionPolicyFromRaw(routingRaw, ctx);
}

/**
 * Read the YAML file (if a path is given), apply PGSPLIT_* environment settings and then flag
 * overrides, validate, return the resolved config.
 */
export function loadConfig(opts: { file?: string; overrides?: ConfigOverrides; env?: NodeJS.ProcessEnv } = {}): PgsplitConfig {
  return loadConfigWithSources(opts).config;
}

/** loadConfig, also saying where each value came from (for check-config). */
export function loadConfigWithSources(opts: { file?: string; overrides?: ConfigOverrides; env?: NodeJS.ProcessEnv } = {}): SourcedConfig {
  const env = opts.env ?? process.env;
  const raw = opts.file === undefined ? {} : readConfigFile(opts.file, env);
  return resolveWithSources(raw, opts.overrides ?? {}, settingsFromEnv(env));
}
