/**
 * Command-line parsing for the pgsplit binary. Pure: takes argv (without node and the script), returns
 * what to do, or throws an Error whose message names the offending argument and ends with
 * "run pgsplit --help". Config values given as flags are validated later by loadConfig().
 */
import { maskUrl } from './config.js';
import type { ConfigOverrides } from './load-config.js';
import { levenshtein } from './suggest.js';

export type CliCommand =
  | { command: 'run'; configFile?: string; overrides: ConfigOverrides }
  | { command: 'demo'; duration?: number /* seconds */; replicas: number; listen?: string }
  /** configFile is absent only when flags give the configuration; overrides only when flags are given. */
  | { command: 'check-config'; configFile?: string; overrides?: ConfigOverrides }
  /** Exactly one of sql and file is set. */
  | { command: 'explain'; json: boolean; sql?: string; file?: string; configFile?: string }
  | { command: 'help' }
  | { command: 'version' };

export const DEMO_DEFAULT_REPLICAS = 2;
export const DEMO_MAX_REPLICAS = 16;

export const HELP_TEXT = `pgsplit - a PostgreSQL proxy that sends tagged read-only traffic to read replicas

USAGE
  pgsplit [run] [--config FILE] [FLAGS]   start the proxy
  pgsplit demo [--duration SECONDS] [--replicas N] [--listen HOST:PORT]
                                          run a self-contained demo: a real PostgreSQL primary
                                          and N streaming replicas in a temporary folder, with
                                          pgsplit in front of them and a Nova-like workload
  pgsplit check-config FILE [FLAGS]       validate a config file (with PGSPLIT_* variables and the
                                          run flags over it), report any problem, show each
                                          value and where it came from
  pgsplit explain [--json] [--config FILE] 'SQL'
                                          show how a query string would be classified and routed
  pgsplit explain [--json] [--config FILE] --file FILE.sql
                                          the same for each statement of a psql script
  pgsplit help | -h | --help              show this text
  pgsplit version | -V | --version        print the version

FLAGS FOR RUN (flags override the config file; --flag=value works too)
  --config FILE                  YAML config file (see CONFIG FILE below)
  --listen HOST:PORT             where clients connect (default 127.0.0.1:6432)
  --primary URL                  the primary server, postgres://USER:PASSWORD@HOST:PORT/DATABASE
  --replica URL                  a read replica; repeat for several (replaces the file's replicas:)
  --metrics-listen HOST:PORT     serve Prometheus metrics on HOST:PORT (default off)
  --log-level LEVEL              trace, debug, info, warn, error, fatal or silent (default info)
  --tag-application-name PATTERN tag sessions whose application_name matches PATTERN (* and ?
                                 wildcards) for replicas; repeat for several (replaces the file's list)
  --max-lag DURATION             routing.max_lag: a replica lagging more serves no reads (default 1s)

ENVIRONMENT (flags override these, these override the config file)
  Every single-value config key can be set as PGSPLIT_ and the key in capitals, dots as underscores:
  PGSPLIT_LISTEN, PGSPLIT_PRIMARY, PGSPLIT_LOG_LEVEL, PGSPLIT_ROUTING_MAX_LAG, PGSPLIT_METRICS_LISTEN,
  PGSPLIT_LIMITS_SHUTDOWN_GRACE, ... Lists (replicas, users, application names) stay in the file or flags.
  An empty variable counts as unset. PGSPLIT_LOG_FORMAT=json|pretty chooses the log format (default
  pretty on a terminal, else json).

DEMO FLAGS
  --duration SECONDS             stop after this many seconds (default: run until Ctrl-C)
  --replicas N                   number of replicas, 0-${DEMO_MAX_REPLICAS} (default ${DEMO_DEFAULT_REPLICAS})
  --listen HOST:PORT             where the demo proxy listens (default 127.0.0.1:6432)
  The demo runs PostgreSQL's own programs (initdb, pg_ctl, pg_basebackup): it finds them through
  pg_config on PATH, else in PG_BINDIR (e.g. PG_BINDIR=/usr/lib/postgresql/16/bin).

EXPLAIN FLAGS (explain assumes a tagged session with healthy replicas)
  --json                         print JSON lines: route and reason (with --file also line and
                                 statement, one line per statement, then a summary line)
  --file FILE                    explain each statement of a psql-style file (meta-commands such as \\d
                                 and COPY ... FROM stdin data are skipped); a summary line comes last
  --config FILE                  use the routing function lists of this config file (only routing: is
                                 read; primary: may be missing)

HOW ROUTING WORKS
  Everything goes to the primary unless a session is tagged for replicas. Even in a tagged session,
  only statements pgsplit can prove read-only (plain SELECT, SHOW, ...) outside an explicit write
  transaction go to a replica; writes, DDL, locking reads and anything uncertain go to the primary.
  A client tags its session in any of these ways:
    SET pgsplit.route = 'replica';                       from SQL, for the rest of the session
    PGOPTIONS='-c pgsplit.route=replica' psql ...        at connect time (libpq options)
    application_name matching routing.application_names  e.g. application_name=reporting-daily
    /* pgsplit:route=replica */ SELECT ...               hint comment on a single statement

  Replicas serve a read only while healthy, in recovery and within the lag bound. After a session
  writes, its reads go only to replicas that have replayed the write (else, after a short wait, the
  primary); SHOW pgsplit.lsn gives the position, and SET pgsplit.after = '...' (or an after= hint)
  in another session makes its reads wait for it.

  Functions: a read that calls a writing function (nextval, setval, pg_advisory_lock, set_config, lo_*,
  ... plus routing.writing_functions) always goes to the primary. Built-in read-only functions (lower,
  now, count, jsonb_build_object, ...) are fine on a replica. Any other function, such as one you
  wrote, is unknown: with routing.unknown_functions: primary (the default) the statement goes to the
  primary; list functions that only read in routing.read_only_functions, or set unknown_functions:
  replica (a function that writes then fails on the replica with 25006 and pgsplit re-runs the
  statement on the primary). A route=replica hint does the same for its own statement. Check a
  workload with: pgsplit explain --config FILE --file workload.sql

CONFIG FILE (YAML; every key is optional except primary)
  listen: "127.0.0.1:6432"             # HOST:PORT; quote IPv6: "[::1]:6432"
  primary: postgres://db-primary:5432/app  # no user: each user logs in as itself (see SERVER LOGINS)
  replicas:                            # URL strings, or mappings with url, name, weight
    - postgres://db-replica-1:5432/app
    - url: postgres://db-replica-2:5432/app
      name: replica-east               # default replica1, replica2, ...
      weight: 2                        # share of replica sessions (default 1)
  # tls:                               # TLS for clients (default off); the files must exist
  #   cert: /etc/pgsplit/server.crt    # PEM; with key, mode defaults to allow
  #   key: /etc/pgsplit/server.key
  #   mode: require                    # disable, allow (TLS if the client asks), require
  #   ca: /etc/pgsplit/clients-ca.crt  # optional: TLS clients must present a certificate it signed
  users:                               # who may connect to pgsplit
    - name: app
      password: "change-me"            # plaintext, md5 hash, or SCRAM-SHA-256$... verifier
    - name: ops
      password: "change-me-too"        # ops opens the admin console (admin: below)
    - name: reporting
      password: "change-me-three"
      server_user: app                 # logs in to the servers as app instead of itself
      server_password: "app-secret"    # app's password on the servers
  databases:                           # database asked for -> database on the servers (default: the same)
    app: app_production                # or app: {dbname: app_production}
  auth:
    method: scram-sha-256              # or md5 (default scram-sha-256)
  routing:
    application_names: ["reporting-*", "metabase"]  # tag these sessions for replicas
    default: primary                   # route of untagged sessions: primary or replica
    writing_functions: [audit_touch]   # more functions that write (never on a replica)
    read_only_functions: [report_totals, reporting.monthly]  # your functions that only read
    unknown_functions: primary         # any other function: primary (default) or replica
    max_lag: 1s                        # replicas lagging more serve no reads (also SET pgsplit.max_lag)
    read_your_writes_timeout: 200ms    # after a write, wait this long for a replica to replay it
    when_no_replica: primary           # no eligible replica: primary (default) or error (57P03)
    transactions: replica-until-write  # tagged BEGIN ...: on a replica until its first write (or: primary)
  monitor:
    interval: 100ms                    # each server is checked this often
    timeout: 1s                        # a check taking longer takes the server out of rotation
    rise: 3                            # passed checks in a row before it is put back
    lag_interval: 10ms                 # WAL positions alone are sampled this often (the lag estimate's grain)
    fast_interval: 2ms                 # a replica a read waits on (read-your-writes) is asked this often
    user: pgsplit_monitor              # the monitor's own login (default: the URLs', else postgres)
    password: "monitor-secret"
  limits:
    max_message_size: 64MB             # bytes, or 512kB / 64MB / 1GB
    max_client_connections: 1000
    max_user_connections: 0            # sessions one user may hold; 0 = no per-user limit (53300 past it)
    idle_in_transaction_timeout: 0     # close sessions idle in a transaction this long (25P03); 0 = never
    max_pending_bytes: 4MB             # client input held behind running statements; past it reading pauses
    startup_timeout: 10s               # handshake, and waiting for pgsplit's own start (57P03 past it)
    connect_timeout: 5s                # connecting to servers
    shutdown_grace: 30s                # SIGTERM: in-flight statements may finish this long
  # pool:
  #   mode: transaction                # default: a connection per transaction; or session
  #   size: 20                         # server connections per server, database and user
  #   min_idle: 0                      # idle connections kept open ahead of demand
  #   max_client_wait: 120s            # a client waiting longer for a connection gets 53300; 0 = no limit
  #   server_idle_timeout: 10min       # idle connections beyond min_idle close after this; 0 = never
  #   server_lifetime: 1h              # connections this old close once idle; 0 = never
  #   prepared_statements: 200         # clients' prepared statements kept per server connection
  metrics:
    listen: "127.0.0.1:9187"           # default off
  admin:
    users: [ops]                       # users (from users:) who may open the admin console
  log:
    level: info

  Server URLs accept postgres:// or postgresql://; the port defaults to 5432; percent-encode special
  characters in passwords (@ as %40, / as %2F). Query parameters: sslmode (disable, allow, prefer, require,
  verify-ca, verify-full; default disable) and sslrootcert=PATH. String values may use \${ENV_VAR} or
  \${ENV_VAR:-default} to keep secrets out of the file; write $\${...} for a literal \${...}.

SERVER LOGINS
  A user in users: logs in to the servers as itself, with its users: password: plaintext (any method),
  an md5 hash (md5 servers storing the same hash) or a SCRAM verifier (SCRAM pass-through; copy the
  role's rolpassword from pg_authid). users[].server_user / server_password map a user to another role.
  A server URL that names a user forces that role for every other user (PgBouncer's user=).

SIGNALS
  SIGHUP   reload --config (flags stay over it): replicas added or removed (removed ones drain), routing,
           limits, users and monitor settings changed, no session dropped; an invalid file is refused and
           logged, and the running configuration stays. listen, primary and metrics.listen need a restart.
           The admin console's RELOAD does the same.
  SIGTERM  drain: in-flight statements finish (limits.shutdown_grace), idle sessions close, exit 0
  SIGINT   close at once

ADMIN CONSOLE
  psql -h HOST -p PORT -U ops -d pgsplit opens pgsplit's own console (users in admin.users; anyone in
  development mode). SHOW HELP lists its commands: SHOW NODES / CLIENTS / SERVERS / STATS / CONFIG,
  PAUSE, RESUME, RELOAD, DISABLE / ENABLE <replica>, KILL <client id>. Nothing typed there reaches a server.

LOGS
  JSON lines on stderr; human-readable lines when stderr is a terminal. PGSPLIT_LOG_FORMAT=pretty or
  PGSPLIT_LOG_FORMAT=json chooses either way. Passwords, query texts and parameters are never logged.

DEVELOPMENT MODE
  With no users: configured, pgsplit runs in development mode: it trusts every client (no password)
  and therefore only listens on a loopback address (127.0.0.1, ::1, localhost). Configure users:
  before listening on any other address.

EXAMPLES
  pgsplit --primary postgres://app:secret@localhost:5432/app \\
          --replica postgres://app:secret@localhost:5433/app --tag-application-name 'report*'
  pgsplit --config /etc/pgsplit.yaml --log-level debug
  pgsplit check-config /etc/pgsplit.yaml
  pgsplit explain "SELECT * FROM orders WHERE id = 1"
  pgsplit explain --json --config /etc/pgsplit.yaml --file workload.sql
  pgsplit demo --duration 30
`;

