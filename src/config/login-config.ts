/**
 * The config keys that decide how pgsplit logs in to its servers: users[].server_user and
 * users[].server_password, databases:, monitor.user and monitor.password. Validated here, for
 * load-config.ts (which owns the rest of the file); what they mean is in src/server/server-login.ts.
 *
 * Passwords are never echoed in messages, only what kind of value was found.
 */
/** Raises a ConfigError keyed by `key` (ConfigContext.fail, config-context.ts). */
export type Fail = (key: string, message: string) => never;

type Raw = Record<string, unknown>;

/** The keys of a users[] entry (name and password are load-config's). */
export const USER_LOGIN_KEYS = ['server_user', 'server_password'] as const;
/** The keys of monitor: that are its login. */
export const MONITOR_LOGIN_KEYS = ['user', 'password'] as const;
/** The key of a databases: entry written as a mapping, as in PgBouncer's [databases] (dbname=). */
const DATABASE_KEYS = ['dbname'] as const;
/** The admin console's database: a client asking for it never reaches a server. */
const ADMIN_DATABASE = 'pgsplit';

function kindOf(v: unknown): string {
  if (v === null || v === undefined) return 'empty';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a mapping' : typeof v === 'number' ? 'a number' : typeof v === 'boolean' ? 'true/false' : `a ${typeof v}`;
}

/** A role or database name: a non-empty string without NUL (PostgreSQL's own limit is its business). */
function name(v: unknown, key: string, fail: Fail, fix: string): string {
  if (typeof v !== 'string' || v === '' || v.includes('\0')) fail(key, `must be a non-empty name, not ${kindOf(v)}; ${fix}`);
  return v;
}

/** A password given to pgsplit to log in with: plaintext or an md5 hash; never echoed. */
function loginPassword(v: unknown, key: string, fail: Fail, forWhom: string): string {
  if (typeof v !== 'string') fail(key, `must be a string, not ${kindOf(v)}; put the password in quotes: ${key.split('.').pop() ?? key}: "..."`);
  if (v === '') fail(key, `is empty; write ${forWhom}'s password, or leave the key out`);
  if (v.startsWith('SCRAM-SHA-256$')) {
    fail(key, `is a SCRAM verifier, which cannot log in to a server (a verifier checks a password, it does not stand for one); write ${forWhom}'s plaintext password`);
  }
  return v;
}

/** users[i].server_user and server_password, of the entry `entry` at `key` ('users[2]'). */
export function userLoginFromRaw(entry: Raw, key: string, fail: Fail): { serverUser?: string; serverPassword?: string } {
  const u = entry['server_user'];
  const p = entry['server_password'];
  const out: { serverUser?: string; serverPassword?: string } = {};
  if (u !== undefined && u !== null) {
    out.serverUser = name(u, `${key}.server_user`, fail, 'write server_user: ROLE (the role this user is on the servers)');
  }
  if (p !== undefined && p !== null) {
    if (out.serverUser === undefined) {
      fail(`${key}.server_password`, `needs ${key}.server_user: it is the password of that role; add server_user: ROLE, or remove server_password (the user then logs in as itself with its own password)`);
    }
    // An md5 hash is accepted as is: it answers md5 servers storing that same hash (of server_user's name).
    out.serverPassword = loginPassword(p, `${key}.server_password`, fail, `role "${out.serverUser}"`);
  }
  return out;
}

/**
 * databases: either `{CLIENT_DB: SERVER_DB}` or PgBouncer's spelling `{CLIENT_DB: {dbname: SERVER_DB}}`;
 * both give the same map.
 */
export function databasesFromRaw(v: unknown, fail: Fail): Record<string, string> {
  if (v === undefined || v === null) return {};
  const example = 'databases: {app: nova_prod} (or {app: {dbname: nova_prod}})';
  if (typeof v !== 'object' || Array.isArray(v)) fail('databases', `must be a mapping from the database clients ask for to the one on the servers, not ${kindOf(v)}; write ${example}`);
  const out: Record<string, string> = {};
  for (const [client, target] of Object.entries(v as Raw)) {
    const key = `databases.${client}`;
    if (client === '' || client.includes('\0')) fail('databases', `has an empty database name; write ${example}`);
    if (client === ADMIN_DATABASE) fail(key, `"${ADMIN_DATABASE}" is the admin console's database and never reaches a server; remove this entry and map another name`);
    let server: unknown = target;
    if (typeof target === 'object' && target !== null && !Array.isArray(target)) {
      const t = target as Raw;
      for (const k of Object.keys(t)) {
        if (!(DATABASE_KEYS as readonly string[]).includes(k)) fail(`${key}.${k}`, `unknown key ${key}.${k}; a database entry has only dbname: write ${client}: {dbname: SERVER_DB}`);
      }
      server = t['dbname'];
      if (server === undefined || server === null) fail(`${key}.dbname`, `is missing; write ${client}: {dbname: SERVER_DB}`);
    }
    out[client] = name(server, key, fail, `write ${client}: SERVER_DB (the database's name on the servers)`);
  }
  return out;
}

/** monitor.user and monitor.password (of the monitor: section `m`). */
export function monitorLoginFromRaw(m: Raw, fail: Fail): { user: string | null; password: string | null } {
  const u = m['user'];
  const p = m['password'];
  const user = u === undefined || u === null ? null : name(u, 'monitor.user', fail, 'write user: ROLE (the role the monitor logs in as)');
  if (p === undefined || p === null) return { user, password: null };
  if (user === null) fail('monitor.password', 'needs monitor.user: it is the password of that role; add user: ROLE under monitor:, or remove monitor.password (the monitor then uses the URLs\' credentials)');
  return { user, password: loginPassword(p, 'monitor.password', fail, `role "${user}"`) };
}
