/**
 * PostgreSQL's stored md5 form, 'md5' + 32 lowercase hex digits: a secret that looks so is a stored hash
 * (for md5 authentication, and never usable for SCRAM), anything else a plaintext password or a verifier.
 * One test for the config loader, the handshake and both authentication methods.
 */
export function isMd5Hash(secret: string): boolean {
  return /^md5[0-9a-f]{32}$/.test(secret);
}