const HELP_HINT = 'run pgsplit --help';
const COMMANDS = ['run', 'demo', 'check-config', 'explain', 'help', 'version'] as const;

type FlagKind = 'value' | 'multi' | 'bool';
interface FlagSpec { kind: FlagKind; metavar?: string }

const RUN_FLAGS: Record<string, FlagSpec> = {
  '--config': { kind: 'value', metavar: 'FILE' },
  '--listen': { kind: 'value', metavar: 'HOST:PORT' },
  '--primary': { kind: 'value', metavar: 'URL' },
  '--replica': { kind: 'multi', metavar: 'URL' },
  '--metrics-listen': { kind: 'value', metavar: 'HOST:PORT' },
  '--log-level': { kind: 'value', metavar: 'LEVEL' },
  '--tag-application-name': { kind: 'multi', metavar: 'PATTERN' },
  '--max-lag': { kind: 'value', metavar: 'DURATION' },
};
const DEMO_FLAGS: Record<string, FlagSpec> = {
  '--duration': { kind: 'value', metavar: 'SECONDS' },
  '--replicas': { kind: 'value', metavar: 'N' },
  '--listen': { kind: 'value', metavar: 'HOST:PORT' },
};
const CHECK_FLAGS: Record<string, FlagSpec> = RUN_FLAGS;
const EXPLAIN_FLAGS: Record<string, FlagSpec> = {
  '--json': { kind: 'bool' },
  '--file': { kind: 'value', metavar: 'FILE' },
  '--config': { kind: 'value', metavar: 'FILE' },
};

