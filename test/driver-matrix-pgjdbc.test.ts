/**
 * Driver matrix, pgjdbc (Debian libpostgresql-jdbc-java with a JDK, run as a single-file program:
 * `java -cp /usr/share/java/postgresql.jar Matrix.java`): the scenario list of
 * test/fixtures/drivers/Matrix.java run straight to the primary, through pgsplit untagged and through
 * pgsplit tagged, each transcript compared with the direct one (see test/fixtures/driver-matrix.ts).
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { driverMatrix, runProgram } from './fixtures/driver-matrix.js';

t.setTimeout(600_000);

const JAR = '/usr/share/java/postgresql.jar';
const program = fileURLToPath(new URL('./fixtures/drivers/Matrix.java', import.meta.url));

function unavailable(): string | null {
  if (!existsSync(JAR)) return `${JAR} is missing (Debian libpostgresql-jdbc-java; .ci/run installs it)`;
  // Single-file source programs need the compiler module, which a JRE alone lacks.
  if (spawnSync('javac', ['-version']).status !== 0) return 'no javac on PATH (a JDK is needed to run Matrix.java; .ci/run installs default-jdk-headless)';
  return null;
}

await driverMatrix(t, {
  name: 'pgjdbc',
  unavailable,
  run: (target, phase) => runProgram('java', ['-cp', JAR, program], target, phase),
  todo: {
    untagged: {},
    tagged: {},
  },
});
