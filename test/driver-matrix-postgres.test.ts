/**
 * Driver matrix, postgres.js: the scenario list of test/fixtures/drivers/matrix-postgres.ts run straight
 * to the primary, through pgsplit untagged and through pgsplit tagged, each transcript compared with the
 * direct one (see test/fixtures/driver-matrix.ts).
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { driverMatrix } from './fixtures/driver-matrix.js';

t.setTimeout(600_000);

function unavailable(): string | null {
  try {
    createRequire(import.meta.url).resolve('postgres');
    return null;
  } catch {
    return 'the postgres package (a dev dependency) is not in node_modules; run npm ci';
  }
}

await driverMatrix(t, {
  name: 'postgresjs',
  unavailable,
  run: async (target, phase) => (await import('./fixtures/drivers/matrix-postgres.js')).runPostgresJs(target, phase),
  todo: {
    untagged: {},
    tagged: {},
  },
});
