/**
 * Configuration from the environment, for containers: every scalar key of the config file can be set as
 * `PGSPLIT_<KEY>`, the dotted key uppercased with dots turned into underscores (`log.level` →
 * `PGSPLIT_LOG_LEVEL`, `routing.max_lag` → `PGSPLIT_ROUTING_MAX_LAG`). Lists (replicas, users,
 * application names, function lists, admin users) stay in the file or on the command line.
 *
 * Precedence: flags over environment over file. The values are validated by resolveConfig exactly as
 * file values are, and an error names the variable that gave the bad value.
 */
import { maskUrl, type PgsplitConfig } from './config.js';

/** How an environment string becomes a config value. */
type Kind = 'text' | 'count';

interface ScalarKey {
  /** Dotted config key, as in the YAML file. */
  key: string;
  kind: Kind;
  /** The resolved value, for check-config (secrets masked). */
  shown: (c: PgsplitConfig) => string;
}

const ms = (n: number): string => `${n}ms`;
const bytes = (n: number): string => `${n} bytes`;
const offOrMs = (n: number): string => (n === 0 ? '0 (off)' : ms(n));
const addr = (a: { host: string; port: number }): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/** Every scalar key of the config file, in the order of the file's sections. */
export const SCALAR_KEYS: readonly ScalarKey[] = [
  { key: 'listen', kind: 'text', shown: (c) => addr(c.listen) },
  { key: 'primary', kind: 'text', shown: (c) => maskUrl(c.primary.url) },
  { key: 'auth.method', kind: 'text', shown: (c) => c.auth.method },
  { key: 'tls.mode', kind: 'text', shown: (c) => c.tls.mode },
  { key: 'tls.cert', kind: 'text', shown: (c) => c.tls.certFile ?? '(none)' },
  { key: 'tls.key', kind: 'text', shown: (c) => c.tls.keyFile ?? '(none)' },
  { key: 'tls.ca', kind: 'text', shown: (c) => c.tls.caFile ?? '(none)' },
  { key: 'routing.default', kind: 'text', shown: (c) => c.routing.default },
  { key: 'routing.unknown_functions', kind: 'text', shown: (c) => c.routing.unknownFunctions },
  { key: 'routing.max_lag', kind: 'text', shown: (c) => ms(c.routing.maxLagMs) },
  { key: 'routing.read_your_writes_timeout', kind: 'text', shown: (c) => ms(c.routing.readYourWritesTimeoutMs) },
  { key: 'routing.when_no_replica', kind: 'text', shown: (c) => c.routing.whenNoReplica },
  { key: 'routing.transactions', kind: 'text', shown: (c) => c.routing.transactions },
  { key: 'monitor.interval', kind: 'text', shown: (c) => ms(c.monitor.intervalMs) },
  { key: 'monitor.timeout', kind: 'text', shown: (c) => ms(c.monitor.timeoutMs) },
  { key: 'monitor.rise', kind: 'count', shown: (c) => String(c.monitor.rise) },
  { key: 'monitor.lag_interval', kind: 'text', shown: (c) => ms(c.monitor.lagIntervalMs) },
  { key: 'monitor.fast_interval', kind: 'text', shown: (c) => ms(c.monitor.fastIntervalMs) },
  // The monitor's own login (monitor.user / monitor.password); the password is never shown.
  { key: 'monitor.user', kind: 'text', shown: (c) => c.monitor.user ?? "(the servers' URLs)" },
  { key: 'monitor.password', kind: 'text', shown: (c) => (c.monitor.password === null ? '(none)' : '****') },
  { key: 'limits.max_message_size', kind: 'text', shown: (c) => bytes(c.limits.maxMessageSize) },
  { key: 'limits.max_client_connections', kind: 'count', shown: (c) => String(c.limits.maxClientConnections) },
  { key: 'limits.max_user_connections', kind: 'count', shown: (c) => String(c.limits.maxUserConnections) },
  { key: 'limits.idle_in_transaction_timeout', kind: 'text', shown: (c) => offOrMs(c.limits.idleInTransactionTimeoutMs) },
  { key: 'limits.max_pending_bytes', kind: 'text', shown: (c) => bytes(c.limits.maxPendingBytes) },
  { key: 'limits.startup_timeout', kind: 'text', shown: (c) => ms(c.limits.startupTimeoutMs) },
  { key: 'limits.connect_timeout', kind: 'text', shown: (c) => ms(c.limits.connectTimeoutMs) },
  { key: 'limits.shutdown_grace', kind: 'text', shown: (c) => ms(c.limits.shutdownGraceMs) },
  { key: 'pool.mode', kind: 'text', shown: (c) => c.pool.mode },
  { key: 'pool.size', kind: 'count', shown: (c) => String(c.pool.size) },
  { key: 'pool.min_idle', kind: 'count', shown: (c) => String(c.pool.minIdle) },
  { key: 'pool.max_client_wait', kind: 'text', shown: (c) => offOrMs(c.pool.maxClientWaitMs) },
  { key: 'pool.server_idle_timeout', kind: 'text', shown: (c) => offOrMs(c.pool.serverIdleTimeoutMs) },
  { key: 'pool.server_lifetime', kind: 'text', shown: (c) => offOrMs(c.pool.serverLifetimeMs) },
  { key: 'pool.prepared_statements', kind: 'count', shown: (c) => String(c.pool.preparedStatements) },
  { key: 'metrics.listen', kind: 'text', shown: (c) => (c.metrics.listen === null ? '(off)' : addr(c.metrics.listen)) },
  { key: 'log.level', kind: 'text', shown: (c) => c.log.level },
];

