/**
 * users: the client logins pgsplit checks, with their passwords (plaintext, md5 hash or SCRAM
 * verifier) validated against auth.method. Passwords are never echoed in messages.
 */
import { isMd5Hash } from '../auth/md5-hash.js';
import type { AuthMethod, UserEntry } from './config.js';
import { describe, isMap, type ConfigContext } from './config-context.js';
import { USER_KEYS } from './config-keys.js';
import { userLoginFromRaw } from './login-config.js';

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

export function usersFromRaw(v: unknown, method: AuthMethod, ctx: ConfigContext): UserEntry[] {
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
