import { createRequire } from 'node:module';
import type * as PgProtocol from 'pg-protocol';

/**
 * Frontend messages pgsplit originates towards servers (startup, authentication, re-prepares, settings
 * replay, cancel), built by pg-protocol's serializer. Loaded through require(): pg-protocol's ESM
 * wrapper re-imports its CommonJS build, which tap's TypeScript loader cannot load in a cycle.
 */
const require = createRequire(import.meta.url);
const base: typeof PgProtocol.serialize = (require('pg-protocol') as typeof PgProtocol).serialize;

/**
 * StartupMessage with exactly the client's parameters. pg-protocol's own appends client_encoding=UTF8
 * after them, and the server takes the last value: a client asking for LATIN1 would get UTF-8.
 */
function startup(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(8)];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.alloc(1));
  const out = Buffer.concat(parts);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(0x30000, 4);
  return out;
}

export const serialize: typeof PgProtocol.serialize = { ...base, startup };