/** The keys that hold lists: set in the file or by flags, not from the environment. */
export const LIST_KEYS: readonly string[] = [
  'replicas', 'users', 'routing.application_names', 'routing.writing_functions', 'routing.read_only_functions', 'admin.users',
  // A mapping, not a list, but like the lists it comes from the file only.
  'databases',
];

/**
 * PGSPLIT_* variables pgsplit reads that are not config keys; they are not reported as unknown.
 * PGSPLIT_LOG_FORMAT chooses json or pretty log lines; the others are for the test suite.
 */
const OTHER_VARIABLES = ['PGSPLIT_LOG_FORMAT', 'PGSPLIT_TEST_LOG', 'PGSPLIT_CORPUS_DIR', 'PGSPLIT_REGRESS_CORPUS'];

/** The environment variable for a dotted config key: `routing.max_lag` → `PGSPLIT_ROUTING_MAX_LAG`. */
export function envVariable(key: string): string {
  return `PGSPLIT_${key.replace(/\./g, '_').toUpperCase()}`;
}

/** One config value taken from the environment. */
export interface EnvSetting {
  /** Dotted config key. */
  key: string;
  /** The variable it came from, for messages. */
  variable: string;
  /** A string, or a number for whole-number keys written as digits (as YAML would give). */
  value: string | number;
}

/**
 * The config values set in `env`. An empty variable counts as unset, as `${NAME}` in the file treats it,
 * so that `PGSPLIT_LOG_LEVEL: ${LEVEL}` in a compose file with LEVEL unset changes nothing.
 */
export function settingsFromEnv(env: NodeJS.ProcessEnv): EnvSetting[] {
  const out: EnvSetting[] = [];
  for (const { key, kind } of SCALAR_KEYS) {
    const variable = envVariable(key);
    const text = env[variable];
    if (text === undefined || text.trim() === '') continue;
    const value = kind === 'count' && /^\s*\d+\s*$/.test(text) ? Number(text) : text.trim();
    out.push({ key, variable, value });
  }
  return out;
}

/**
 * PGSPLIT_* variables that look like a mistyped setting (close to a real variable name), with the one
 * meant. Other unknown PGSPLIT_* names are left alone: Kubernetes sets PGSPLIT_SERVICE_HOST,
 * PGSPLIT_PORT, ... for a Service named pgsplit.
 */
export function mistypedEnvVariables(env: NodeJS.ProcessEnv): Array<{ variable: string; meant: string }> {
  const known = [...SCALAR_KEYS.map((k) => envVariable(k.key)), ...OTHER_VARIABLES];
  const out: Array<{ variable: string; meant: string }> = [];
  for (const variable of Object.keys(env)) {
    if (!variable.startsWith('PGSPLIT_') || known.includes(variable)) continue;
    let meant: string | undefined;
    let best = Infinity;
    for (const k of known) {
      const d = distance(variable, k);
      if (d < best) {
        best = d;
        meant = k;
      }
    }
    if (meant !== undefined && best <= 2) out.push({ variable, meant });
  }
  return out;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/**
 * check-config's table: each scalar key, its resolved value (URLs masked) and where it came from
 * (`default`, `file`, a `PGSPLIT_*` variable or a flag).
 */
export function describeConfigSources(config: PgsplitConfig, sources: ReadonlyMap<string, string>): string[] {
  const width = Math.max(...SCALAR_KEYS.map((k) => k.key.length));
  const rows = SCALAR_KEYS.map(({ key, shown }) => ({ key, value: shown(config), from: sources.get(key) ?? 'default' }));
  const valueWidth = Math.min(48, Math.max(...rows.map((r) => r.value.length)));
  const lines = rows.map((r) => `  ${r.key.padEnd(width)}  ${r.value.padEnd(valueWidth)}  ${r.from}`);
  for (const [key, count] of [
    ['replicas', config.replicas.length], ['users', config.users.length], ['databases', Object.keys(config.databases).length],
    ['routing.application_names', config.routing.applicationNames.length],
  ] as const) {
    lines.push(`  ${key.padEnd(width)}  ${`${count} entr${count === 1 ? 'y' : 'ies'}`.padEnd(valueWidth)}  ${sources.get(key) ?? (count === 0 ? 'default' : 'file')}`);
  }
  return lines;
}
