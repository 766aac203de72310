/**
 * Loading and validating the pgsplit configuration: YAML file → flag overrides → resolved PgsplitConfig.
 *
 * Every problem becomes a ConfigError whose key is the dotted path of the offending value
 * (`replicas[1]`, `limits.max_message_size`) and whose message says what is wrong and what to write
 * instead. Values are echoed only after maskUrl(), and user passwords are never echoed at all.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { parse } from 'yaml';
import { ConfigError } from '../errors.js';
import { isMd5Hash } from '../auth/md5-hash.js';
import {
  AUTH_METHODS,
  CLIENT_TLS_MODES,
  SERVER_SSL_MODES,
  DEFAULT_CONFIG,
  DEFAULT_LISTEN_HOST,
  DEFAULT_SERVER_PORT,
  LOG_LEVELS,
  NO_REPLICA_POLICIES,
  POOL_MODES,
  TRANSACTION_POLICIES,
  ROUTE_TARGETS,
  UNKNOWN_FUNCTION_POLICIES,
  maskUrl,
  type AuthMethod,
  type ClientTlsConfig,
  type ClientTlsMode,
  type ServerTls,
  type ListenAddress,
  type LogLevel,
  type NoReplicaPolicy,
  type PoolMode,
  type TransactionPolicy,
  type PgsplitConfig,
  type RouteTarget,
  type ServerEndpoint,
  type UnknownFunctionPolicy,
  type UserEntry,
} from './config.js';
import { settingsFromEnv, SCALAR_KEYS, type EnvSetting } from './env-config.js';
import { parseFunctionName } from '../router/function-policy.js';
import { databasesFromRaw, monitorLoginFromRaw, userLoginFromRaw, MONITOR_LOGIN_KEYS, USER_LOGIN_KEYS } from './login-config.js';
import { isWritingFunctionName } from '../router/statement-classifier.js';

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

const URL_FIX = 'write postgres://USER:PASSWORD@HOST:PORT/DATABASE';
const MIN_MESSAGE_SIZE = 1024;
const MAX_MESSAGE_SIZE = 1024 * 1024 * 1024;
const MAX_CLIENT_CONNECTIONS = 1_000_000;
const MAX_DURATION_MS = 24 * 60 * 60 * 1000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const TOP_KEYS = ['listen', 'primary', 'replicas', 'users', 'databases', 'auth', 'tls', 'routing', 'monitor', 'limits', 'pool', 'metrics', 'admin', 'log'] as const;
const TLS_KEYS = ['mode', 'cert', 'key', 'ca'] as const;
const SERVER_KEYS = ['url', 'name', 'weight'] as const;
const USER_KEYS = ['name', 'password', ...USER_LOGIN_KEYS] as const;
const AUTH_KEYS = ['method'] as const;
const ROUTING_KEYS = [
  'application_names', 'default', 'writing_functions', 'read_only_functions', 'unknown_functions', 'max_lag',
  'read_your_writes_timeout', 'when_no_replica', 'transactions',
] as const;
const MONITOR_KEYS = ['interval', 'timeout', 'rise', ...MONITOR_LOGIN_KEYS] as const;
const LIMITS_KEYS = [
  'max_message_size', 'max_client_connections', 'max_user_connections', 'startup_timeout', 'idle_in_transaction_timeout', 'max_pending_bytes',
  'connect_timeout', 'shutdown_grace',
] as const;
const POOL_KEYS = ['mode', 'size', 'min_idle', 'max_client_wait', 'server_idle_timeout', 'server_lifetime', 'prepared_statements'] as const;
const MAX_PREPARED_STATEMENTS = 100_000;
/** PgBouncer's names of the pool settings, for the message that gives pgsplit's (min_pool_size counts all connections, min_idle idle ones). */
const PGBOUNCER_POOL_KEYS: Record<string, string> = {
  pool_mode: 'mode', default_pool_size: 'size', pool_size: 'size', min_pool_size: 'min_idle', query_wait_timeout: 'max_client_wait',
  max_prepared_statements: 'prepared_statements',
};
const METRICS_KEYS = ['listen'] as const;
const LOG_KEYS = ['level'] as const;
const ADMIN_KEYS = ['users'] as const;

