/**
 * A tagged session's BEGIN sent alone through the extended protocol (Parse/Bind/Execute/Sync, as pgbench
 * -M extended / -M prepared and several drivers send it), right after the session wrote, against real
 * servers (synchronous_commit off, as the fixture's cluster runs) with the replica's replay paused:
 * - the BEGIN opens on the replica at once: it reads nothing, so it does not wait for the session's
 *   writes, and a write that follows moves the transaction to the primary with no wait at all;
 * - the transaction's first read is what needs the session's writes: it waits for the replica to replay
 *   them and, when it does not in time (routing.read_your_writes_timeout), moves the transaction to the
 *   primary (with its SET LOCAL replayed there) and sees them; when replay resumes during the wait, it
 *   runs on the replica and sees them there;
 * - the same, pipelined (the read sent before the BEGIN is answered), and a BEGIN then COMMIT reaches
 *   the primary not at all; a REPEATABLE READ BEGIN still opens on the primary;
 * - a plain (deferred) BEGIN whose transaction opens with SET LOCAL: the SET LOCAL reads nothing and does
 *   not wait either.
 * Observed through routing reasons (causal-wait, fallback-causal: the read-your-writes waits and their
 * fallbacks) and where each statement ran (pg_is_in_recovery()), never through time.
 */
