/**
 * The configuration model of pgsplit: the resolved shape every other module reads, and its defaults.
 *
 * The YAML file uses snake_case keys (see HELP_TEXT in ../config/cli-args.ts and loadConfig in
 * ./load-config.ts); this file holds the camelCase form after validation, with every default applied.
 */

/** One PostgreSQL server pgsplit forwards to. */
export interface ServerEndpoint {
  /** Stable name for logs and metrics: 'primary', 'replica1', 'replica2', ... unless given. */
  name: string;
  /** The URL exactly as configured. It may hold a password: log it only through maskUrl(). */
  url: string;
  host: string;
  port: number;
  user?: string;
  password?: string;
  database?: string;
  /** Relative share of replica traffic (default 1; 0 = send no new sessions). */
  weight: number;
  /** TLS towards this server, from the URL's sslmode and sslrootcert. */
  tls: ServerTls;
}

/**
 * The URL's sslmode, as libpq reads it: disable and allow talk plain text; prefer uses TLS when the
 * server offers it, unverified; require insists on TLS (and verifies the chain when a root certificate is
 * given, as libpq does); verify-ca checks the chain, verify-full the chain and the host name.
 */
export type ServerSslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
export interface ServerTls {
  mode: ServerSslMode;
  /** sslrootcert: the path, and the PEM read from it at load (so a reload sees a changed file). */
  rootCertFile?: string;
  rootCertPem?: string;
}

/** Client-facing TLS: disable (answer SSLRequest with N), allow (TLS when asked), require (refuse plain text). */
export type ClientTlsMode = 'disable' | 'allow' | 'require';
export interface ClientTlsConfig {
  mode: ClientTlsMode;
  /** tls.cert / tls.key: paths, and the PEM read at load. Null when TLS is off. */
  certFile: string | null;
  keyFile: string | null;
  certPem: string | null;
  /** The private key: never logged, never in SHOW CONFIG. */
  keyPem: string | null;
  /** tls.ca: clients using TLS must present a certificate signed by it (verify-ca); null = no client certificates. */
  caFile: string | null;
  caPem: string | null;
}

/** A user allowed to log in to pgsplit (when no users are configured pgsplit runs in development mode). */
export interface UserEntry {
  name: string;
  /** Plaintext, an 'md5…' hash (md5 of password+username) or a 'SCRAM-SHA-256$…' verifier. */
  password: string;
  /**
   * users[].server_user: the role this user is on the servers (default: its own name, unless a server URL
   * names a user). See src/server/server-login.ts for the whole rule.
   */
  serverUser?: string;
  /** users[].server_password: server_user's password on the servers (plaintext or an md5 hash); needs server_user. */
  serverPassword?: string;
}

export type AuthMethod = 'scram-sha-256' | 'md5';
export type RouteTarget = 'primary' | 'replica';
export type UnknownFunctionPolicy = 'primary' | 'replica';
export type NoReplicaPolicy = 'primary' | 'error';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface ListenAddress {
  host: string;
  /** 0 means "any free port" (useful in tests). */
  port: number;
}

