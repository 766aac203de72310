/**
 * HOST:PORT listen addresses (listen:, metrics.listen, --listen): IPv4, bracketed IPv6, host names
 * and bare ports, and whether an address is loopback (where pgsplit may run without users:).
 */
import { DEFAULT_LISTEN_HOST, type ListenAddress } from './config.js';
import { ConfigContext, show, describe } from './config-context.js';

export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function parsePort(text: string, key: string, ctx: ConfigContext, fix: string, allowZero: boolean): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port > 65535 || (!allowZero && port === 0)) {
    ctx.fail(key, `port ${JSON.stringify(text)} is not a TCP port; ${fix} with a port from ${allowZero ? 0 : 1} to 65535`);
  }
  return port;
}

export function listenFromRaw(v: unknown, key: string, ctx: ConfigContext, example: string): ListenAddress {
  const fix = `write HOST:PORT, e.g. ${key}: "${example}"`;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) ctx.fail(key, `${v} is not a TCP port; ${fix}`);
    return { host: DEFAULT_LISTEN_HOST, port: parsePort(String(v), key, ctx, fix, true) };
  }
  if (typeof v !== 'string') ctx.fail(key, `must be a string HOST:PORT, not ${describe(v)}; ${fix}`);
  const text = v.trim();
  if (/^\d+$/.test(text)) return { host: DEFAULT_LISTEN_HOST, port: parsePort(text, key, ctx, fix, true) };
  if (text.startsWith('[')) {
    const m = /^\[([0-9A-Fa-f:.]+)\]:(\d*)$/.exec(text);
    if (m === null || m[1] === undefined || m[2] === undefined || !m[1].includes(':')) {
      ctx.fail(key, `${show(v)} is not an address; write an IPv6 address in brackets with a port, e.g. "[::1]:${example.split(':').pop() ?? ''}"`);
    }
    return { host: m[1], port: parsePort(m[2], key, ctx, fix, true) };
  }
  if (text.includes('://')) ctx.fail(key, `${show(v)} is a URL, not an address; ${fix}`);
  const colon = text.lastIndexOf(':');
  if (colon < 0) ctx.fail(key, `${show(v)} has no port; ${fix}`);
  const host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.includes(':')) ctx.fail(key, `${show(v)} looks like an IPv6 address; put it in brackets: "[::1]:${example.split(':').pop() ?? ''}"`);
  if (host === '') ctx.fail(key, `${show(v)} has no host; write 127.0.0.1:PORT for local clients or 0.0.0.0:PORT for all interfaces`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) ctx.fail(key, `${show(v)} has an invalid host name; ${fix}`);
  return { host, port: parsePort(portText, key, ctx, fix, true) };
}

/**
 * Parse a HOST:PORT listen address (`127.0.0.1:6432`, `[::1]:6432`, `0.0.0.0:0`, or a bare port);
 * throws a ConfigError keyed by `key`.
 */
export function parseListenAddress(value: unknown, key = 'listen', example = '127.0.0.1:6432'): ListenAddress {
  return listenFromRaw(value, key, new ConfigContext(new Map()), example);
}
