import { createHash, X509Certificate } from 'node:crypto';

/** DER content of the signature-algorithm OIDs, to the hash RFC 5929 says tls-server-end-point uses. */
const SIGNATURE_HASH: ReadonlyArray<[string, string]> = [
  ['2a864886f70d010104', 'sha256'], // md5WithRSAEncryption: MD5 and SHA-1 are replaced by SHA-256
  ['2a864886f70d010105', 'sha256'], // sha1WithRSAEncryption
  ['2a864886f70d01010e', 'sha224'],
  ['2a864886f70d01010b', 'sha256'],
  ['2a864886f70d01010c', 'sha384'],
  ['2a864886f70d01010d', 'sha512'],
  ['2a8648ce3d040301', 'sha224'], // ecdsa-with-SHA224
  ['2a8648ce3d040302', 'sha256'],
  ['2a8648ce3d040303', 'sha384'],
  ['2a8648ce3d040304', 'sha512'],
  ['2a8648ce3d0401', 'sha256'], // ecdsa-with-SHA1
];

/** Reads one DER element header at `at`: where its content starts and how long it is. */
function element(der: Buffer, at: number): { tag: number; start: number; length: number } | null {
  if (at + 2 > der.length) return null;
  const tag = der[at] as number;
  let len = der[at + 1] as number;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] as number);
    start += n;
  }
  return start + len <= der.length ? { tag, start, length: len } : null;
}

/**
 * The tls-server-end-point channel binding data (RFC 5929) for a PEM certificate: its DER hashed with
 * the hash of its signature algorithm (SHA-256 for MD5 and SHA-1). Null when that algorithm names no
 * single hash (RSASSA-PSS, Ed25519): then SCRAM-SHA-256-PLUS is not offered, as PostgreSQL cannot either.
 */
export function tlsServerEndPoint(certPem: string): Buffer | null {
  const der = new X509Certificate(certPem).raw;
  // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, ... }
  const cert = element(der, 0);
  if (cert === null || cert.tag !== 0x30) return null;
  const tbs = element(der, cert.start);
  if (tbs === null) return null;
  const alg = element(der, tbs.start + tbs.length);
  if (alg === null || alg.tag !== 0x30) return null;
  const oid = element(der, alg.start);
  if (oid === null || oid.tag !== 0x06) return null;
  const hex = der.subarray(oid.start, oid.start + oid.length).toString('hex');
  const hash = SIGNATURE_HASH.find(([o]) => o === hex)?.[1];
  return hash === undefined ? null : createHash(hash).update(der).digest();
}
