/**
 * Driver matrix, psycopg 3 (Debian python3-psycopg, run by /usr/bin/python3) in its default mode,
 * autocommit off: the scenario list of test/fixtures/drivers/matrix_psycopg.py run straight to the
 * primary, through pgsplit untagged and through pgsplit tagged, each transcript compared with the direct
 * one (see test/fixtures/driver-matrix.ts).
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { PYTHON, driverMatrix, pythonMissing, runProgram } from './fixtures/driver-matrix.js';

t.setTimeout(600_000);

const program = fileURLToPath(new URL('./fixtures/drivers/matrix_psycopg.py', import.meta.url));

await driverMatrix(t, {
  name: 'psycopg',
  unavailable: () => pythonMissing(['psycopg']),
  run: (target, phase) => runProgram(PYTHON, [program], target, phase),
  todo: {
    untagged: {},
    tagged: {},
  },
});