/** Every key of the config file, dotted (`routing.max_lag`), for the environment's key list to be checked against. */
export function configKeys(): string[] {
  const sections: Record<string, readonly string[]> = {
    auth: AUTH_KEYS, tls: TLS_KEYS, routing: ROUTING_KEYS, monitor: MONITOR_KEYS, limits: LIMITS_KEYS, pool: POOL_KEYS, metrics: METRICS_KEYS, admin: ADMIN_KEYS,
    log: LOG_KEYS,
  };
  return TOP_KEYS.flatMap((k) => (sections[k] === undefined ? [k] : sections[k].map((s) => `${k}.${s}`)));
}

/** Nested keys someone may write at the top level by mistake, with the section they belong to. */
const NESTED_HOME: Record<string, string> = {
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

// ---------------------------------------------------------------------------------------------------------
// Small helpers

type Raw = Record<string, unknown>;

function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** A value for an error message: masked, quoted, shortened. Never call this on a user password. */
function show(v: unknown): string {
  if (typeof v === 'string') {
    const m = maskUrl(v);
    return JSON.stringify(m.length > 80 ? `${m.slice(0, 77)}...` : m);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return describe(v);
}

/** What kind of value this is, in words (never the value itself). */
function describe(v: unknown): string {
  if (v === null || v === undefined) return 'empty';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'true/false';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

/** Edit distance, for "did you mean" suggestions in config and command-line errors. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate to a mistyped word, if any is close enough. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const w = norm(word);
    const n = norm(c);
    const d = w === n ? 0
      : Math.min(levenshtein(word.toLowerCase(), c.toLowerCase()), w.length >= 3 && n.length >= 3 && (w.startsWith(n) || n.startsWith(w)) ? 1 : Infinity);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** Resolution context: raises ConfigErrors, noting which flag a value came from. */
class Ctx {
  constructor(private readonly sources: Map<string, string>) {}

  fail(key: string, message: string): never {
    let source: string | undefined;
    let longest = -1;
    for (const [prefix, label] of this.sources) {
      const covers = key === prefix || key.startsWith(`${prefix}.`) || key.startsWith(`${prefix}[`);
      if (covers && prefix.length > longest) {
        source = label;
        longest = prefix.length;
      }
    }
    throw new ConfigError(key, source === undefined ? message : `${message} (value given by ${source})`);
  }

  checkKeys(obj: Raw, allowed: readonly string[], path: string): void {
    for (const key of Object.keys(obj)) {
      if (allowed.includes(key)) continue;
      const full = child(path, key);
      const near = suggest(key, allowed);
      if (near !== undefined) this.fail(full, `unknown key ${full}; did you mean ${near}?`);
      if (path === '') {
        const normKey = key.toLowerCase().replace(/-/g, '_');
        const home = NESTED_HOME[normKey];
        if (home !== undefined) this.fail(full, `unknown key ${full}; ${normKey} belongs under ${home}:, write ${home}: {${normKey}: ...}`);
      }
      const where = path === '' ? 'at the top level' : `under ${path}`;
      this.fail(full, `unknown key ${full}; remove it or use one of the keys allowed ${where}: ${allowed.join(', ')}`);
    }
  }

  oneOf<T extends string>(v: unknown, allowed: readonly T[], key: string, what: string): T {
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
    const near = typeof v === 'string' ? suggest(v, allowed) : undefined;
    this.fail(key, `${show(v)} is not ${what}; write one of ${allowed.join(', ')}${near !== undefined ? ` (did you mean ${near}?)` : ''}`);
  }

  section(raw: Raw, key: string, allowed: readonly string[], example: string): Raw {
    const v = raw[key];
    if (v === undefined || v === null) return {};
    if (!isMap(v)) this.fail(key, `must be a mapping, not ${describe(v)}; write ${example}`);
    this.checkKeys(v, allowed, key);
    return v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Value parsers

function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function parsePort(text: string, key: string, ctx: Ctx, fix: string, allowZero: boolean): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port > 65535 || (!allowZero && port === 0)) {
    ctx.fail(key, `port ${JSON.stringify(text)} is not a TCP port; ${fix} with a port from ${allowZero ? 0 : 1} to 65535`);
  }
  return port;
}

function listenFromRaw(v: unknown, key: string, ctx: Ctx, example: string): ListenAddress {
  const fix = `write HOST:PORT, e.g. ${key}: "${example}"`;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) ctx.fail(key, `${v} is not a TCP port; ${fix}`);
    return { host: DEFAULT_LISTEN_HOST, port: parsePort(String(v), key, ctx, fix, true) };
  }
  if (typeof v !== 'string') ctx.fail(key, `must be a string HOST:PORT, not ${describe(v)}; ${fix}`);
  const text = v.trim();
  if (/^\d+$/.test(text)) return { host: DEFAULT_LISTEN_HOST, port: parsePort(text, key, ctx, fix, true) };
  if (text.startsWith('[')) {
    const m = /^\[([0-9A-Fa-f:.]+)\]:(\d*)$/.exec(text);
    if (m === null || m[1] === undefined || m[2] === undefined || !m[1].includes(':')) {
      ctx.fail(key, `${show(v)} is not an address; write an IPv6 address in brackets with a port, e.g. "[::1]:${example.split(':').pop() ?? ''}"`);
    }
    return { host: m[1], port: parsePort(m[2], key, ctx, fix, true) };
  }
  if (text.includes('://')) ctx.fail(key, `${show(v)} is a URL, not an address; ${fix}`);
  const colon = text.lastIndexOf(':');
  if (colon < 0) ctx.fail(key, `${show(v)} has no port; ${fix}`);
  const host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.includes(':')) ctx.fail(key, `${show(v)} looks like an IPv6 address; put it in brackets: "[::1]:${example.split(':').pop() ?? ''}"`);
  if (host === '') ctx.fail(key, `${show(v)} has no host; write 127.0.0.1:PORT for local clients or 0.0.0.0:PORT for all interfaces`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) ctx.fail(key, `${show(v)} has an invalid host name; ${fix}`);
  return { host, port: parsePort(portText, key, ctx, fix, true) };
}

