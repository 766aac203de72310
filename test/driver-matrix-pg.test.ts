/**
 * Driver matrix, node-postgres: the scenario list of test/fixtures/drivers/matrix-pg.ts run straight to
 * the primary, through pgsplit untagged and through pgsplit tagged, each transcript compared with the
 * direct one (see test/fixtures/driver-matrix.ts).
 */
import t from 'tap';
import { driverMatrix } from './fixtures/driver-matrix.js';
import { runPg } from './fixtures/drivers/matrix-pg.js';

t.setTimeout(600_000);

await driverMatrix(t, {
  name: 'pg',
  unavailable: () => null, // a dependency of pgsplit itself
  run: runPg,
  todo: {
    untagged: {},
    tagged: {},
  },
});
