/**
 * primary: and replicas[]: a postgres:// URL, or a mapping {url, name, weight}, resolved to a
 * ServerEndpoint. The URL is checked part by part (host, port, database, sslmode, sslrootcert) so
 * that each mistake gets its own message; passwords in URLs are masked when echoed.
 */
import { DEFAULT_SERVER_PORT, SERVER_SSL_MODES, type ServerEndpoint, type ServerTls } from './config.js';
import { child, describe, isMap, show, type ConfigContext } from './config-context.js';
import { SERVER_KEYS } from './config-keys.js';
import { readPem } from './pem-file.js';

const URL_FIX = 'write postgres://USER:PASSWORD@HOST:PORT/DATABASE';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function decode(part: string, key: string, what: string, ctx: ConfigContext): string {
  try {
    return decodeURIComponent(part);
  } catch {
    ctx.fail(key, `the ${what} in the URL is badly percent-encoded; encode special characters as %XX (e.g. @ as %40), ${URL_FIX}`);
  }
}

interface ParsedUrl { host: string; port: number; user?: string; password?: string; database?: string; tls: ServerTls }

function parseServerUrl(v: string, key: string, ctx: ConfigContext): ParsedUrl {
  const text = v.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const extra = text.includes('@') && /^postgres(ql)?:\/\//i.test(text)
      ? ' (percent-encode special characters in the password, e.g. / as %2F, # as %23, ? as %3F)'
      : '';
    ctx.fail(key, `${show(v)} is not a PostgreSQL URL; ${URL_FIX}${extra}`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    ctx.fail(key, `${show(v)} is not a PostgreSQL URL; ${URL_FIX}`);
  }
  let host = url.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  host = decode(host, key, 'host', ctx);
  if (host === '') ctx.fail(key, `${show(v)} has no host; ${URL_FIX}`);
  if (host.startsWith('/')) {
    ctx.fail(key, `${show(v)} names a Unix-domain socket, which pgsplit does not support; use a TCP host: ${URL_FIX}`);
  }
  if (host.includes(',')) {
    ctx.fail(key, `${show(v)} names several hosts; give one host per URL and list each replica as its own entry under replicas:`);
  }
  const port = url.port === '' ? DEFAULT_SERVER_PORT : Number(url.port);
  if (port === 0) ctx.fail(key, `${show(v)} has port 0; ${URL_FIX} with a port from 1 to 65535 (default 5432)`);
  if (url.hash !== '') ctx.fail(key, `${show(v)} has a #fragment; remove it: ${URL_FIX}`);
  let database: string | undefined;
  if (url.pathname !== '' && url.pathname !== '/') {
    const path = url.pathname.slice(1);
    if (path.includes('/')) {
      ctx.fail(key, `${show(v)} has a path with several parts; the path is just the database name: ${URL_FIX}`);
    }
    database = decode(path, key, 'database name', ctx);
  }
  const tls: ServerTls = { mode: 'disable' };
  for (const [param, value] of url.searchParams) {
    if (param === 'sslmode') {
      const mode = SERVER_SSL_MODES.find((m) => m === value);
      if (mode === undefined) ctx.fail(key, `${show(v)} has an unknown sslmode; use one of ${SERVER_SSL_MODES.join(', ')}, or leave it out (disable)`);
      tls.mode = mode;
      continue;
    }
    if (param === 'sslrootcert') {
      tls.rootCertFile = value;
      tls.rootCertPem = readPem(value, key, 'the sslrootcert', ctx);
      continue;
    }
    ctx.fail(key, `${show(v)} has the query parameter ${JSON.stringify(param)}, which pgsplit does not accept; remove it (allowed: sslmode, sslrootcert): ${URL_FIX}`);
  }
  if ((tls.mode === 'verify-ca' || tls.mode === 'verify-full') && tls.rootCertPem === undefined) {
    ctx.fail(key, `${show(v)} asks for sslmode=${tls.mode}, which needs the certificate authority to verify against; add &sslrootcert=/path/to/root.crt`);
  }
  const out: ParsedUrl = { host, port, tls };
  if (url.username !== '') out.user = decode(url.username, key, 'user name', ctx);
  if (url.password !== '') out.password = decode(url.password, key, 'password', ctx);
  if (database !== undefined && database !== '') out.database = database;
  return out;
}

export function serverFromRaw(v: unknown, key: string, defaultName: string, ctx: ConfigContext): ServerEndpoint {
  let urlText: string;
  let name = defaultName;
  let weight = 1;
  if (typeof v === 'string') {
    urlText = v;
  } else if (isMap(v)) {
    ctx.checkKeys(v, SERVER_KEYS, key);
    const u = v['url'];
    if (u === undefined || u === null) ctx.fail(child(key, 'url'), `is missing; write url: postgres://USER:PASSWORD@HOST:PORT/DATABASE`);
    if (typeof u !== 'string') ctx.fail(child(key, 'url'), `must be a string, not ${describe(u)}; ${URL_FIX}`);
    urlText = u;
    if (v['name'] !== undefined && v['name'] !== null) {
      const n = v['name'];
      if (typeof n !== 'string' || !NAME_RE.test(n)) {
        ctx.fail(child(key, 'name'), `${show(n)} is not a valid server name; use 1-63 letters, digits, '_', '.' or '-', e.g. name: ${defaultName}`);
      }
      name = n;
    }
    if (v['weight'] !== undefined && v['weight'] !== null) {
      const w = v['weight'];
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
        ctx.fail(child(key, 'weight'), `${show(w)} is not a weight; write a number of 0 or more, e.g. weight: 1 (0 sends no new sessions)`);
      }
      weight = w;
    }
  } else {
    ctx.fail(key, `is ${describe(v)}, not a PostgreSQL URL; ${URL_FIX}, or a mapping {url: postgres://..., name: ..., weight: 1}`);
  }
  const parsed = parseServerUrl(urlText, key, ctx);
  const out: ServerEndpoint = { name, url: urlText.trim(), host: parsed.host, port: parsed.port, weight, tls: parsed.tls };
  if (parsed.user !== undefined) out.user = parsed.user;
  if (parsed.password !== undefined) out.password = parsed.password;
  if (parsed.database !== undefined) out.database = parsed.database;
  return out;
}