/**
 * Parse a HOST:PORT listen address (`127.0.0.1:6432`, `[::1]:6432`, `0.0.0.0:0`, or a bare port);
 * throws a ConfigError keyed by `key`.
 */
export function parseListenAddress(value: unknown, key = 'listen', example = '127.0.0.1:6432'): ListenAddress {
  return listenFromRaw(value, key, new Ctx(new Map()), example);
}

function decode(part: string, key: string, what: string, ctx: Ctx): string {
  try {
    return decodeURIComponent(part);
  } catch {
    ctx.fail(key, `the ${what} in the URL is badly percent-encoded; encode special characters as %XX (e.g. @ as %40), ${URL_FIX}`);
  }
}

interface ParsedUrl { host: string; port: number; user?: string; password?: string; database?: string; tls: ServerTls }

/** Reads a PEM file named in the config; ConfigError naming the key when it cannot be read. */
function readPem(file: string, key: string, what: string, ctx: Ctx): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied (make it readable by the user running pgsplit)' : code ?? String(e);
    ctx.fail(key, `cannot read ${what} ${JSON.stringify(file)}: ${why}; give the path of a PEM file`);
  }
  if (!text.includes('-----BEGIN ')) ctx.fail(key, `${JSON.stringify(file)} is not a PEM file (no -----BEGIN line); give ${what} in PEM form`);
  return text;
}