function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** An argument for an error message: secrets in URLs masked, shortened. */
function shown(arg: string): string {
  const m = maskUrl(arg);
  return JSON.stringify(m.length > 60 ? `${m.slice(0, 57)}...` : m);
}

function looksLikeFlag(arg: string): boolean {
  return /^--?[A-Za-z]/.test(arg);
}

interface Parsed {
  values: Map<string, string[]>;
  positionals: string[];
}

function parseFlags(args: string[], specs: Record<string, FlagSpec>, commandLabel: string): Parsed {
  const values = new Map<string, string[]>();
  const positionals: string[] = [];
  const forCommand = commandLabel === '' ? '' : ` for pgsplit ${commandLabel}`;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!looksLikeFlag(arg)) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    const spec = specs[name];
    if (spec === undefined) {
      const near = name.startsWith('--') ? nearest(name, Object.keys(specs)) : undefined;
      throw new Error(`unknown flag ${name}${forCommand}${near !== undefined ? ` (did you mean ${near}?)` : ''}; ${HELP_HINT}`);
    }
    let value: string;
    if (spec.kind === 'bool') {
      if (inline !== undefined) throw new Error(`${name} takes no value; write just ${name}; ${HELP_HINT}`);
      value = 'true';
    } else if (inline !== undefined) {
      value = inline;
    } else {
      const next = args[i + 1];
      if (next === undefined || looksLikeFlag(next)) {
        throw new Error(`${name} needs a value: ${name} ${spec.metavar ?? 'VALUE'}; ${HELP_HINT}`);
      }
      value = next;
      i++;
    }
    if (spec.kind !== 'bool' && value === '') {
      throw new Error(`${name} needs a non-empty value: ${name} ${spec.metavar ?? 'VALUE'}; ${HELP_HINT}`);
    }
    const list = values.get(name) ?? [];
    if (spec.kind === 'value' && list.length > 0) {
      const extra = name === '--primary' ? ' (use --replica URL for each replica)' : '';
      throw new Error(`${name} is given more than once${extra}; give it once; ${HELP_HINT}`);
    }
    list.push(value);
    values.set(name, list);
  }
  return { values, positionals };
}

