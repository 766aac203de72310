/**
 * Read-your-writes and monotonic reads, against real servers:
 *
 * 1. Consistency under churn: many concurrent tagged clients each write a unique value and read it back
 *    at once, while replay on the replicas is paused and resumed in turn. Every read must see the
 *    client's own write, and a count that only grows must never go down for any client (a read never
 *    lands on a replica behind what the client saw before). The numbers are reported.
 * 2. Across sessions: SHOW pgsplit.lsn in the writing session, SET pgsplit.after (or an after= hint)
 *    in another: the other session reads only from replicas that have replayed that far.
 */
import t from 'tap';
import type pg from 'pg';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(240_000);

const TAGGED = '-c pgsplit.route=replica';

t.test('concurrent clients read their own writes while replicas pause and resume', async (t) => {
  const fx = await startProxy(t, { replicas: 2, config: { routing: { max_lag: '2s', read_your_writes_timeout: '100ms' }, monitor: { interval: '50ms' } } });
  await fx.cluster.primary.query('CREATE TABLE ryw (client int, seq int, val text, PRIMARY KEY (client, seq))');
  await fx.cluster.waitForReplication();

  const CLIENTS = 16;
  const RUN_MS = 8000;
  let stop = false;
  // Churn: every 400 ms pause or resume one replica's replay, in turn.
  const churn = (async () => {
    let k = 0;
    while (!stop) {
      const r = fx.cluster.replicas[k % fx.cluster.replicas.length]!;
      if (r.replayPaused) await r.resumeReplay();
      else await r.pauseReplay();
      k++;
      await new Promise((res) => setTimeout(res, 400));
    }
    for (const r of fx.cluster.replicas) if (r.replayPaused) await r.resumeReplay();
  })();

  const totals = { writes: 0, reads: 0, onReplica: 0, misses: 0, wentBack: 0, errors: [] as string[] };
  const run = async (id: number): Promise<void> => {
    const c: pg.Client = await fx.client({ options: TAGGED, applicationName: `ryw-${id}` });
    let lastCount = 0;
    for (let seq = 0; !stop; seq++) {
      const val = `c${id}-s${seq}-${Math.random().toString(36).slice(2)}`;
      try {
        await c.query('INSERT INTO ryw VALUES ($1, $2, $3)', [id, seq, val]);
        totals.writes++;
        // Read back at once: extended protocol on even rounds, simple on odd ones.
        const r = seq % 2 === 0
          ? await c.query<{ val: string | null; r: boolean; n: number }>(
            'SELECT (SELECT val FROM ryw WHERE client = $1 AND seq = $2) AS val, pg_is_in_recovery() AS r, (SELECT count(*)::int FROM ryw) AS n', [id, seq])
          : await c.query<{ val: string | null; r: boolean; n: number }>(
            `SELECT (SELECT val FROM ryw WHERE client = ${id} AND seq = ${seq}) AS val, pg_is_in_recovery() AS r, (SELECT count(*)::int FROM ryw) AS n`);
        const row = r.rows[0]!;
        totals.reads++;
        if (row.r) totals.onReplica++;
        if (row.val !== val) totals.misses++;
        if (row.n < lastCount) totals.wentBack++;
        lastCount = row.n;
        // A second read without a write in between: same replica or newer, never older.
        const again = await c.query<{ n: number; r: boolean }>('SELECT count(*)::int AS n, pg_is_in_recovery() AS r FROM ryw');
        totals.reads++;
        if (again.rows[0]!.r) totals.onReplica++;
        if (again.rows[0]!.n < lastCount) totals.wentBack++;
        lastCount = again.rows[0]!.n;
      } catch (e) {
        totals.errors.push(`client ${id} seq ${seq}: ${(e as Error).message}`);
        if (totals.errors.length > 20) return;
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, (_, i) => run(i));
  await new Promise((r) => setTimeout(r, RUN_MS));
  stop = true;
  await Promise.all(clients);
  await churn;

  t.same(totals.errors, [], 'no client saw an error');
  t.ok(totals.writes > CLIENTS * 5, `${totals.writes} writes by ${CLIENTS} clients in ${RUN_MS / 1000} s`);
  t.equal(totals.misses, 0, `zero of ${totals.writes} read-backs missed the client's own write`);
  t.equal(totals.wentBack, 0, `zero of ${totals.reads} reads saw the table shrink (monotonic reads)`);
  t.ok(totals.onReplica > 0, `${totals.onReplica} of ${totals.reads} reads ran on a replica (the rest on the primary)`);
  const reasons = Object.fromEntries([...fx.proxy.stats.routedByReason].filter(([k]) => /causal|fallback|tagged-read/.test(k)));
  t.comment(`totals: ${JSON.stringify({ ...totals, errors: totals.errors.length })}; routing reasons: ${JSON.stringify(reasons)}`);
});

t.test('a position handed from one session to another is honoured', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: { routing: { max_lag: '1h', read_your_writes_timeout: '100ms' }, monitor: { interval: '50ms' } } });
  await fx.cluster.primary.query('CREATE TABLE handoff (id int PRIMARY KEY, note text)');
  await fx.cluster.waitForReplication();
  const replica = fx.cluster.replicas[0]!;

  const api = await fx.client(); // an untagged API session: writes on the primary
  await replica.pauseReplay();
  try {
    await api.query("INSERT INTO handoff VALUES (1, 'from the API request')");
    const lsn = (await api.query('SHOW pgsplit.lsn')).rows[0]['pgsplit.lsn'] as string;
    t.match(lsn, /^[0-9A-F]+\/[0-9A-F]+$/, `SHOW pgsplit.lsn gives a WAL position: ${lsn}`);

    const read = 'SELECT (SELECT note FROM handoff WHERE id = 1) AS note, pg_is_in_recovery() AS r';
    const job = await fx.client({ options: TAGGED }); // a background job: tagged, lag of hours accepted
    t.same((await job.query(read)).rows[0], { note: null, r: true }, 'without the position, the job reads the paused replica and misses the row');
    await job.query(`SET pgsplit.after = '${lsn}'`);
    t.equal((await job.query('SHOW pgsplit.after')).rows[0]['pgsplit.after'], lsn, 'SHOW pgsplit.after');
    t.same((await job.query(read)).rows[0], { note: 'from the API request', r: false }, 'with SET pgsplit.after, the replica is not far enough: the primary serves it');

    const job2 = await fx.client({ options: TAGGED });
    t.same((await job2.query(`/* pgsplit:after=${lsn} */ ${read}`)).rows[0], { note: 'from the API request', r: false }, 'the same with an after= hint');
    // Having read from the primary, job2 does not go back to the paused replica (monotonic reads).
    t.same((await job2.query(read)).rows[0], { note: 'from the API request', r: false }, 'after reading newer data, the session does not go back to the lagging replica');

    await replica.resumeReplay();
    await fx.cluster.waitForReplication();
    const job3 = await fx.client({ options: TAGGED });
    await job3.query(`SET pgsplit.after = '${lsn}'`);
    t.same((await job3.query(read)).rows[0], { note: 'from the API request', r: true }, 'once the replica has replayed the position, it serves the job');
    const bad = await job3.query("SET pgsplit.after = 'yesterday'").then(() => null, (e: { code?: string; message: string }) => e);
    t.equal(bad?.code, '22023', `a malformed position is refused: ${bad?.message}`);
    const ro = await job3.query("SET pgsplit.lsn = '0/1'").then(() => null, (e: { code?: string }) => e);
    t.equal(ro?.code, '55P02', 'pgsplit.lsn is read-only');
  } finally {
    if (replica.replayPaused) await replica.resumeReplay();
  }
});