function parseServerUrl(v: string, key: string, ctx: Ctx): ParsedUrl {
  const text = v.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const extra = text.includes('@') && /^postgres(ql)?:\/\//i.test(text)
      ? ' (percent-encode special characters in the password, e.g. / as %2F, # as %23, ? as %3F)'
      : '';
    ctx.fail(key, `${show(v)} is not a PostgreSQL URL; ${URL_FIX}${extra}`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    ctx.fail(key, `${show(v)} is not a PostgreSQL URL; ${URL_FIX}`);
  }
  let host = url.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  host = decode(host, key, 'host', ctx);
  if (host === '') ctx.fail(key, `${show(v)} has no host; ${URL_FIX}`);
  if (host.startsWith('/')) {
    ctx.fail(key, `${show(v)} names a Unix-domain socket, which pgsplit does not support; use a TCP host: ${URL_FIX}`);
  }
  if (host.includes(',')) {
    ctx.fail(key, `${show(v)} names several hosts; give one host per URL and list each replica as its own entry under replicas:`);
  }
  const port = url.port === '' ? DEFAULT_SERVER_PORT : Number(url.port);
  if (port === 0) ctx.fail(key, `${show(v)} has port 0; ${URL_FIX} with a port from 1 to 65535 (default 5432)`);
  if (url.hash !== '') ctx.fail(key, `${show(v)} has a #fragment; remove it: ${URL_FIX}`);
  let database: string | undefined;
  if (url.pathname !== '' && url.pathname !== '/') {
    const path = url.pathname.slice(1);
    if (path.includes('/')) {
      ctx.fail(key, `${show(v)} has a path with several parts; the path is just the database name: ${URL_FIX}`);
    }
    database = decode(path, key, 'database name', ctx);
  }
  const tls: ServerTls = { mode: 'disable' };
  for (const [param, value] of url.searchParams) {
    if (param === 'sslmode') {
      const mode = SERVER_SSL_MODES.find((m) => m === value);
      if (mode === undefined) ctx.fail(key, `${show(v)} has an unknown sslmode; use one of ${SERVER_SSL_MODES.join(', ')}, or leave it out (disable)`);
      tls.mode = mode;
      continue;
    }
    if (param === 'sslrootcert') {
      tls.rootCertFile = value;
      tls.rootCertPem = readPem(value, key, 'the sslrootcert', ctx);
      continue;
    }
    ctx.fail(key, `${show(v)} has the query parameter ${JSON.stringify(param)}, which pgsplit does not accept; remove it (allowed: sslmode, sslrootcert): ${URL_FIX}`);
  }
  if ((tls.mode === 'verify-ca' || tls.mode === 'verify-full') && tls.rootCertPem === undefined) {
    ctx.fail(key, `${show(v)} asks for sslmode=${tls.mode}, which needs the certificate authority to verify against; add &sslrootcert=/path/to/root.crt`);
  }
  const out: ParsedUrl = { host, port, tls };
  if (url.username !== '') out.user = decode(url.username, key, 'user name', ctx);
  if (url.password !== '') out.password = decode(url.password, key, 'password', ctx);
  if (database !== undefined && database !== '') out.database = database;
  return out;
}

function serverFromRaw(v: unknown, key: string, defaultName: string, ctx: Ctx): ServerEndpoint {
  let urlText: string;
  let name = defaultName;
  let weight = 1;
  if (typeof v === 'string') {
    urlText = v;
  } else if (isMap(v)) {
    ctx.checkKeys(v, SERVER_KEYS, key);
    const u = v['url'];
    if (u === undefined || u === null) ctx.fail(child(key, 'url'), `is missing; write url: postgres://USER:PASSWORD@HOST:PORT/DATABASE`);
    if (typeof u !== 'string') ctx.fail(child(key, 'url'), `must be a string, not ${describe(u)}; ${URL_FIX}`);
    urlText = u;
    if (v['name'] !== undefined && v['name'] !== null) {
      const n = v['name'];
      if (typeof n !== 'string' || !NAME_RE.test(n)) {
        ctx.fail(child(key, 'name'), `${show(n)} is not a valid server name; use 1-63 letters, digits, '_', '.' or '-', e.g. name: ${defaultName}`);
      }
      name = n;
    }
    if (v['weight'] !== undefined && v['weight'] !== null) {
      const w = v['weight'];
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
        ctx.fail(child(key, 'weight'), `${show(w)} is not a weight; write a number of 0 or more, e.g. weight: 1 (0 sends no new sessions)`);
      }
      weight = w;
    }
  } else {
    ctx.fail(key, `is ${describe(v)}, not a PostgreSQL URL; ${URL_FIX}, or a mapping {url: postgres://..., name: ..., weight: 1}`);
  }
  const parsed = parseServerUrl(urlText, key, ctx);
  const out: ServerEndpoint = { name, url: urlText.trim(), host: parsed.host, port: parsed.port, weight, tls: parsed.tls };
  if (parsed.user !== undefined) out.user = parsed.user;
  if (parsed.password !== undefined) out.password = parsed.password;
  if (parsed.database !== undefined) out.database = parsed.database;
  return out;
}

