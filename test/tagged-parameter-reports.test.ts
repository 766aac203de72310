/**
 * A tagged session shows its client the parameter reports (ParameterStatus) a direct connection to the
 * primary shows: the same values at startup (in_hot_standby is off, although the session starts on a
 * standby) and the same reports, in the same order, as the session changes settings — by SET, set_config,
 * SET LOCAL and rollbacks, RESET ALL, DISCARD ALL — while its reads run on a replica, where pgsplit
 * replays those settings without the replica's own reports reaching the client.
 */
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';
import { RawPgClient, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(120_000);

const fx = await startProxy(t, { replicas: 1 });
await fx.cluster.primary.query('CREATE TABLE pr_t (id int)');
await fx.cluster.waitForReplication();

const STEPS = [
  "SET TimeZone = 'Asia/Tokyo'", 'SELECT now() IS NOT NULL AS x',
  "SELECT set_config('DateStyle', 'SQL, DMY', false)", 'SELECT 1 AS one',
  'BEGIN', "SET LOCAL TimeZone = 'UTC'", 'SELECT 2 AS two', 'ROLLBACK', 'SELECT 3 AS three',
  'BEGIN', 'SELECT 4 AS four', "SET application_name = 'inside'", 'SELECT 5', 'INSERT INTO pr_t VALUES (1)', "SET IntervalStyle = 'iso_8601'", 'COMMIT',
  'SELECT 6', 'BEGIN', 'SELECT 7', 'SAVEPOINT a', "SET TimeZone = 'Europe/Paris'", 'SELECT 8', 'ROLLBACK TO SAVEPOINT a', 'SELECT 9', 'COMMIT',
  'SET default_transaction_read_only = on', 'SELECT 10', 'RESET ALL', 'SELECT 11', "SET standard_conforming_strings = off", 'DISCARD ALL', 'SELECT 12',
  'SELECT pg_is_in_recovery() AS on_replica',
];

/** Every parameter report the client gets: startup values, then each report in order; and where the last read ran. */
async function reports(port: number, options?: string): Promise<{ seen: string[]; lastOnReplica: string }> {
  const c = await RawPgClient.connect({ port, options });
  const seen = [...c.parameters].map(([k, v]) => `startup ${k}=${v}`);
  let lastOnReplica = '';
  for (const s of STEPS) {
    c.send(fe.query(s));
    const got = await c.untilReady(1);
    const row = got.find((m) => m.type === 'D');
    if (row !== undefined) lastOnReplica = row.payload.subarray(6).toString();
  }
  for (const m of c.log) {
    if (m.type !== 'S') continue;
    const z = m.payload.indexOf(0);
    seen.push(`${m.payload.subarray(0, z).toString()}=${m.payload.subarray(z + 1, m.payload.length - 1).toString()}`);
  }
  c.close();
  return { seen, lastOnReplica };
}

t.test('a tagged session reports what a direct connection to the primary reports', async (t) => {
  const direct = await reports(fx.cluster.primary.port);
  t.ok(direct.seen.includes('startup in_hot_standby=off') && direct.seen.includes('TimeZone=Asia/Tokyo'), 'the direct run has startup and later reports');
  const standby = await reports(fx.cluster.replicas[0]!.port);
  t.ok(standby.seen.includes('startup in_hot_standby=on'), 'a standby itself reports in_hot_standby = on');
  const tagged = await reports(fx.port, '-c pgsplit.route=replica');
  t.same(tagged.seen, direct.seen, 'tagged through pgsplit: the same reports, values and order');
  t.equal(tagged.lastOnReplica, 't', 'while its reads ran on the replica');
  const untagged = await reports(fx.port);
  t.same(untagged.seen, direct.seen, 'untagged through pgsplit: the same');
});
