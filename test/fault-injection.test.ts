/**
 * Faults under a mixed load (issue 7): a primary with two streaming replicas, pgsplit in front with a
 * 50 ms monitor interval, and a third "replica" that accepts TCP but never answers. Tagged clients read
 * (autocommit, READ ONLY transactions, their own rows), write a little, and run transactions opened with
 * a plain BEGIN (which pgsplit defers and runs on a replica while they read: some only read, with SET
 * LOCAL and savepoints, and some write after reading, so they move to the primary with those replayed,
 * statement by statement or as one multi-statement Query); untagged clients insert
 * client-made ids (autocommit, simple and extended protocol, and inside transactions) and increment
 * counters; everyone reconnects after an error. Meanwhile, one after another and twice (each replica in
 * turn): a replica killed, a replica stopped and restarted, a replica frozen and thawed, the primary
 * restarted.
 *
 * Checked: the failed server is out of rotation and back within generous bounds; autocommit tagged
 * reads never fail (they run again elsewhere) and no client hangs; the errors clients see are of the
 * documented kinds; and, on the primary itself after the run, every acknowledged write is there exactly
 * once and nothing ran twice.
 *
 * Two pgsplit bugs found on the way (now fixed) are reproduced at the end.
 *
 * Not covered: delay or loss on the network. It needs the servers and pgsplit inside a network
 * namespace (netem on the shared loopback would slow everything else on the machine), and this
 * machine's kernel has no netem qdisc (`tc qdisc add dev lo root netem ...`: "Specified qdisc kind is
 * unknown"), so it is left out.
 */
import t from 'tap';
import pg from 'pg';
import { startCluster, startProxy } from './fixtures/proxy-fixture.js';
import {
  MixedLoad, attribute, pollUntil, createSchema, faultTable, formatCodes, primaryRestarted, replicaFrozen, replicaKilled, replicaStopped,
  silentServerRecord, startSilentServer, verificationSummary, verifyOnPrimary, type FaultContext, type FaultRecord,
} from './fixtures/fault-load.js';