const B64 = '[A-Za-z0-9+/]+={0,2}';
const SCRAM_RE = new RegExp(`^SCRAM-SHA-256\\$(\\d+):(${B64})\\$(${B64}):(${B64})$`);

/** What kind of secret a configured password is. */
export function passwordKind(password: string): 'plain' | 'md5' | 'scram-sha-256' | 'bad-scram' {
  if (isMd5Hash(password)) return 'md5';
  if (password.startsWith('SCRAM-SHA-256$')) {
    const m = SCRAM_RE.exec(password);
    if (m === null) return 'bad-scram';
    const iterations = Number(m[1]);
    const stored = Buffer.from(m[3] ?? '', 'base64');
    const server = Buffer.from(m[4] ?? '', 'base64');
    if (!(iterations >= 1) || stored.length !== 32 || server.length !== 32) return 'bad-scram';
    return 'scram-sha-256';
  }
  return 'plain';
}

function usersFromRaw(v: unknown, method: AuthMethod, ctx: Ctx): UserEntry[] {
  if (v === undefined || v === null) return [];
  const example = 'users: [{name: alice, password: "..."}]';
  if (!Array.isArray(v)) ctx.fail('users', `must be a list, not ${describe(v)}; write ${example}`);
  const out: UserEntry[] = [];
  const seen = new Map<string, number>();
  v.forEach((entry: unknown, i) => {
    const key = `users[${i}]`;
    if (!isMap(entry)) ctx.fail(key, `must be a mapping with name and password, not ${describe(entry)}; write - {name: alice, password: "..."}`);
    ctx.checkKeys(entry, USER_KEYS, key);
    const name = entry['name'];
    if (name === undefined || name === null) ctx.fail(`${key}.name`, 'is missing; write name: USER (the user name clients log in with)');
    if (typeof name !== 'string' || name === '' || name.includes('\0')) {
      ctx.fail(`${key}.name`, `must be a non-empty string, not ${describe(name)}; write name: USER`);
    }
    const previous = seen.get(name);
    if (previous !== undefined) {
      ctx.fail(`${key}.name`, `user ${JSON.stringify(name)} is listed twice (also users[${previous}]); keep one entry per user`);
    }
    seen.set(name, i);
    const password = entry['password'];
    const pkey = `${key}.password`;
    if (password === undefined || password === null) {
      ctx.fail(pkey, `is missing for user ${JSON.stringify(name)}; write password: "..." (plaintext, an md5 hash or a SCRAM-SHA-256 verifier)`);
    }
    if (typeof password !== 'string') {
      ctx.fail(pkey, `must be a string, not ${describe(password)}; put the password in quotes: password: "..."`);
    }
    if (password === '') ctx.fail(pkey, `is empty for user ${JSON.stringify(name)}; write a non-empty password`);
    const kind = passwordKind(password);
    if (kind === 'bad-scram') {
      ctx.fail(pkey, 'starts with SCRAM-SHA-256$ but is not a valid SCRAM verifier; copy the whole rolpassword value from pg_authid (SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY) or write the plaintext password');
    }
    if (kind === 'md5' && method === 'scram-sha-256') {
      ctx.fail(pkey, `is an md5 hash, which cannot check SCRAM-SHA-256 logins; write the plaintext password or a SCRAM-SHA-256 verifier, or set auth: {method: md5}`);
    }
    // A SCRAM verifier under auth.method md5 is fine: that user logs in with SCRAM, as in PostgreSQL.
    out.push({ name, password, ...userLoginFromRaw(entry, key, (k, m) => ctx.fail(k, m)) });
  });
  return out;
}

function stringList(v: unknown, key: string, ctx: Ctx, example: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) ctx.fail(key, `must be a list, not ${describe(v)}; write ${key.split('.').pop() ?? key}: [${example}]`);
  return v.map((item: unknown, i) => {
    if (typeof item !== 'string' || item === '') {
      ctx.fail(`${key}[${i}]`, `must be a non-empty string, not ${describe(item)}; write a pattern such as ${example}`);
    }
    return item;
  });
}

