/**
 * The read-your-writes guard, against real servers and the pg driver (synchronous_commit on): a tagged
 * client's read after its own write goes to the replica at once with a check ahead of it (the replica
 * divides by zero unless it has replayed the session's floor, and then skips the read up to the Sync).
 * With no samples between full checks (monitor.lag_interval = interval = 30 s), every read is guarded
 * exactly once and sees its write; a replica with paused replay fails the guard, the read never runs
 * there and goes to the primary; under repeatable read no read carries a guard (it would share its
 * snapshot), nor does a Query with more than reads in it; a login that may not call
 * pg_last_wal_replay_lsn() makes the session stop guarding, and its reads stay right. Behaviour and
 * counters, no timings.
 */
import t, { type Test } from 'tap';
import type pg from 'pg';
import { until } from './fixtures/until.js';
import { startCluster, startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import { RawPgClient, describeAll, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(180_000);

const TAGGED = '-c pgsplit.route=replica';
type Row = { val: string | null; on_replica: boolean };
/** With a parameter: node-postgres sends Parse/Bind/Execute/Sync. */
const READ_EXTENDED = 'SELECT (SELECT val FROM guard_rw WHERE id = $1) AS val, pg_is_in_recovery() AS on_replica';
/** Without one: a simple Query. */
const readSimple = (id: number): string => `SELECT (SELECT val FROM guard_rw WHERE id = ${id}) AS val, pg_is_in_recovery() AS on_replica`;

async function setup(t: Test, monitor: Record<string, string> = { interval: '30s', lag_interval: '30s' }): Promise<ProxyFixture> {
  const fx = await startProxy(t, {
    replicas: 1,
    cluster: { settings: { synchronous_commit: 'on' } },
    config: { routing: { max_lag: '1h', read_your_writes_timeout: '20s' }, monitor },
  });
  await fx.cluster.primary.query('CREATE TABLE guard_rw (id int PRIMARY KEY, val text)');
  await fx.cluster.waitForReplication();
  await until(() => fx.proxy.nodes.replicas[0]!.health === 'up');
  return fx;
}

/** Write-then-read pairs on `c`, each read simple or extended by turns: how many ran on the replica, how many missed their write. */
async function pairs(c: pg.Client, from: number, n: number): Promise<{ onReplica: number; missed: number }> {
  let onReplica = 0;
  let missed = 0;
  for (let id = from; id < from + n; id++) {
    await c.query('INSERT INTO guard_rw VALUES ($1, $2)', [id, `row ${id}`]);
    const row = id % 2 === 0 ? (await c.query<Row>(READ_EXTENDED, [id])).rows[0]! : (await c.query<Row>(readSimple(id))).rows[0]!;
    if (row.on_replica) onReplica++;
    if (row.val !== `row ${id}`) missed++;
  }
  return { onReplica, missed };
}

t.test('each read after a write is guarded once, runs on the replica and sees the write, with no sample between full checks', async (t) => {
  const fx = await setup(t);
  const c = await fx.client({ options: TAGGED });
  // The session's first replica read asks its default isolation first (and waits for the replica then).
  await c.query('SELECT 1');
  const g = fx.proxy.stats.guards;
  const got = await pairs(c, 1, 20);
  t.equal(got.missed, 0, 'every read saw its own write');
  t.equal(got.onReplica, 20, 'every read ran on the replica');
  // Each read ran behind one guard that passed, or waited after three that found the replica behind.
  t.ok(g.passed <= 20 && g.passed >= 20 - Math.floor(g.behind / 3), `every read behind a guard that passed, or after three that did not (${g.passed} passed, ${g.behind} behind)`);
  t.ok(g.passed > 0, 'simple and extended reads alike');
  t.equal(g.refused, 0);

  const before = g.passed + g.behind;
  const again = (await c.query<Row>(READ_EXTENDED, [20])).rows[0]!;
  t.same(again, { val: 'row 20', on_replica: true }, 'a read with no write since: the replica');
  t.equal(g.passed + g.behind, before, 'needs no guard: the passed guard told pgsplit how far the replica is');

  const untagged = await fx.client();
  await untagged.query("INSERT INTO guard_rw VALUES (1000, 'u')");
  t.same((await untagged.query<Row>(READ_EXTENDED, [1000])).rows[0], { val: 'u', on_replica: false }, 'an untagged session reads on the primary');
  t.equal(g.passed + g.behind, before, 'with no guard');
});

t.test('a replica with paused replay fails the guard: the read never ran there, it runs on the primary, then on the replica again', async (t) => {
  const fx = await setup(t, { interval: '50ms', lag_interval: '5ms' });
  const node = fx.cluster.replicas[0]!;
  const c = await fx.client({ options: TAGGED });
  await c.query("INSERT INTO guard_rw VALUES (1, 'before the pause')");
  t.same((await c.query<Row>(READ_EXTENDED, [1])).rows[0], { val: 'before the pause', on_replica: true });
  await node.query('SELECT pg_wal_replay_pause()');
  t.teardown(() => node.query('SELECT pg_wal_replay_resume()').then(() => undefined, () => undefined));
  const g = fx.proxy.stats.guards;
  const behind = g.behind;
  await c.query("INSERT INTO guard_rw VALUES (2, 'during the pause')");
  t.same((await c.query<Row>(READ_EXTENDED, [2])).rows[0], { val: 'during the pause', on_replica: false }, 'the read sees its write, on the primary');
  t.equal(g.behind, behind + 3, 'three guards in a row found the replica behind (then the read waited, and gave up on the stalled replay)');
  await node.query('SELECT pg_wal_replay_resume()');
  t.ok(await until(() => (fx.proxy.nodes.replicas[0]!.replayedLsn ?? 0n) > 0n && fx.proxy.monitor.lagMs(fx.proxy.nodes.replicas[0]!) === 0), 'the replica caught up');
  await c.query("INSERT INTO guard_rw VALUES (3, 'after the pause')");
  t.same((await c.query<Row>(readSimple(3))).rows[0], { val: 'after the pause', on_replica: true }, 'and serves the next read after a write');
});

t.test('under repeatable read no read carries a guard (it would read with the guard\'s snapshot), and reads stay right', async (t) => {
  const fx = await setup(t);
  const c = await fx.client({ options: TAGGED });
  await c.query("SET default_transaction_isolation = 'repeatable read'");
  const g = fx.proxy.stats.guards;
  const before = g.passed + g.behind;
  for (let id = 1; id <= 6; id++) {
    await c.query('INSERT INTO guard_rw VALUES ($1, $2)', [id, `row ${id}`]);
    const row = (await c.query<Row>(READ_EXTENDED, [id])).rows[0]!;
    t.same(row, { val: `row ${id}`, on_replica: true }, `extended read ${id}: its write, on the replica`);
  }
  await c.query("INSERT INTO guard_rw VALUES (7, 'row 7')");
  t.same((await c.query<Row>(readSimple(7))).rows[0], { val: 'row 7', on_replica: true }, 'a Query too');
  t.equal(g.passed + g.behind, before, 'no guard ahead of any of them');
  await c.query('RESET default_transaction_isolation');
  await c.query("INSERT INTO guard_rw VALUES (8, 'row 8')");
  const passed = g.passed;
  t.same((await c.query<Row>(readSimple(8))).rows[0], { val: 'row 8', on_replica: true });
  // Exactly one guard passed (a busy machine's replica may have made an earlier one fail: it goes round again).
  t.equal(g.passed, passed + 1, 'back under read committed: guarded again');
});

t.test('behind a guard: a write the classifier missed is still re-run on the primary once, a BEGIN...COMMIT Query runs as sent, and a Bind of the client\'s unnamed statement finds it', async (t) => {
  const fx = await startProxy(t, {
    replicas: 1,
    cluster: { settings: { synchronous_commit: 'on' } },
    config: { routing: { max_lag: '1h', read_your_writes_timeout: '20s', unknown_functions: 'replica' }, monitor: { interval: '30s', lag_interval: '30s' } },
  });
  await fx.cluster.primary.query('CREATE TABLE guard_rw (id int PRIMARY KEY, val text)');
  await fx.cluster.primary.query("CREATE FUNCTION note_it(n text) RETURNS int LANGUAGE sql AS 'INSERT INTO guard_rw VALUES (1000 + length(n), n) RETURNING 1'");
  await fx.cluster.waitForReplication();
  await until(() => fx.proxy.nodes.replicas[0]!.health === 'up');
  const c = await fx.client({ options: TAGGED });
  await c.query('SELECT 1');
  const g = fx.proxy.stats.guards;

  const reruns = fx.proxy.stats.rerunsOnPrimary;
  await c.query("INSERT INTO guard_rw VALUES (1, 'one')");
  t.same((await c.query("SELECT note_it('simple') AS n, pg_is_in_recovery() AS r")).rows, [{ n: 1, r: false }], 'a Query the replica refuses (25006) runs on the primary');
  await c.query("INSERT INTO guard_rw VALUES (2, 'two')");
  t.same((await c.query('SELECT note_it($1) AS n, pg_is_in_recovery() AS r', ['extended'])).rows, [{ n: 1, r: false }], 'extended too');
  t.equal(fx.proxy.stats.rerunsOnPrimary, reruns + 2, 'each re-run once');
  // Each read went behind a guard. One that failed (the replica behind, on a busy machine) may be followed
  // by a wait for the replica's replay instead of another guard.
  t.ok(g.passed + g.behind >= 2, `both went with a guard (${g.passed} passed, ${g.behind} behind)`);
  t.same((await fx.cluster.primary.query<{ val: string }>('SELECT val FROM guard_rw WHERE id > 1000 ORDER BY id')).map((r) => r.val), ['simple', 'extended'], 'each ran exactly once');

  await c.query("INSERT INTO guard_rw VALUES (3, 'three')");
  const tx = await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT val FROM guard_rw WHERE id = 3; COMMIT") as unknown as Array<{ rows: Array<{ val: string }> }>;
  t.same(tx[1]?.rows, [{ val: 'three' }], 'a Query holding its own transaction runs as sent (no guard inside it) and sees the write');

  const raw = await RawPgClient.connect({ port: fx.port, user: 'postgres', database: 'postgres', options: TAGGED });
  t.teardown(() => raw.close());
  raw.send(fe.parse('', 'SELECT val, pg_is_in_recovery() FROM guard_rw WHERE id = $1::int'), fe.sync());
  t.same(describeAll(await raw.untilReady(1)), ['ParseComplete', 'Ready:I']);
  raw.send(fe.parse('ins', 'INSERT INTO guard_rw VALUES ($1::int, $2)'), fe.bind('', 'ins', ['4', 'four']), fe.execute(), fe.sync());
  t.same(describeAll(await raw.untilReady(1)), ['ParseComplete', 'BindComplete', 'Complete:INSERT 0 1', 'Ready:I']);
  const passed = g.passed;
  raw.send(fe.bind('', '', ['4']), fe.execute(), fe.sync());
  t.same(describeAll(await raw.untilReady(1)), ['BindComplete', 'Row:four,t', 'Complete:SELECT 1', 'Ready:I'], 'the unnamed statement the guard displaced is prepared again: the read sees its write on the replica');
  // One guard passed; a busy machine's replica may have been behind at the first tries (each failed guard goes round again).
  t.equal(g.passed, passed + 1, 'with a guard');
});

t.test('a named statement another client left on the pooled connection survives a failed guard (its Close was skipped too)', async (t) => {
  const fx = await startProxy(t, {
    replicas: 1,
    cluster: { settings: { synchronous_commit: 'on' } },
    config: { routing: { max_lag: '1h', read_your_writes_timeout: '300ms' }, monitor: { interval: '50ms', lag_interval: '5ms' }, pool: { mode: 'transaction', size: 1 } },
  });
  await fx.cluster.primary.query('CREATE TABLE guard_rw (id int PRIMARY KEY, val text)');
  await fx.cluster.primary.query("INSERT INTO guard_rw VALUES (0, 'zero')");
  await fx.cluster.waitForReplication();
  await until(() => fx.proxy.nodes.replicas[0]!.health === 'up');
  const text = 'SELECT val, pg_is_in_recovery() AS on_replica FROM guard_rw WHERE id = $1';
  // Client a prepares "rd" on the replica's one pooled connection; client b has another "rd" of its own.
  const a = await fx.client({ options: TAGGED });
  t.same((await a.query({ name: 'rd', text, values: [0] })).rows, [{ val: 'zero', on_replica: true }]);
  const b = await fx.client({ options: TAGGED });
  const node = fx.cluster.replicas[0]!;
  await node.query('SELECT pg_wal_replay_pause()');
  t.teardown(() => node.query('SELECT pg_wal_replay_resume()').then(() => undefined, () => undefined));
  const behind = fx.proxy.stats.guards.behind;
  await b.query("INSERT INTO guard_rw VALUES (1, 'one')");
  const bText = `${text} AND true`;
  t.same((await b.query({ name: 'rd', text: bText, values: [1] })).rows, [{ val: 'one', on_replica: false }], 'b\'s read: guards fail (a\'s "rd" closed and b\'s prepared behind them, all skipped), then the primary');
  t.ok(fx.proxy.stats.guards.behind > behind, 'the guards found the replica behind');
  await node.query('SELECT pg_wal_replay_resume()');
  await until(() => fx.proxy.monitor.lagMs(fx.proxy.nodes.replicas[0]!) === 0);
  t.same((await a.query({ name: 'rd', text, values: [0] })).rows, [{ val: 'zero', on_replica: true }], 'a\'s "rd" still runs there');
  t.same((await b.query({ name: 'rd', text: bText, values: [1] })).rows, [{ val: 'one', on_replica: true }], 'b\'s "rd" is prepared there again, with no 42P05');
});

t.test('a server login that may not call pg_last_wal_replay_lsn(): the session stops guarding after the first refusal, and its reads stay right', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, settings: { synchronous_commit: 'on' } });
  await cluster.primary.query('CREATE TABLE guard_rw (id int PRIMARY KEY, val text)');
  await cluster.primary.query('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_last_wal_replay_lsn() FROM PUBLIC');
  await cluster.primary.query('CREATE ROLE guardless LOGIN');
  await cluster.primary.query('GRANT SELECT, INSERT ON guard_rw TO guardless');
  await cluster.waitForReplication();
  // Sessions log in to the servers as the URLs' user; the monitor keeps its own (monitor.user).
  const as = (url: string): string => url.replace('//postgres@', '//guardless@');
  const fx = await startProxy(t, {
    reuseCluster: cluster,
    config: {
      primary: as(cluster.primary.url()),
      replicas: cluster.replicas.map((r) => as(r.url())),
      routing: { max_lag: '1h', read_your_writes_timeout: '20s' },
      monitor: { interval: '30s', lag_interval: '10ms', user: 'postgres' },
    },
  });
  await until(() => fx.proxy.nodes.replicas[0]!.health === 'up');
  const c = await fx.client({ options: TAGGED });
  await c.query('SELECT 1');
  t.equal((await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u, 'guardless', 'the session runs as the URLs\' user');
  const g = fx.proxy.stats.guards;
  const got = await pairs(c, 1, 8);
  t.equal(got.missed, 0, 'every read saw its own write');
  t.equal(got.onReplica, 8, 'on the replica (the monitor, with its own login, tells when it has replayed)');
  t.equal(g.refused, 1, 'refused once: the session sent no guard after that');
  t.equal(g.passed + g.behind, 0);
});
