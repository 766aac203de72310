import { createRequire } from 'node:module';
import type * as PgProtocol from 'pg-protocol';

/**
 * Frontend messages pgsplit originates towards servers (startup, authentication, re-prepares, settings
 * replay, cancel), built by pg-protocol's serializer. Loaded through require(): pg-protocol's ESM
 * wrapper re-imports its CommonJS build, which tap's TypeScript loader cannot load in a cycle.
 */
const require = createRequire(import.meta.url);
export const serialize: typeof PgProtocol.serialize = (require('pg-protocol') as typeof PgProtocol).serialize;