export interface PgsplitConfig {
  /** Where pgsplit accepts clients; default 127.0.0.1:6432. */
  listen: ListenAddress;
  /** Required; name 'primary' unless given. */
  primary: ServerEndpoint;
  /** Default []; names 'replica1', 'replica2', ... unless given. */
  replicas: ServerEndpoint[];
  /** Default [] => development mode (trust every client, listen on loopback only). */
  users: UserEntry[];
  /**
   * databases: the database to ask the servers for, by the name a client asks for; a name not listed is
   * passed on as is. Default {}.
   */
  databases: Record<string, string>;
  /** How clients authenticate to pgsplit; default scram-sha-256. */
  auth: { method: AuthMethod };
  /** TLS for clients (tls.mode / cert / key / ca); default off. */
  tls: ClientTlsConfig;
  routing: {
    /** Glob patterns (* and ?) of application_name values whose sessions are tagged for replicas. */
    applicationNames: string[];
    /** Route of a session with no tag; default 'primary'. */
    default: RouteTarget;
    /**
     * routing.writing_functions: function names added to the built-in writing list (never on a replica);
     * 'fn' or 'schema.fn' as written in SQL. Default [].
     */
    writingFunctions: string[];
    /**
     * routing.read_only_functions: user functions the operator vouches for as read-only; 'fn' (any schema)
     * or 'schema.fn'. Default [].
     */
    readOnlyFunctions: string[];
    /**
     * routing.unknown_functions: route of a read calling a function that is neither writing nor known
     * read-only: 'primary' (default: when in doubt, primary) or 'replica' (a write then fails there with
     * SQLSTATE 25006 and is re-run on the primary).
     */
    unknownFunctions: UnknownFunctionPolicy;
    /**
     * routing.max_lag: a replica serves a read only when its lag (see ReplicaMonitor) is at most this,
     * in ms; default 1000. A hint `max_lag=` or `SET pgsplit.max_lag` changes it per statement / session.
     */
    maxLagMs: number;
    /**
     * routing.read_your_writes_timeout: after a session's write, how long its next read may wait for a
     * replica to replay the write before the primary serves it, ms; default 200.
     */
    readYourWritesTimeoutMs: number;
    /** routing.when_no_replica: tagged reads when no replica is eligible: 'primary' (default) or 'error'. */
    whenNoReplica: NoReplicaPolicy;
    /**
     * routing.transactions: where a tagged session's explicit READ COMMITTED transaction runs.
     * 'replica-until-write' (default): on a replica while it only reads, moved to the primary before its
     * first statement that can write. 'primary': on the primary from its BEGIN.
     */
    transactions: TransactionPolicy;
  };
  /**
   * The replica monitor (monitor.interval, monitor.timeout, monitor.rise). monitor.user / monitor.password:
   * the monitor's own login; null = the URL's user and password (user postgres when the URL has none).
   * lagIntervalMs (monitor.lag_interval): how often WAL positions alone are sampled (the primary's always,
   * a replica's while it is behind or the primary is writing), the grain of the lag estimate.
   * fastIntervalMs (monitor.fast_interval): how often a replica that sessions wait on (read-your-writes)
   * is asked for its replay position, while they wait. Both at most intervalMs.
   */
  monitor: { intervalMs: number; timeoutMs: number; rise: number; lagIntervalMs: number; fastIntervalMs: number; user: string | null; password: string | null };
  limits: {
    /** Largest protocol message accepted, in bytes; default 64 MiB. */
    maxMessageSize: number;
    /** Default 1000. */
    maxClientConnections: number;
    /** limits.max_user_connections: client sessions one user may hold at once; 0 (default) = no per-user limit. */
    maxUserConnections: number;
    /**
     * limits.idle_in_transaction_timeout: a session idle inside a transaction this long (ms) is closed with
     * FATAL 25P03, which rolls the transaction back on its server; 0 (default) = never, as in PostgreSQL.
     */
    idleInTransactionTimeoutMs: number;
    /**
     * limits.max_pending_bytes: client input pgsplit holds while the statements before it run; past it
     * pgsplit stops reading from that client until they drain (backpressure). Default 4 MiB.
     */
    maxPendingBytes: number;
    /** Time a client has to finish startup and authentication, in ms; default 10000. */
    startupTimeoutMs: number;
    /** Time allowed to connect to a server, in ms; default 5000. */
    connectTimeoutMs: number;
    /** On SIGTERM, how long in-flight statements may run before their sessions are closed anyway. */
    shutdownGraceMs: number;
  };
  /**
   * Server connection pools, one per (node, server role, database, user), which sessions borrow from
   * (server/pooled-source.ts). Defaults follow PgBouncer's, see DEFAULT_CONFIG.pool.
   */
  pool: {
    /**
     * pool.mode: 'transaction' (a pooled server connection per transaction, or per statement outside
     * one, unless the session pins it) or 'session' (one per client session).
     */
    mode: PoolMode;
    /** pool.size: server connections per pool at most. */
    size: number;
    /** pool.min_idle: idle connections kept open ahead of demand. */
    minIdle: number;
    /** pool.max_client_wait: how long a client waits for a connection before an error, ms; 0 = no limit. */
    maxClientWaitMs: number;
    /** pool.server_idle_timeout: an idle connection this old (beyond min_idle) is closed, ms; 0 = never. */
    serverIdleTimeoutMs: number;
    /** pool.server_lifetime: a connection this old is closed once idle, ms; 0 = never. */
    serverLifetimeMs: number;
    /** pool.prepared_statements: named statements clients prepared kept per server connection (past it, deallocated when it goes back). */
    preparedStatements: number;
  };
  /** Prometheus endpoint; default null (off). */
  metrics: { listen: ListenAddress | null };
  /** Users (from users:) who may open the admin console (database pgsplit); in development mode, anyone. */
  admin: { users: string[] };
  log: { level: LogLevel };
}

