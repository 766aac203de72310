/**
 * tls: the TLS pgsplit offers its clients (certificate, key, optional client CA), checked as a
 * usable pair at load time.
 */
import { createSecureContext } from 'node:tls';
import { CLIENT_TLS_MODES, type ClientTlsConfig, type ClientTlsMode } from './config.js';
import { describe, type ConfigContext, type Raw } from './config-context.js';
import { readPem } from './pem-file.js';

/**
 * tls: { mode, cert, key, ca }. With cert and key the mode defaults to allow (TLS for clients that ask,
 * as PostgreSQL with ssl = on); without them it must be disable. The files are read and checked now, so
 * that check-config and a reload find a bad certificate before clients do.
 */
export function tlsFromRaw(t: Raw, ctx: ConfigContext): ClientTlsConfig {
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
