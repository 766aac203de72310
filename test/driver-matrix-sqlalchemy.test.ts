/**
 * Driver matrix, SQLAlchemy 1.4 ORM sessions over psycopg 3 (Debian python3-sqlalchemy and
 * python3-psycopg, run by /usr/bin/python3; 1.4 has no psycopg 3 dialect, so the program registers a
 * small one, see its docstring), autocommit off as oslo.db's sessions: the scenario list of test/fixtures/drivers/matrix_sqlalchemy.py run straight to the
 * primary, through pgsplit untagged and through pgsplit tagged, each transcript compared with the direct
 * one (see test/fixtures/driver-matrix.ts).
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { PYTHON, driverMatrix, pythonMissing, runProgram } from './fixtures/driver-matrix.js';

t.setTimeout(600_000);

const program = fileURLToPath(new URL('./fixtures/drivers/matrix_sqlalchemy.py', import.meta.url));

await driverMatrix(t, {
  name: 'sqlalchemy',
  unavailable: () => pythonMissing(['sqlalchemy', 'psycopg']),
  run: (target, phase) => runProgram(PYTHON, [program], target, phase),
  todo: {
    untagged: {},
    tagged: {},
  },
});