function one(p: Parsed, flag: string): string | undefined {
  return p.values.get(flag)?.[0];
}

function noPositionals(p: Parsed, usage: string): void {
  const first = p.positionals[0];
  if (first !== undefined) {
    throw new Error(`unexpected argument ${shown(first)}; usage: ${usage}; ${HELP_HINT}`);
  }
}

function checkHostPort(flag: string, value: string): void {
  if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):\d{1,5}$/.test(value) || Number(value.slice(value.lastIndexOf(':') + 1)) > 65535) {
    throw new Error(`${flag} ${shown(value)} is not HOST:PORT; write e.g. ${flag} 127.0.0.1:6432 or ${flag} "[::1]:6432"; ${HELP_HINT}`);
  }
}

function parseRun(args: string[]): CliCommand {
  const p = parseFlags(args, RUN_FLAGS, '');
  noPositionals(p, 'pgsplit [run] [--config FILE] [--primary URL] [--replica URL ...]');
  const overrides = overridesOf(p);
  const configFile = one(p, '--config');
  return configFile === undefined ? { command: 'run', overrides } : { command: 'run', configFile, overrides };
}

/** The config values given as flags (run and check-config take the same ones). */
function overridesOf(p: Parsed): ConfigOverrides {
  const overrides: ConfigOverrides = {};
  const listen = one(p, '--listen');
  if (listen !== undefined) overrides.listen = listen;
  const primary = one(p, '--primary');
  if (primary !== undefined) overrides.primary = primary;
  const replicas = p.values.get('--replica');
  if (replicas !== undefined) overrides.replicas = replicas;
  const metricsListen = one(p, '--metrics-listen');
  if (metricsListen !== undefined) overrides.metricsListen = metricsListen;
  const logLevel = one(p, '--log-level');
  if (logLevel !== undefined) overrides.logLevel = logLevel;
  const names = p.values.get('--tag-application-name');
  if (names !== undefined) overrides.applicationNames = names;
  const maxLag = one(p, '--max-lag');
  if (maxLag !== undefined) overrides.maxLag = maxLag;
  return overrides;
}