/** A list of SQL function names ('fn', 'schema.fn', '"MyFn"'), as written (validated, not normalized). */
function functionList(v: unknown, key: string, ctx: Ctx, example: string): string[] {
  const leaf = key.split('.').pop() ?? key;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) ctx.fail(key, `must be a list, not ${describe(v)}; write ${leaf}: [${example}]`);
  return v.map((item: unknown, i) => {
    if (typeof item !== 'string' || item.trim() === '') {
      ctx.fail(`${key}[${i}]`, `must be a function name, not ${describe(item)}; write a name such as ${example.split(',')[0]}`);
    }
    const name = item.trim();
    const parsed = parseFunctionName(name);
    if (typeof parsed === 'string') {
      ctx.fail(`${key}[${i}]`, `${show(item)} is not a function name (${parsed}); write fn or schema.fn as in SQL, double-quoting parts with capitals or other characters ("MyFn")`);
    }
    return name;
  });
}

/** routing.writing_functions / read_only_functions / unknown_functions. */
function functionPolicyFromRaw(routingRaw: Raw, ctx: Ctx): { writingFunctions: string[]; readOnlyFunctions: string[]; unknownFunctions: UnknownFunctionPolicy } {
  const writingFunctions = functionList(routingRaw['writing_functions'], 'routing.writing_functions', ctx, 'audit_touch, myschema.log_access');
  const readOnlyFunctions = functionList(routingRaw['read_only_functions'], 'routing.read_only_functions', ctx, 'report_totals, reporting.monthly');
  const extraWriting = new Set<string>();
  for (const w of writingFunctions) {
    const f = parseFunctionName(w);
    if (typeof f !== 'string') extraWriting.add(f.name.toLowerCase());
  }
  readOnlyFunctions.forEach((r, i) => {
    const f = parseFunctionName(r);
    if (typeof f === 'string') return;
    const where = isWritingFunctionName(f.name) ? "on pgsplit's built-in list of writing functions"
      : extraWriting.has(f.name.toLowerCase()) ? 'listed in routing.writing_functions'
      : undefined;
    if (where !== undefined) {
      ctx.fail(`routing.read_only_functions[${i}]`, `${show(r)} is a writing function (${where}), which never runs on a replica; remove it from read_only_functions`);
    }
  });
  const unknownFunctions: UnknownFunctionPolicy = routingRaw['unknown_functions'] === undefined || routingRaw['unknown_functions'] === null
    ? DEFAULT_CONFIG.routing.unknownFunctions
    : ctx.oneOf(routingRaw['unknown_functions'], UNKNOWN_FUNCTION_POLICIES, 'routing.unknown_functions', 'a policy for unknown functions');
  return { writingFunctions, readOnlyFunctions, unknownFunctions };
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
};

/** Parse a size: a number of bytes, or '512kB' / '64MB' / '1GB' (binary multiples). NaN when not a size. */
export function parseSize(v: unknown): number {
  if (typeof v === 'number') return Number.isInteger(v) ? v : NaN;
  if (typeof v !== 'string') return NaN;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(v);
  if (m === null) return NaN;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return NaN;
  return Math.floor(Number(m[1]) * unit);
}

const DURATION_UNITS: Record<string, number> = {
  '': 1, ms: 1, s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000, h: 3_600_000, hour: 3_600_000, hours: 3_600_000,
};

/** Parse a duration: a number of milliseconds, or '500ms' / '10s' / '1min' / '1h'. NaN when not a duration. */
export function parseDuration(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.round(v) : NaN;
  if (typeof v !== 'string') return NaN;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(v);
  if (m === null) return NaN;
  const unit = DURATION_UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return NaN;
  return Math.round(Number(m[1]) * unit);
}

function sizeFromRaw(v: unknown, key: string, dflt: number, ctx: Ctx): number {
  if (v === undefined || v === null) return dflt;
  const n = parseSize(v);
  if (Number.isNaN(n)) {
    ctx.fail(key, `${show(v)} is not a size; write a number of bytes or a number with a unit: 512kB, 64MB, 1GB`);
  }
  if (n < MIN_MESSAGE_SIZE || n > MAX_MESSAGE_SIZE) {
    ctx.fail(key, `${show(v)} is out of range; write a size from 1kB to 1GB, e.g. 64MB`);
  }
  return n;
}

