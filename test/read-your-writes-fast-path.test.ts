/**
 * Read-your-writes at the speed of replication, against real servers (synchronous_commit on, so a commit
 * reaches the replica at once): with full checks far apart (monitor.interval 30 s), a tagged client's
 * read after its own write still runs on the replica and sees the row (the monitor samples the waited-on
 * replica's position on demand, and WAL positions every monitor.lag_interval); a read whose floor the last
 * sample already covers asks no server anything; a replica whose replay is paused does not hold a read for
 * routing.read_your_writes_timeout (1 h here): its replay rate says it cannot catch up, so the read goes
 * to the primary at once, and back to the replica once it replays again. Behaviour only, no timings.
 */
import t, { type Test } from 'tap';
import type pg from 'pg';
import { until } from './fixtures/until.js';
import { startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';

t.setTimeout(180_000);

const TAGGED = '-c pgsplit.route=replica';
const READ = 'SELECT (SELECT val FROM fast_rw WHERE id = $1) AS val, pg_is_in_recovery() AS on_replica';

async function setup(t: Test, monitor: Record<string, string>, timeout: string): Promise<{ fx: ProxyFixture; c: pg.Client }> {
  const fx = await startProxy(t, {
    replicas: 1,
    cluster: { settings: { synchronous_commit: 'on' } },
    config: { routing: { max_lag: '1h', read_your_writes_timeout: timeout }, monitor },
  });
  await fx.cluster.primary.query('CREATE TABLE fast_rw (id int PRIMARY KEY, val text)');
  await fx.cluster.waitForReplication();
  const c = await fx.client({ options: TAGGED });
  return { fx, c };
}

t.test('a tagged read after its own write runs on the replica between full checks, and a covered read asks nobody', async (t) => {
  // lag_interval = interval: no position samples between checks either; only the waits ask.
  const { fx, c } = await setup(t, { interval: '30s', lag_interval: '30s' }, '20s');
  const replica = fx.proxy.nodes.replicas[0]!;
  await until(() => replica.health === 'up');
  let onReplica = 0;
  let missed = 0;
  for (let id = 1; id <= 20; id++) {
    await c.query('INSERT INTO fast_rw VALUES ($1, $2)', [id, `row ${id}`]);
    const row = (await c.query<{ val: string | null; on_replica: boolean }>(READ, [id])).rows[0]!;
    if (row.on_replica) onReplica++;
    if (row.val !== `row ${id}`) missed++;
  }
  t.equal(missed, 0, 'every read saw its own write');
  t.equal(onReplica, 20, 'every read ran on the replica, although no full check ran after the first');

  const before = fx.proxy.monitor.queries;
  const again = (await c.query<{ val: string | null; on_replica: boolean }>(READ, [20])).rows[0]!;
  t.same(again, { val: 'row 20', on_replica: true }, 'a read with no write since: the replica');
  t.equal(fx.proxy.monitor.queries - before, 0, 'the last sample covers its floor: no query to any server');
});

t.test('positions are sampled between full checks: the lag of a current replica is known and 0', async (t) => {
  const { fx, c } = await setup(t, { interval: '30s', lag_interval: '5ms' }, '200ms');
  const replica = fx.proxy.nodes.replicas[0]!;
  await until(() => replica.health === 'up');
  const untagged = await fx.client();
  await untagged.query("INSERT INTO fast_rw VALUES (1000, 'x')");
  const lsn = await fx.proxy.monitor.primaryLsnNow();
  t.ok(await until(() => replica.replayedLsn !== null && replica.replayedLsn >= lsn), 'the replica\'s replay position moved past the write with no full check');
  t.ok(await until(() => fx.proxy.monitor.lagMs(replica) === 0), 'and its lag reads 0 once it has replayed the primary\'s latest position');
  const row = (await c.query<{ val: string | null; on_replica: boolean }>(READ, [1000])).rows[0]!;
  t.same(row, { val: 'x', on_replica: true }, 'a tagged session reads the row on the replica');
});

t.test('a replica with paused replay does not hold a read for the timeout: the primary serves it, then the replica again', async (t) => {
  const { fx, c } = await setup(t, { interval: '50ms', lag_interval: '5ms' }, '1h');
  const node = fx.cluster.replicas[0]!;
  const replica = fx.proxy.nodes.replicas[0]!;
  await until(() => replica.health === 'up');
  await c.query("INSERT INTO fast_rw VALUES (1, 'before the pause')");
  t.same((await c.query(READ, [1])).rows[0], { val: 'before the pause', on_replica: true }, 'before the pause: the replica');
  await node.pauseReplay();
  try {
    const writer = await fx.client();
    await writer.query("INSERT INTO fast_rw VALUES (2, 'while paused')");
    // The monitor sees the replica behind and not moving for a while (its lag in time grows).
    t.ok(await until(() => (fx.proxy.monitor.lagMs(replica) ?? 0) > 200), 'the paused replica\'s lag grows');
    const fallbacks = fx.proxy.stats.routedByReason.get('fallback-causal') ?? 0;
    await c.query("INSERT INTO fast_rw VALUES (3, 'own write while paused')");
    const row = (await c.query(READ, [3])).rows[0];
    t.same(row, { val: 'own write while paused', on_replica: false }, 'the read after the write goes to the primary instead of waiting an hour');
    t.equal((fx.proxy.stats.routedByReason.get('fallback-causal') ?? 0) - fallbacks, 1, 'counted as fallback-causal');
  } finally {
    await node.resumeReplay();
  }
  await fx.cluster.waitForReplication();
  await c.query("INSERT INTO fast_rw VALUES (4, 'after the pause')");
  t.same((await c.query(READ, [4])).rows[0], { val: 'after the pause', on_replica: true }, 'replay resumed: the next read after a write runs on the replica');
});