function parseDemo(args: string[]): CliCommand {
  const p = parseFlags(args, DEMO_FLAGS, 'demo');
  noPositionals(p, 'pgsplit demo [--duration SECONDS] [--replicas N] [--listen HOST:PORT]');
  const out: { command: 'demo'; duration?: number; replicas: number; listen?: string } = {
    command: 'demo',
    replicas: DEMO_DEFAULT_REPLICAS,
  };
  const duration = one(p, '--duration');
  if (duration !== undefined) {
    const n = /^\d+(\.\d+)?$/.test(duration) ? Number(duration) : NaN;
    if (!(n > 0)) throw new Error(`--duration ${shown(duration)} is not a number of seconds; write e.g. --duration 30; ${HELP_HINT}`);
    out.duration = n;
  }
  const replicas = one(p, '--replicas');
  if (replicas !== undefined) {
    const n = /^\d+$/.test(replicas) ? Number(replicas) : NaN;
    if (!(n >= 0 && n <= DEMO_MAX_REPLICAS)) {
      throw new Error(`--replicas ${shown(replicas)} is not a replica count; write a whole number from 0 to ${DEMO_MAX_REPLICAS}, e.g. --replicas 2; ${HELP_HINT}`);
    }
    out.replicas = n;
  }
  const listen = one(p, '--listen');
  if (listen !== undefined) {
    checkHostPort('--listen', listen);
    out.listen = listen;
  }
  return out;
}

