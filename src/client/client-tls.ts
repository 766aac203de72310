import tls from 'node:tls';
import { tlsServerEndPoint } from '../auth/channel-binding.js';
import type { PgsplitConfig } from '../config/config.js';
import type { ClientTls } from './client-handshake.js';

/** Client TLS as the handshake needs it, built from tls.* once per configuration (at start, and by a reload that changes them). */
export function clientTlsFor(c: PgsplitConfig): ClientTls {
  const t = c.tls;
  if (t.mode === 'disable' || t.certPem === null || t.keyPem === null) return { mode: 'disable', context: null, requestCert: false, endPoint: null };
  return {
    mode: t.mode,
    context: tls.createSecureContext({ cert: t.certPem, key: t.keyPem, ...(t.caPem !== null ? { ca: t.caPem } : {}) }),
    requestCert: t.caPem !== null,
    endPoint: tlsServerEndPoint(t.certPem),
  };
}