t.setTimeout(300_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Errors a client may see, by fault, as README "Replica awareness" documents them. A replica failing
 * under a READ ONLY transaction, or under a result already streaming (read-big), ends that session
 * (the server's own FATAL 57P01 when it sent one, else 08006); autocommit reads run again elsewhere,
 * so they have no entry. The primary going away fails
 * what runs there (57P01 from the server, 08006 from pgsplit) and what needs it until it is back
 * (08001 from pgsplit, 57P03 from a server starting up or shutting down): writes, a tagged session's
 * SET (pgsplit runs SET on the primary and replays it on replicas), and the reads of a tagged session
 * that used the primary before (op marked '*'), since only the primary can then say which replica has
 * what it did there. A tagged session that never used the primary connects and reads on the replicas.
 */
const REPLICA_FAULT_OK = new Set([
  'tagged/read-tx/08006', 'tagged/read-tx/57P01', 'tagged/read-big/08006', 'tagged/read-big/57P01',
  // A transaction opened with a plain BEGIN runs on a replica until its first write: the replica failing
  // under it before it moves ends the session the same way (never losing or repeating a write).
  'tagged/read-tx-plain/08006', 'tagged/read-tx-plain/57P01', 'tagged/tx-moved/08006', 'tagged/tx-moved/57P01',
  'tagged/tx-moved-batch/08006', 'tagged/tx-moved-batch/57P01',
]);
for (const k of [...REPLICA_FAULT_OK]) REPLICA_FAULT_OK.add(k.replace(/\/([a-z-]+)\//, '/$1*/'));
const PRIMARY_CODES = new Set(['57P01', '08006', '08001', '57P03']);

function unexpectedErrors(rec: FaultRecord): string[] {
  const out: string[] = [];
  for (const [kind, n] of rec.window.errorKinds) {
    const [role, op, code] = kind.split('/');
    const ok = rec.fault.startsWith('primary')
      ? PRIMARY_CODES.has(code ?? '') && !(role === 'tagged' && (op === 'connect' || (op?.startsWith('read') === true && !op.endsWith('*'))))
      : REPLICA_FAULT_OK.has(kind);
    if (!ok) out.push(`${kind} x${n}`);
  }
  return out;
}

const MONITOR = { interval: '50ms', timeout: '1s', rise: 3 };
const began = Date.now();
const cluster = await startCluster(t, { replicas: 2 });

t.test('mixed load through replica and primary faults: nothing acknowledged is lost, nothing runs twice', async (t) => {
  const silent = await startSilentServer();
  t.teardown(() => silent.close());
  const proxyStart = performance.now();
  const fx = await startProxy(t, {
    reuseCluster: cluster,
    config: {
      replicas: [...cluster.replicas.map((r) => r.url()), { url: `postgres://postgres@127.0.0.1:${silent.port}/postgres`, name: 'silent' }],
      monitor: MONITOR,
    },
  });
  const nodes = fx.proxy.nodes;
  // listen() waits for the first checks, which for the silent server end with the timeout.
  const silentAtListen = nodes.byName('silent')?.health;
  const listenMs = performance.now() - proxyStart;
  let silentEverUp = false;
  const watcher = setInterval(() => {
    if (nodes.byName('silent')?.health === 'up') silentEverUp = true;
  }, 20);
  t.teardown(() => clearInterval(watcher));

  await createSchema(cluster.primary);
  await cluster.waitForReplication();

  const load = new MixedLoad({ port: fx.port, tagged: 4, readers: 3, untagged: 4, hangMs: 20_000, thinkMs: 5 }).start();
  const ctx: FaultContext = {
    cluster, load,
    health: async (name) => nodes.byName(name)?.health,
    replicaName: (i) => `replica${i + 1}`,
    primaryName: 'primary',
  };
  await sleep(2000);
  const baseline = load.observe('baseline');
  await sleep(1500);
  baseline.end();

  const records: FaultRecord[] = [];
  // Two rounds, the second with the replicas swapped, so that each replica gets each fault once.
  // primaryFrozen() is not in the list: a frozen primary is reproduced on its own below ('a write on a session ... primary freezing').
  const faults = [
    replicaKilled(0), replicaStopped(1), replicaFrozen(0, 3000), primaryRestarted(1000),
    replicaKilled(1), replicaStopped(0), replicaFrozen(1, 3000), primaryRestarted(1000),
  ];
  for (const fault of faults) {
    records.push(await fault.run(ctx));
    await sleep(500);
  }
  const tail = load.observe('after the faults');
  await sleep(1500);
  tail.end();
  await load.stop();
  records.push(silentServerRecord(load.quiet, silentAtListen === 'down' ? listenMs : null,
    `out before pgsplit listened (warm-up); ${silent.accepted()} monitor connections accepted, ${silent.open()} open at the end`));

  const totals = load.totals;
  const v = await verifyOnPrimary(cluster.primary, load.ledger);
  const outside = attribute(records, v.problems);

  t.comment(`load: ${totals.ops} operations, ${totals.readsOk} reads, ${totals.writesAcked} writes acknowledged, worst operation ${Math.round(totals.worstOpMs)} ms`);
  t.comment(`baseline (no fault) errors: ${formatCodes(baseline.errors)}; after the faults: ${formatCodes(tail.errors)}`);
  t.comment(`\n${faultTable(records)}`);
  t.comment(`\n${verificationSummary(v, totals)}`);
  const retries = [...fx.proxy.stats.retriesByNode.values()].reduce((a, b) => a + b, 0);
  t.ok(retries > 0, `reads whose replica failed under them ran again elsewhere (${retries})`);
  t.comment(`routed by reason: ${formatCodes(fx.proxy.stats.routedByReason)}; reads run again elsewhere: ${formatCodes(fx.proxy.stats.retriesByNode)}`);
  t.comment(`silent server: ${silent.accepted()} connections accepted (monitor checks), ${silent.open()} open now; at listen it was ${silentAtListen}`);
  for (const p of v.problems.slice(0, 20)) t.comment(`problem: ${p.kind}: ${p.detail}`);
  for (const s of totals.staleSamples) t.comment(`read-your-writes miss: ${s}`);
  for (const s of totals.counterSamples) t.comment(`counter anomaly: ${s}`);
  for (const s of totals.settingSamples) t.comment(`setting lost: ${s}`);
  for (const r of records) {
    if (r.window.errorKinds.size > 0) t.comment(`${r.fault}: errors by client/operation/SQLSTATE: ${formatCodes(r.window.errorKinds)}`);
    for (const s of r.window.samples.slice(0, 4)) t.comment(`  e.g. ${s}`);
  }

  // No loss, no double execution, checked on the primary itself.
  t.equal(v.lost, 0, 'acknowledged writes lost: 0');
  t.equal(v.twice, 0, 'statements run twice (or run although they had failed before running): 0');
  t.same(outside.filter((p) => p.at !== null).map((p) => p.detail), [], 'no problem outside the fault windows either');
  t.equal(totals.counterAnomalies, 0, 'no counter read outside what its acknowledged and unknown increments allow');
  t.equal(totals.errorKinds.get('untagged/tx/23505') ?? 0, 0, 'no duplicate key: no transaction ran twice');
  t.ok(v.acked > 200, `a real load: ${v.acked} acknowledged rows`);
  // Transactions opened with a plain BEGIN in tagged sessions: run, moved, and among the faults.
  const txOk = (op: string): number => load.all.okByOp.get(`tagged/${op}`) ?? 0;
  const moved = fx.proxy.stats.routedByReason.get('tx-moved') ?? 0;
  const txInFaults = records.reduce((n, r) => n + ['read-tx-plain', 'tx-moved', 'tx-moved-batch'].reduce((m, op) =>
    m + (r.window.okByOp.get(`tagged/${op}`) ?? 0) + [...r.window.errorKinds].filter(([k]) => k.startsWith(`tagged/${op}`)).reduce((a, [, x]) => a + x, 0), 0), 0);
  t.comment(`tagged plain-BEGIN transactions completed: ${txOk('read-tx-plain')} read-only, ${txOk('tx-moved')} moving (statement by statement), ` +
    `${txOk('tx-moved-batch')} moving (one Query); statements routed tx-moved: ${moved}, tx-read: ${fx.proxy.stats.routedByReason.get('tx-read') ?? 0}; ` +
    `${txInFaults} such transactions ended inside a fault window`);
  t.ok(txOk('read-tx-plain') > 0 && txOk('tx-moved') > 0 && txOk('tx-moved-batch') > 0, 'each kind of plain-BEGIN transaction completed');
  t.ok(moved > 0, `transactions moved from a replica to the primary (${moved} statements routed tx-moved)`);
  t.ok(txInFaults > 0, `plain-BEGIN transactions ran while faults were injected (${txInFaults})`);

  // Nobody hangs, reads keep their guarantees.
  t.equal(totals.hangs, 0, 'no operation or connect hung (20 s watchdog)');
  t.equal(totals.staleReads, 0, 'every tagged read of its own acknowledged row saw it exactly once');
  t.equal(totals.settingsLost, 0, 'every tagged read ran with its session\'s settings, wherever it ran');
  t.equal(baseline.errorCount, 0, 'no errors without a fault');
  t.equal(tail.errorCount, 0, 'no errors once the faults are over');

  t.equal(load.quiet.errorCount, 0, `no client error while no fault was being injected (the silent server alone): ${formatCodes(load.quiet.errors)}`);
  for (const r of records) {
    if (r.fault.startsWith('silent')) continue;
    t.same(unexpectedErrors(r), [], `${r.fault}: only the documented errors (${formatCodes(r.window.errors)})`);
    t.ok(r.downAfterMs !== null && r.downAfterMs < 10_000, `${r.fault}: out of rotation within 10 s (${r.downAfterMs} ms)`);
    t.ok(r.backAfterMs !== null && r.backAfterMs < 30_000, `${r.fault}: back in rotation within 30 s of recovering (${r.backAfterMs} ms)`);
    if (r.fault.startsWith('replica')) t.equal(r.readsOnVictimWhileOut, 0, `${r.fault}: no tagged read sent to it while it was out`);
  }
  for (const primary of records.filter((r) => r.fault.startsWith('primary'))) {
    t.ok(primary.writesBackAfterMs !== null, `writes are acknowledged again after the primary restart (${primary.writesBackAfterMs} ms after the stop began)`);
    t.ok((primary.taggedReadsWhilePrimaryDown ?? 0) > 0, `tagged reads went on while the primary was down (${primary.taggedReadsWhilePrimaryDown})`);
  }

  t.equal(silentAtListen, 'down', 'the silent server is out of rotation as soon as pgsplit listens');
  t.notOk(silentEverUp, 'and never in rotation');
  t.ok(silent.open() <= 2, `the monitor does not pile up connections to it (${silent.open()} open, ${silent.accepted()} accepted)`);

  t.comment(`cluster start and load with faults took ${((Date.now() - began) / 1000).toFixed(1)} s`);
});

const raceMs = <T>(p: Promise<T>, ms: number): Promise<T | 'no answer'> => Promise.race([p, sleep(ms).then(() => 'no answer' as const)]);
const outcome = (p: Promise<unknown>): Promise<string> => p.then(() => 'answered', (e: { code?: string; message: string }) => `error ${e.code ?? ''} ${e.message}`);

// Two pgsplit bugs found while writing this suite, now fixed in Session: a transaction idle on a replica the
// monitor has out ends at its next statement; an idle link to a primary found down is let go, and a
// connection to a server found down waits no longer than monitor.timeout. Minimal reproductions.

t.test('a session idle in a READ ONLY transaction on a replica that froze gets 08006 on its next statement', async (t) => {
  const victim = cluster.replicas[0]!;
  const fx = await startProxy(t, { reuseCluster: cluster, config: { replicas: [victim.url()], monitor: MONITOR } });
  const c = await fx.client({ options: '-c pgsplit.route=replica' });
  await c.query('BEGIN READ ONLY');
  await c.query('SELECT 1');
  // The monitor's own backend stops first, so its check is in flight when the session's link last hears
  // from the replica: at the verdict the link has been quiet for less than monitor.timeout.
  const [mon] = await victim.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgsplit-monitor'");
  t.ok(mon, 'the monitor has a connection to the replica');
  try {
    if (mon) process.kill(mon.pid, 'SIGSTOP');
    await sleep(300);
    await c.query('SELECT 2');
    await victim.freeze();
    t.ok(await pollUntil(() => fx.proxy.nodes.byName('replica1')?.health === 'down', 10_000) !== null, 'the replica is out of rotation');
    await sleep(1500);
    const next = outcome(c.query('SELECT 3'));
    const out = await raceMs(next, 5000);
    t.match(out, /^error (08006|57P01)/, `the next statement in the transaction fails instead of waiting for the frozen server: ${out}`);
  } finally {
    await victim.thaw();
  }
  t.ok(await pollUntil(() => fx.proxy.nodes.byName('replica1')?.health === 'up', 15_000) !== null, 'the replica is back');
});

t.test('a write on a session whose idle primary connection outlived the primary freezing fails at once', async (t) => {
  const primary = cluster.primary;
  await primary.query('CREATE TABLE IF NOT EXISTS fi_frozen (x int)');
  const fx = await startProxy(t, { reuseCluster: cluster, config: { replicas: [cluster.replicas[0]!.url()], monitor: MONITOR } });
  const writer = await fx.client();
  await writer.query('INSERT INTO fi_frozen VALUES (1)');
  let write: Promise<string> | null = null;
  try {
    await primary.freeze();
    t.ok(await pollUntil(() => fx.proxy.nodes.primary.health === 'down', 10_000) !== null, 'the primary is out of rotation');
    await sleep(300);
    const started = Date.now();
    write = outcome(writer.query('INSERT INTO fi_frozen VALUES (2)'));
    const out = await raceMs(write, 5000);
    t.match(out, /^error 08/, `the write fails at once: ${out} after ${Date.now() - started} ms`);
  } finally {
    await primary.thaw();
  }
  if (write) t.comment(`after the thaw the write ${await write}`);
});

/**
 * A pgsplit bug the tagged plain-BEGIN transactions of the load found (they begin with `BEGIN READ WRITE`
 * now and then), reduced; fixed on main by the time this was merged (a standby refuses BEGIN READ WRITE, so
 * the replica side was never open: the read said transaction_read_only = on, SAVEPOINT failed with 25P01,
 * and the write after it committed on its own although the client rolled back).
 */
t.test('a tagged BEGIN READ WRITE transaction that reads, then writes, then rolls back leaves nothing behind', async (t) => {
  await cluster.primary.query('CREATE TABLE IF NOT EXISTS fi_rw (x text)');
  await cluster.waitForReplication();
  const fx = await startProxy(t, { reuseCluster: cluster, config: { replicas: [cluster.replicas[0]!.url()], monitor: MONITOR } });
  const run = async (c: { query(q: string): Promise<{ command: string }> }, token: string): Promise<string[]> => {
    const out: string[] = [];
    for (const q of ['BEGIN READ WRITE', 'SELECT 1', 'SAVEPOINT s1', `INSERT INTO fi_rw VALUES ('${token}')`, 'ROLLBACK']) {
      const what = q.replace(token, 'TOKEN');
      out.push(await c.query(q).then((r) => `${what}: ${r.command}`, (e: { code?: string }) => `${what}: ERROR ${e.code ?? ''}`));
    }
    return out;
  };
  const direct = new pg.Client({ host: cluster.primary.host, port: cluster.primary.port, user: 'postgres', database: 'postgres' });
  await direct.connect();
  const want = await run(direct, 'direct');
  await direct.end();
  const tagged = await fx.client({ options: '-c pgsplit.route=replica' });
  const got = await run(tagged, 'tagged');
  await tagged.end();
  const rows = await cluster.primary.query<{ x: string }>('SELECT x FROM fi_rw');
  t.same(rows.filter((r) => r.x === 'direct'), [], 'directly, the rolled-back write is not there');
  t.same(got, want, 'tagged through pgsplit, every statement answers as on a direct connection');
  t.same(rows.filter((r) => r.x === 'tagged'), [], 'tagged through pgsplit, the rolled-back write is not there either');
});