function parseCheckConfig(args: string[]): CliCommand {
  const p = parseFlags(args, CHECK_FLAGS, 'check-config');
  const flagFile = one(p, '--config');
  const files = flagFile === undefined ? p.positionals : [flagFile, ...p.positionals];
  const [file, extra] = files;
  const overrides = overridesOf(p);
  const flagged = Object.keys(overrides).length > 0;
  if (file === undefined && !flagged) throw new Error(`check-config needs a file: pgsplit check-config FILE; ${HELP_HINT}`);
  if (extra !== undefined) {
    throw new Error(`unexpected argument ${shown(extra)}; check-config takes one file: pgsplit check-config FILE; ${HELP_HINT}`);
  }
  const out: Extract<CliCommand, { command: 'check-config' }> = { command: 'check-config' };
  if (file !== undefined) out.configFile = file;
  if (flagged) out.overrides = overrides;
  return out;
}

function parseExplain(args: string[]): CliCommand {
  const p = parseFlags(args, EXPLAIN_FLAGS, 'explain');
  const sql = p.positionals.join(' ');
  const file = one(p, '--file');
  const configFile = one(p, '--config');
  const out: Extract<CliCommand, { command: 'explain' }> = { command: 'explain', json: p.values.has('--json') };
  if (file !== undefined) {
    if (p.positionals.length > 0) {
      throw new Error(`explain takes SQL or --file, not both: drop ${shown(sql)} or --file ${shown(file)}; ${HELP_HINT}`);
    }
    out.file = file;
  } else {
    if (sql.trim() === '') {
      throw new Error(`explain needs a SQL statement: pgsplit explain [--json] 'SELECT 1' (use -- before SQL that starts with -), or a file: pgsplit explain --file FILE.sql; ${HELP_HINT}`);
    }
    out.sql = sql;
  }
  if (configFile !== undefined) out.configFile = configFile;
  return out;
}

/** Parse the command line (argv without node and the script). Throws Error on bad input. */
export function parseCliArgs(argv: string[]): CliCommand {
  const end = argv.indexOf('--');
  const flagPart = end >= 0 ? argv.slice(0, end) : argv;
  for (const arg of flagPart) {
    if (arg === '-h' || arg === '--help') return { command: 'help' };
    if (arg === '-V' || arg === '--version') return { command: 'version' };
  }
  const first = argv[0];
  if (first === undefined || first === '--' || looksLikeFlag(first)) return parseRun(argv);
  const rest = argv.slice(1);
  switch (first) {
    case 'run':
      return parseRun(rest);
    case 'demo':
      return parseDemo(rest);
    case 'check-config':
      return parseCheckConfig(rest);
    case 'explain':
      return parseExplain(rest);
    case 'help':
      return { command: 'help' };
    case 'version':
      return { command: 'version' };
    default: {
      const near = nearest(first, COMMANDS);
      throw new Error(`unknown command ${shown(first)}${near !== undefined ? ` (did you mean ${near}?)` : ''}; commands are ${COMMANDS.join(', ')}; ${HELP_HINT}`);
    }
  }
}