/**
 * tls: { mode, cert, key, ca }. With cert and key the mode defaults to allow (TLS for clients that ask,
 * as PostgreSQL with ssl = on); without them it must be disable. The files are read and checked now, so
 * that check-config and a reload find a bad certificate before clients do.
 */
function tlsFromRaw(t: Raw, ctx: Ctx): ClientTlsConfig {
  const path = (k: string): string | null => {
    const v = t[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string' || v.trim() === '') ctx.fail(`tls.${k}`, `must be the path of a PEM file, not ${describe(v)}`);
    return v;
  };
  const certFile = path('cert');
  const keyFile = path('key');
  const caFile = path('ca');
  if ((certFile === null) !== (keyFile === null)) {
    ctx.fail(certFile === null ? 'tls.cert' : 'tls.key', 'is missing: TLS needs both tls.cert (the certificate) and tls.key (its private key); set both, or neither');
  }
  const mode: ClientTlsMode = t['mode'] === undefined || t['mode'] === null
    ? (certFile !== null ? 'allow' : 'disable')
    : ctx.oneOf(t['mode'], CLIENT_TLS_MODES, 'tls.mode', 'a TLS mode');
  if (mode !== 'disable' && certFile === null) {
    ctx.fail('tls.mode', `is ${mode}, which needs a certificate; set tls.cert and tls.key (PEM files), or tls.mode: disable`);
  }
  if (caFile !== null && certFile === null) ctx.fail('tls.ca', 'needs tls.cert and tls.key: client certificates are only checked over TLS');
  const certPem = certFile === null ? null : readPem(certFile, 'tls.cert', 'the certificate', ctx);
  const keyPem = keyFile === null ? null : readPem(keyFile, 'tls.key', 'the private key', ctx);
  const caPem = caFile === null ? null : readPem(caFile, 'tls.ca', 'the client certificate authority', ctx);
  if (certPem !== null && keyPem !== null) {
    try {
      createSecureContext({ cert: certPem, key: keyPem, ...(caPem !== null ? { ca: caPem } : {}) });
    } catch (e) {
      // OpenSSL's reason (e.g. "key values mismatch"), never the key itself.
      ctx.fail('tls.cert', `the certificate and key cannot be used together: ${(e as Error).message}; check that tls.key is the private key of tls.cert`);
    }
  }
  return { mode, certFile, keyFile, certPem, keyPem, caFile, caPem };
}

/** A whole number of connections from `min` to MAX_CLIENT_CONNECTIONS. */
function countFromRaw(v: unknown, key: string, dflt: number, min: number, ctx: Ctx, example: string): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_CLIENT_CONNECTIONS) {
    ctx.fail(key, `${show(v)} is not a connection count; write a whole number from ${min} to ${MAX_CLIENT_CONNECTIONS}, e.g. ${key.split('.').pop() ?? key}: ${example}`);
  }
  return v;
}

/** A duration where 0 turns the feature off (as 0 does for PostgreSQL's timeouts). */
function durationOrOffFromRaw(v: unknown, key: string, dflt: number, ctx: Ctx, example: string): number {
  return v === 0 || v === '0' ? 0 : durationFromRaw(v, key, dflt, ctx, example);
}

function durationFromRaw(v: unknown, key: string, dflt: number, ctx: Ctx, example: string): number {
  if (v === undefined || v === null) return dflt;
  const n = parseDuration(v);
  if (Number.isNaN(n)) {
    ctx.fail(key, `${show(v)} is not a duration; write milliseconds or a number with a unit: 500ms, ${example}, 1min`);
  }
  if (n < 1 || n > MAX_DURATION_MS) {
    ctx.fail(key, `${show(v)} is out of range; write a duration from 1ms to 24h, e.g. ${example}`);
  }
  return n;
}