import t, { type Test } from 'tap';
import type pg from 'pg';
import { until } from './fixtures/until.js';
import { routeCounter, startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import { RawPgClient, dataRow, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(240_000);

const TAGGED = '-c pgsplit.route=replica';

/** The extended-protocol BEGINs: unnamed (pgbench -M extended, queryMode extended) and a named statement (-M prepared). */
const BEGINS: Array<{ text: string; name?: string; queryMode?: 'extended' }> = [
  { text: 'BEGIN', queryMode: 'extended' },
  { text: 'BEGIN', name: 'ext_begin' },
];
const COMMIT = { text: 'COMMIT', queryMode: 'extended' } as { text: string };

/** How many units were routed for `reason` since the call. */
function reasons(fx: ProxyFixture): (reason: string) => number {
  const snap = new Map(fx.proxy.stats.routedByReason);
  return (reason) => (fx.proxy.stats.routedByReason.get(reason) ?? 0) - (snap.get(reason) ?? 0);
}

async function setup(t: Test, timeout: string): Promise<ProxyFixture> {
  const fx = await startProxy(t, {
    replicas: 1,
    config: { routing: { max_lag: '1h', read_your_writes_timeout: timeout }, monitor: { interval: '50ms' } },
  });
  await fx.cluster.primary.query('CREATE TABLE ext_begin (id int PRIMARY KEY, v text)');
  await fx.cluster.waitForReplication();
  await until(() => fx.proxy.nodes.replicas[0]!.health === 'up');
  return fx;
}

/** A tagged client whose default isolation pgsplit has asked already (its first replica read does). */
async function taggedClient(fx: ProxyFixture): Promise<pg.Client> {
  const c = await fx.client({ options: TAGGED });
  await c.query('SELECT 1');
  return c;
}

/** Pauses the replica's replay until the test ends. */
async function pauseReplay(t: Test, fx: ProxyFixture): Promise<void> {
  const replica = fx.cluster.replicas[0]!;
  await replica.pauseReplay();
  t.teardown(async () => {
    if (replica.replayPaused) await replica.resumeReplay();
  });
}

t.test('with the replica\'s replay paused', async (t) => {
  const fx = await setup(t, '1s');
  await pauseReplay(t, fx);
  let id = 0;

  t.test('BEGIN, then a write: the BEGIN opens on the replica without waiting, the write moves the transaction', async (t) => {
    const c = await taggedClient(fx);
    for (const begin of BEGINS) {
      const row = ++id;
      await c.query('INSERT INTO ext_begin VALUES ($1, $2)', [row, 'written']);
      const delta = reasons(fx);
      await c.query(begin);
      const u = await c.query<{ r: boolean }>('UPDATE ext_begin SET v = $2 WHERE id = $1 RETURNING pg_is_in_recovery() AS r', [row, 'updated']);
      await c.query(COMMIT);
      const what = JSON.stringify(begin);
      t.equal(u.rowCount, 1, `${what}: the UPDATE found the row the session wrote before the BEGIN`);
      t.equal(u.rows[0]?.r, false, `${what}: it ran on the primary`);
      t.equal(delta('tx-read'), 1, `${what}: the BEGIN opened on the replica`);
      t.equal(delta('tx-moved'), 1, `${what}: the UPDATE moved the transaction to the primary`);
      t.equal(delta('causal-wait'), 0, `${what}: nothing waited for the session's writes`);
      t.equal(delta('fallback-causal'), 0, `${what}: nothing fell back for them either`);
    }
    const rows = await fx.cluster.primary.query<{ n: number }>("SELECT count(*)::int AS n FROM ext_begin WHERE v = 'updated'");
    t.same(rows, [{ n: BEGINS.length }], 'every UPDATE committed, once');
  });

  t.test('BEGIN, then a read: the read waits for the session\'s writes, then the transaction moves to the primary and sees them', async (t) => {
    const c = await taggedClient(fx);
    for (const begin of BEGINS) {
      const row = ++id;
      await c.query('INSERT INTO ext_begin VALUES ($1, $2)', [row, 'seen']);
      const delta = reasons(fx);
      await c.query(begin);
      // Transaction-neutral: it stays on the replica without waiting, and is replayed on the primary when the transaction moves.
      await c.query({ text: 'SET LOCAL statement_timeout = 4321', queryMode: 'extended' } as { text: string });
      const r = await c.query<{ v: string | null; r: boolean; st: string }>(
        'SELECT (SELECT v FROM ext_begin WHERE id = $1) AS v, pg_is_in_recovery() AS r, current_setting($2) AS st', [row, 'statement_timeout']);
      await c.query(COMMIT);
      const what = JSON.stringify(begin);
      t.same(r.rows[0], { v: 'seen', r: false, st: '4321ms' }, `${what}: the read saw the session's write, on the primary, with the SET LOCAL`);
      t.equal(delta('fallback-causal'), 1, `${what}: the read waited, and fell back when the replica did not replay the write in time`);
      t.equal(delta('causal-wait'), 0, `${what}: no wait ended on the replica`);
    }
  });

  t.test('pipelined: BEGIN, a read and COMMIT sent at once', async (t) => {
    const raw = await RawPgClient.connect({ port: fx.port, options: TAGGED });
    t.teardown(() => raw.close());
    raw.send(fe.extended('SELECT 1'));
    await raw.untilReady(1);
    const row = ++id;
    const delta = reasons(fx);
    raw.send(fe.query(`INSERT INTO ext_begin VALUES (${row}, 'piped')`));
    await raw.untilReady(1);
    raw.send(fe.extended('BEGIN'), fe.extended('SELECT (SELECT v FROM ext_begin WHERE id = $1), pg_is_in_recovery()::text', [String(row)]), fe.extended('COMMIT'));
    const msgs = await raw.untilReady(3);
    const rows = msgs.filter((m) => m.type === 'D').map((m) => dataRow(m.payload));
    t.same(rows, [['piped', 'false']], 'the read saw the row, on the primary');
    t.same(msgs.filter((m) => m.type === 'E'), [], 'no error');
    t.equal(delta('fallback-causal'), 1, 'the read waited for the position, then fell back');
  });

  t.test('BEGIN then COMMIT: nothing waits, nothing reaches the primary', async (t) => {
    const c = await taggedClient(fx);
    await c.query('INSERT INTO ext_begin VALUES ($1, $2)', [++id, 'unread']);
    const delta = reasons(fx);
    const count = routeCounter(fx);
    for (const begin of BEGINS) {
      await c.query(begin);
      await c.query(COMMIT);
    }
    t.equal(delta('tx-read'), BEGINS.length, 'each BEGIN opened on the replica');
    t.equal(delta('causal-wait') + delta('fallback-causal'), 0, 'without waiting');
    t.same(count(), { primary: 0, replica: 2 * BEGINS.length }, 'each COMMIT followed it there');
  });

  t.test('a plain BEGIN whose transaction opens with SET LOCAL: the SET LOCAL does not wait either; the read after it does', async (t) => {
    const c = await taggedClient(fx);
    const row = ++id;
    await c.query('INSERT INTO ext_begin VALUES ($1, $2)', [row, 'local']);
    let delta = reasons(fx);
    await c.query('BEGIN');
    await c.query('SET LOCAL statement_timeout = 4321');
    const u = await c.query<{ r: boolean; st: string }>("UPDATE ext_begin SET v = 'local2' WHERE id = $1 RETURNING pg_is_in_recovery() AS r, current_setting('statement_timeout') AS st", [row]);
    await c.query('COMMIT');
    t.same(u.rows[0], { r: false, st: '4321ms' }, 'the write ran on the primary, with the SET LOCAL replayed there');
    t.equal(delta('tx-moved'), 1, 'the write moved the transaction');
    t.equal(delta('causal-wait') + delta('fallback-causal'), 0, 'nothing waited');

    delta = reasons(fx);
    await c.query('BEGIN');
    await c.query('SET LOCAL statement_timeout = 4321');
    const r = await c.query<{ v: string | null; r: boolean; st: string }>(
      "SELECT (SELECT v FROM ext_begin WHERE id = $1) AS v, pg_is_in_recovery() AS r, current_setting('statement_timeout') AS st", [row]);
    await c.query('COMMIT');
    t.same(r.rows[0], { v: 'local2', r: false, st: '4321ms' }, 'the read saw the session\'s write, on the primary, with the SET LOCAL');
    t.equal(delta('fallback-causal'), 1, 'after waiting for it on the replica');
  });

  t.test('REPEATABLE READ: the BEGIN opens on the primary, as before', async (t) => {
    const c = await taggedClient(fx);
    const row = ++id;
    await c.query('INSERT INTO ext_begin VALUES ($1, $2)', [row, 'rr']);
    await c.query({ text: 'BEGIN ISOLATION LEVEL REPEATABLE READ', queryMode: 'extended' } as { text: string });
    const r = await c.query<{ v: string | null; r: boolean }>('SELECT (SELECT v FROM ext_begin WHERE id = $1) AS v, pg_is_in_recovery() AS r', [row]);
    await c.query(COMMIT);
    t.same(r.rows[0], { v: 'rr', r: false });
  });
});

t.test('replay resumed while the first read waits: it runs on the replica and sees the write', async (t) => {
  // A bound long enough that only the replay ends the wait.
  const fx = await setup(t, '60s');
  const c = await taggedClient(fx);
  await pauseReplay(t, fx);
  const replica = fx.cluster.replicas[0]!;
  for (const begin of BEGINS) {
    const row = 1000 + BEGINS.indexOf(begin);
    await c.query('INSERT INTO ext_begin VALUES ($1, $2)', [row, 'replayed']);
    const delta = reasons(fx);
    await c.query(begin);
    t.equal(delta('causal-wait') + delta('fallback-causal'), 0, 'the BEGIN did not wait');
    // Every wait for replay the monitor is asked for from here on: the read's.
    const monitor = fx.proxy.monitor;
    const waitForReplay = monitor.waitForReplay;
    let waits = 0;
    monitor.waitForReplay = (n, lsn, ms) => {
      waits++;
      return waitForReplay.call(monitor, n, lsn, ms);
    };
    const read = c.query<{ v: string | null; r: boolean }>('SELECT (SELECT v FROM ext_begin WHERE id = $1) AS v, pg_is_in_recovery() AS r', [row]);
    t.ok(await until(() => waits > 0), 'the read waits for the replica');
    monitor.waitForReplay = waitForReplay;
    await replica.resumeReplay();
    const r = await read;
    await c.query(COMMIT);
    t.same(r.rows[0], { v: 'replayed', r: true }, `${JSON.stringify(begin)}: the read ran on the replica once it replayed the write, and saw it`);
    t.equal(delta('causal-wait'), 1, 'counted as a read-your-writes wait');
    t.equal(delta('fallback-causal'), 0);
    await replica.pauseReplay();
  }
});

t.test('replay running: BEGIN, then a read, runs on the replica and sees the session\'s write', async (t) => {
  const fx = await setup(t, '10s');
  const c = await taggedClient(fx);
  for (const [i, begin] of BEGINS.entries()) {
    const row = 2000 + i;
    await c.query('INSERT INTO ext_begin VALUES ($1, $2)', [row, 'fresh']);
    const delta = reasons(fx);
    await c.query(begin);
    const r = await c.query<{ v: string | null; r: boolean }>('SELECT (SELECT v FROM ext_begin WHERE id = $1) AS v, pg_is_in_recovery() AS r', [row]);
    await c.query(COMMIT);
    t.same(r.rows[0], { v: 'fresh', r: true }, `${JSON.stringify(begin)}: on the replica, with the write`);
    t.equal(delta('fallback-causal'), 0);
  }
});
