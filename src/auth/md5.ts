/**
 * PostgreSQL's legacy md5 password authentication (AuthenticationMD5Password), built on node:crypto only.
 *
 * The stored form is 'md5' + md5hex(password + user); the client answers a 4-byte salt with
 * 'md5' + md5hex(md5hex(password + user) + salt). Strings are hashed as UTF-8 bytes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { parseScramVerifier } from './scram.js';
import { isMd5Hash } from './md5-hash.js';


function md5hex(data: string | Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/** Hex digest of password+user, i.e. the stored form without its 'md5' prefix. */
function innerHash(user: string, password: string): string {
  return md5hex(Buffer.from(password + user, 'utf8'));
}

function saltedResponse(innerHex: string, salt: Buffer): string {
  return 'md5' + md5hex(Buffer.concat([Buffer.from(innerHex, 'ascii'), salt]));
}

/** PostgreSQL's md5 password hash sent by a client: 'md5' + md5hex(md5hex(password + user) + salt). */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  return saltedResponse(innerHash(user, password), salt);
}

/**
 * The answer to a server's md5 challenge from a stored hash ('md5' + md5hex(password + user)) instead of
 * the password: what md5 needs is that hash, so a server storing the same one accepts it (PgBouncer does
 * the same with md5 hashes in its auth_file).
 */
export function md5HashResponse(storedHash: string, salt: Buffer): string {
  return saltedResponse(storedHash.slice(3), salt);
}

/** Stored form 'md5' + md5hex(password + user). */
export function md5StoredHash(user: string, password: string): string {
  return 'md5' + innerHash(user, password);
}

/**
 * Server side check: secret is the plaintext password or a stored 'md5…' hash; constant-time compare.
 * Returns false for secret null (unknown user).
 *
 * A secret of exactly 'md5' + 32 lowercase hex digits is taken as a stored hash, as PostgreSQL does.
 * Like PostgreSQL, an empty plaintext password never matches. A SCRAM verifier cannot be used for md5
 * authentication, so a secret that is one never matches either (rather than being taken as a plaintext
 * password, which would let the verifier text itself serve as a password). Callers holding a SCRAM
 * verifier should run SCRAM instead, as PostgreSQL does.
 */
export function md5Verify(user: string, secret: string | null, salt: Buffer, response: string): boolean {
  if (secret === null || secret === '' || parseScramVerifier(secret) !== null) return false;
  const inner = isMd5Hash(secret) ? secret.slice(3) : innerHash(user, secret);
  const expected = Buffer.from(saltedResponse(inner, salt), 'utf8');
  const actual = Buffer.from(response, 'utf8');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
