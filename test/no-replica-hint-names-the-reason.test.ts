/**
 * routing.when_no_replica: error, with the only replica disabled by hand in the admin console: a tagged
 * session still connects and writes; its read is refused with 57P03 whose DETAIL gives the replica's
 * reason (disabled) and whose HINT says what fixes that reason (ENABLE), not the lag bound.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);
const run = promisify(execFile);

async function adminConsole(port: number, sql: string): Promise<string> {
  const bin = (await run('pg_config', ['--bindir'])).stdout.trim();
  const { stdout } = await run(path.join(bin, 'psql'), ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'pgsplit', '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  return stdout.trim();
}

type PgError = Error & { code?: string; detail?: string; hint?: string };

t.test('a replica disabled by hand: 57P03 with "disabled" in the DETAIL and ENABLE in the HINT', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: { routing: { when_no_replica: 'error' } } });
  await fx.cluster.primary.query('CREATE TABLE hint_writes (id int)');
  await fx.cluster.waitForReplication();
  const tagged = await fx.client({ options: '-c pgsplit.route=replica' });
  t.equal((await tagged.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'the tagged session reads on the replica');

  t.equal(await adminConsole(fx.port, 'DISABLE replica1'), 'DISABLE', 'replica1 disabled in the admin console');
  const err = await tagged.query('SELECT pg_is_in_recovery() AS r').then(() => null, (e: PgError) => e);
  t.equal(err?.code, '57P03', 'the tagged read is refused with 57P03');
  t.match(err?.detail ?? '', /replica1: disabled/, `the DETAIL gives the replica's reason: ${err?.detail}`);
  t.match(err?.hint ?? '', /ENABLE/, `the HINT says to enable it: ${err?.hint}`);
  t.notMatch(err?.hint ?? '', /max_lag/, 'and does not talk about the lag bound');

  const late = await fx.client({ options: '-c pgsplit.route=replica' });
  const w = await late.query('INSERT INTO hint_writes VALUES (1) RETURNING pg_is_in_recovery() AS r');
  t.equal(w.rows[0].r, false, 'a tagged session still connects while no replica is eligible, and writes on the primary');

  t.equal(await adminConsole(fx.port, 'ENABLE replica1'), 'ENABLE', 'enabled again');
  t.equal((await tagged.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'after ENABLE the same session reads on the replica again');
});