export const AUTH_METHODS: readonly AuthMethod[] = ['scram-sha-256', 'md5'];
export const ROUTE_TARGETS: readonly RouteTarget[] = ['primary', 'replica'];
export const UNKNOWN_FUNCTION_POLICIES: readonly UnknownFunctionPolicy[] = ['primary', 'replica'];
export const NO_REPLICA_POLICIES: readonly NoReplicaPolicy[] = ['primary', 'error'];
export type TransactionPolicy = 'replica-until-write' | 'primary';
export type PoolMode = 'transaction' | 'session';
export const POOL_MODES: readonly PoolMode[] = ['transaction', 'session'];
export const TRANSACTION_POLICIES: readonly TransactionPolicy[] = ['replica-until-write', 'primary'];
export const CLIENT_TLS_MODES: readonly ClientTlsMode[] = ['disable', 'allow', 'require'];
export const SERVER_SSL_MODES: readonly ServerSslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export const DEFAULT_LISTEN_HOST = '127.0.0.1';
export const DEFAULT_LISTEN_PORT = 6432;
export const DEFAULT_SERVER_PORT = 5432;
export const MiB = 1024 * 1024;

/** Everything except the (required) primary, with defaults applied. Deeply frozen: copy before changing. */
export type PgsplitDefaults = Omit<PgsplitConfig, 'primary'>;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export const DEFAULT_CONFIG: Readonly<PgsplitDefaults> = deepFreeze({
  listen: { host: DEFAULT_LISTEN_HOST, port: DEFAULT_LISTEN_PORT },
  replicas: [],
  users: [],
  databases: {},
  auth: { method: 'scram-sha-256' },
  tls: { mode: 'disable', certFile: null, keyFile: null, certPem: null, keyPem: null, caFile: null, caPem: null },
  routing: {
    applicationNames: [], default: 'primary', writingFunctions: [], readOnlyFunctions: [], unknownFunctions: 'primary',
    maxLagMs: 1000, readYourWritesTimeoutMs: 200, whenNoReplica: 'primary', transactions: 'replica-until-write',
  },
  monitor: { intervalMs: 100, timeoutMs: 1000, rise: 3, lagIntervalMs: 10, fastIntervalMs: 2, user: null, password: null },
  limits: {
    maxMessageSize: 64 * MiB,
    maxClientConnections: 1000,
    maxUserConnections: 0,
    idleInTransactionTimeoutMs: 0,
    maxPendingBytes: 4 * MiB,
    startupTimeoutMs: 10_000,
    connectTimeoutMs: 5_000,
    shutdownGraceMs: 30_000,
  },
  // PgBouncer's defaults but the mode: default_pool_size 20, min_pool_size 0, query_wait_timeout 120 s,
  // server_idle_timeout 600 s, server_lifetime 3600 s, max_prepared_statements 200. The mode is
  // transaction: session mode caps the clients running at once at pool.size per pool, and what a session
  // leaves beyond its transactions is followed (settings replayed, pins keep the connection).
  pool: {
    mode: 'transaction',
    size: 20,
    minIdle: 0,
    maxClientWaitMs: 120_000,
    serverIdleTimeoutMs: 600_000,
    serverLifetimeMs: 3_600_000,
    preparedStatements: 200,
  },
  metrics: { listen: null },
  admin: { users: [] },
  log: { level: 'info' },
} satisfies PgsplitDefaults);

/**
 * Hide secrets in a URL or connection string before it goes into a message or a log line:
 * `postgres://alice:s3cret@db:5432/app` → `postgres://alice:****@db:5432/app`; `password=` parameters
 * are masked too. Works on strings that are not valid URLs (it errs towards masking too much).
 */
export function maskUrl(url: string): string {
  let out = url;
  const schemeEnd = out.indexOf('://');
  const start = schemeEnd >= 0 ? schemeEnd + 3 : 0;
  const at = out.lastIndexOf('@');
  if (at > start) {
    const userinfo = out.slice(start, at);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) out = out.slice(0, start) + userinfo.slice(0, colon + 1) + '****' + out.slice(at);
  }
  return out.replace(/(password\s*=\s*)[^&#\s]*/gi, '$1****');
}
