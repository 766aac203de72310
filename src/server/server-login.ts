/**
 * As whom, with what secret and into which database a session logs in to its servers: decided once, when
 * its client has authenticated, and applied to every server the session attaches.
 *
 * The rules (README "Users and server logins"), by precedence:
 * 1. users[i].server_user: that role on every server, with users[i].server_password (or, when absent, the
 *    password of a server URL naming that same role; else none).
 * 2. A server URL that names a user forces that role and its password for every client, as `user=` in a
 *    PgBouncer [databases] entry does (and as pgsplit always did).
 * 3. Otherwise the client's own role, with its own secret from users[i].password: a plaintext password
 *    (answers cleartext, md5 and SCRAM), an md5 hash (answers md5 only, when the server stores that same
 *    hash) or a SCRAM verifier (SCRAM pass-through: the ClientKey the client proved at login, which a
 *    server holding the same verifier accepts). In development mode (no users:) the client's role with the
 *    URL's password, if any.
 * The database is the client's, through databases: when it maps that name.
 */
import type { PgsplitConfig, ServerEndpoint, UserEntry } from '../config/config.js';
import { isMd5Hash } from '../auth/md5-hash.js';
import { parseScramVerifier, type ScramKeys } from '../auth/scram.js';
import type { ServerTarget } from './server-connection.js';

/** What pgsplit answers a server's password request with. */
export type ServerSecret =
  | { kind: 'password'; password: string }
  /** 'md5' + md5hex(password + user): answers md5 only. */
  | { kind: 'md5-hash'; hash: string }
  /** SCRAM pass-through: answers SCRAM-SHA-256 only. */
  | { kind: 'scram-keys'; keys: ScramKeys };

/** A session's login, before it meets a particular server (whose URL may force a role). */
export interface SessionLogin {
  /** The name the client logged in to pgsplit with. */
  clientUser: string;
  /** users[i].server_user, or null. */
  mappedUser: string | null;
  /** The secret of the mapped or the client's own role; null when there is none. */
  secret: ServerSecret | null;
  /** The config key the secret comes from ('users[2].password'), for messages; null with no secret. */
  secretKey: string | null;
  /** The database to ask the servers for. */
  database: string;
}

/** What decides a login: the parts of the configuration in force when the client connected. */
export type LoginConfig = Pick<PgsplitConfig, 'users' | 'databases'>;

/**
 * The login of a client that has authenticated as `clientUser` asking for `clientDatabase`;
 * `scramClientKey` is the ClientKey recovered from its SCRAM proof (null when it used md5 or trust).
 */
export function sessionLogin(config: LoginConfig, clientUser: string, clientDatabase: string, scramClientKey: Buffer | null): SessionLogin {
  const database = config.databases[clientDatabase] ?? clientDatabase;
  const i = config.users.findIndex((u) => u.name === clientUser);
  const entry: UserEntry | undefined = config.users[i];
  if (entry === undefined) return { clientUser, mappedUser: null, secret: null, secretKey: null, database };
  if (entry.serverUser !== undefined) {
    const secret = entry.serverPassword !== undefined ? ownSecret(entry.serverPassword, null) : null;
    return { clientUser, mappedUser: entry.serverUser, secret, secretKey: secret === null ? null : `users[${i}].server_password`, database };
  }
  const secret = ownSecret(entry.password, scramClientKey);
  return { clientUser, mappedUser: null, secret, secretKey: secret === null ? null : `users[${i}].password`, database };
}

/** A configured password as a server secret; a SCRAM verifier needs the client's ClientKey to be one. */
function ownSecret(password: string, scramClientKey: Buffer | null): ServerSecret | null {
  const verifier = parseScramVerifier(password);
  if (verifier !== null) {
    if (scramClientKey === null) return null;
    return { kind: 'scram-keys', keys: { clientKey: scramClientKey, serverKey: verifier.serverKey, salt: verifier.salt, iterations: verifier.iterations } };
  }
  if (isMd5Hash(password)) return { kind: 'md5-hash', hash: password };
  return { kind: 'password', password };
}

/** Where to connect for `endpoint` (its config key `configKey`), as whom, with what: see the rules above. */
export function loginTarget(endpoint: ServerEndpoint, configKey: string, login: SessionLogin): ServerTarget {
  const base: ServerTarget = { name: endpoint.name, configKey, host: endpoint.host, port: endpoint.port, tls: endpoint.tls, database: login.database };
  const urlSecret = endpoint.password !== undefined ? { secret: { kind: 'password', password: endpoint.password } as const, secretKey: configKey } : {};
  if (login.mappedUser !== null) {
    if (login.secret !== null && login.secretKey !== null) return { ...base, user: login.mappedUser, secret: login.secret, secretKey: login.secretKey };
    return { ...base, user: login.mappedUser, ...(endpoint.user === login.mappedUser ? urlSecret : {}) };
  }
  if (endpoint.user !== undefined) return { ...base, user: endpoint.user, ...urlSecret };
  if (login.secret !== null && login.secretKey !== null) return { ...base, user: login.clientUser, secret: login.secret, secretKey: login.secretKey };
  // Development mode, or a SCRAM user whose ClientKey is unknown: the client's role, the URL's password if any.
  return { ...base, ...urlSecret };
}
