import type net from 'node:net';

/** A client's address for logs and the admin console: host:port, [v6]:port, or '' once the socket is gone. */
export function clientAddress(s: net.Socket): string {
  const host = s.remoteAddress;
  if (host === undefined) return '';
  return host.includes(':') ? `[${host}]:${s.remotePort ?? 0}` : `${host}:${s.remotePort ?? 0}`;
}