/** pool: { mode, size, min_idle, max_client_wait, server_idle_timeout, server_lifetime, prepared_statements }. */
function poolFromRaw(p: Raw, ctx: Ctx): PgsplitConfig['pool'] {
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
  const ctx: Ctx = new Ctx(sources);
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

function resolveMerged(r: Raw, ctx: Ctx): PgsplitConfig {
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

  const poolRaw = r['pool'];
  if (isMap(poolRaw)) {
    for (const k of Object.keys(poolRaw)) {
      const ours = PGBOUNCER_POOL_KEYS[k];
      if (ours !== undefined) ctx.fail(`pool.${k}`, `unknown key pool.${k}; pgsplit's name for PgBouncer's ${k} is pool.${ours}: write pool: {${ours}: ...}`);
    }
  }
  const pool = poolFromRaw(ctx.section(r, 'pool', POOL_KEYS, 'pool: {mode: transaction, size: 20}'), ctx);

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
    monitor: { intervalMs, timeoutMs, rise, ...monitorLogin },
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

// ---------------------------------------------------------------------------------------------------------
// Files and environment

const ENV_RE = /\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replace ${NAME} (or ${NAME:-default}) in every string value; $${NAME} stays as the literal ${NAME}. */
function substituteEnv(v: unknown, path: string, env: NodeJS.ProcessEnv): unknown {
  if (typeof v === 'string') {
    return v.replace(ENV_RE, (whole: string, escaped: string | undefined, name: string, dflt: string | undefined) => {
      if (escaped !== undefined) return whole.slice(1);
      const value = env[name];
      if (value !== undefined && value !== '') return value;
      if (dflt !== undefined) return dflt;
      if (value !== undefined) return value;
      throw new ConfigError(path === '' ? '(file)' : path, `uses the environment variable ${name}, which is not set; export ${name}=... before starting pgsplit, write \${${name}:-DEFAULT}, or write the value itself`);
    });
  }
  if (Array.isArray(v)) return v.map((item: unknown, i) => substituteEnv(item, `${path}[${i}]`, env));
  if (isMap(v)) {
    const out: Raw = {};
    for (const [k, item] of Object.entries(v)) out[k] = substituteEnv(item, child(path, k), env);
    return out;
  }
  return v;
}

/**
 * Read and parse a YAML config file, substituting ${ENV_VAR} references in string values.
 * Returns the raw (snake_case) object for resolveConfig().
 */
export function readConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): unknown {
  return substituteEnv(readYamlFile(file), '', env);
}

/** Read and parse a YAML file, without environment substitution; ConfigError keyed '(file)' on failure. */
function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file; check the path given to --config'
      : code === 'EACCES' ? 'permission denied; make the file readable by the user running pgsplit'
      : code === 'EISDIR' ? 'it is a directory; give the path of the YAML file'
      : `${code ?? String(err)}; check the path given to --config`;
    throw new ConfigError('(file)', `cannot read ${file}: ${why}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { logLevel: 'error' });
  } catch (err) {
    const e = err as Error & { linePos?: Array<{ line: number; col: number }> };
    const pos = e.linePos?.[0];
    // Only the first line of the parser's message: later lines quote the file, which may hold passwords.
    const reason = (e.message.split('\n')[0] ?? 'invalid YAML').replace(/\s+at line \d+, column \d+:?\s*$/, '');
    const lineText = pos === undefined ? '' : (text.split(/\r?\n/)[pos.line - 1] ?? '');
    const hint = /\[[0-9A-Fa-f]*:[0-9A-Fa-f:.]*\]/.test(lineText)
      ? '; IPv6 addresses must be quoted, e.g. listen: "[::1]:6432"'
      : '; fix the YAML syntax there (quote values that contain : # [ ] { } or start with * & !)';
    const where = pos === undefined ? file : `${file} line ${pos.line}, column ${pos.col}`;
    throw new ConfigError('(file)', `${where}: ${reason}${hint}`);
  }
  return doc;
}

/** The routing policy of a config file: what `pgsplit explain --config FILE` needs. */
export type RoutingPolicy = Pick<PgsplitConfig['routing'], 'writingFunctions' | 'readOnlyFunctions' | 'unknownFunctions'>;

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
  const ctx = new Ctx(new Map());
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
