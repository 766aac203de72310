/**
 * Replicas failing under a tagged read workload, against real servers: killed (`pg_ctl stop -m
 * immediate`), stopped (`-m fast`) and frozen (SIGSTOP). For each: no client sees an error (a read whose
 * replica fails before answering runs again elsewhere), the replica is out of rotation within the
 * documented bound (monitor.interval + monitor.timeout), and back in after it recovers and passes
 * monitor.rise checks. Then the primary is stopped: tagged reads go on, writes fail at once with a clear
 * error, and come back with it.
 */
import t from 'tap';
import type pg from 'pg';
import { startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import type { LocalNode } from '../src/cluster/local-cluster.js';

t.setTimeout(300_000);

const TAGGED = '-c pgsplit.route=replica';
const INTERVAL_MS = 100;
const TIMEOUT_MS = 1000;
const BOUND_MS = INTERVAL_MS + TIMEOUT_MS;

interface Workload {
  stop(): Promise<{ reads: number; byNode: Record<string, number>; errors: string[] }>;
}

/** Tagged clients reading in a loop; each read reports which server answered (its port). */
async function readWorkload(fx: ProxyFixture, clients: number): Promise<Workload> {
  const conns: pg.Client[] = [];
  for (let i = 0; i < clients; i++) conns.push(await fx.client({ options: TAGGED }));
  let stop = false;
  let reads = 0;
  const byNode: Record<string, number> = {};
  const errors: string[] = [];
  const loops = conns.map(async (c) => {
    while (!stop) {
      try {
        const r = await c.query<{ port: number; n: number }>("SELECT current_setting('port')::int AS port, (SELECT count(*)::int FROM pg_class) AS n");
        reads++;
        const port = String(r.rows[0]!.port);
        byNode[port] = (byNode[port] ?? 0) + 1;
      } catch (e) {
        errors.push((e as Error).message);
        if (errors.length > 10) return;
      }
    }
  });
  return {
    async stop() {
      stop = true;
      await Promise.all(loops);
      return { reads, byNode, errors };
    },
  };
}

async function until(ms: number, check: () => boolean): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 10));
  }
  return null;
}

const FAILURES: Array<[string, (n: LocalNode) => Promise<void>, (n: LocalNode) => Promise<void>]> = [
  ['killed (pg_ctl stop -m immediate)', (n) => n.stop('immediate'), (n) => n.start()],
  ['stopped (pg_ctl stop -m fast)', (n) => n.stop('fast'), (n) => n.start()],
  ['frozen (SIGSTOP)', (n) => n.freeze(), (n) => n.thaw()],
];

for (const [what, fail, recover] of FAILURES) {
  t.test(`a replica ${what} during tagged reads`, async (t) => {
    const fx = await startProxy(t, { replicas: 2, config: { monitor: { interval: `${INTERVAL_MS}ms`, timeout: `${TIMEOUT_MS}ms`, rise: 3 } } });
    const victim = fx.cluster.replicas[0]!;
    const node = fx.proxy.nodes.byName('replica1')!;
    const load = await readWorkload(fx, 8);
    await new Promise((r) => setTimeout(r, 500));
    const failedAt = Date.now();
    await fail(victim);
    const out = await until(BOUND_MS + 2000, () => node.health === 'down');
    t.ok(out !== null && out <= BOUND_MS + 300, `out of rotation ${out} ms after it ${what.split(' ')[0]} (bound ${BOUND_MS} ms + scheduling)`);
    await new Promise((r) => setTimeout(r, 1000));
    const during = await load.stop();
    t.same(during.errors, [], `no client error: ${during.reads} reads, by server port ${JSON.stringify(during.byNode)}`);
    t.ok((during.byNode[String(fx.cluster.replicas[1]!.port)] ?? 0) > 0, 'the other replica served reads');
    t.comment(`reads run again elsewhere after ${what}: ${fx.proxy.stats.retriesByNode.get('replica1') ?? 0}`);

    // Nothing more goes to it while it is out.
    const load2 = await readWorkload(fx, 4);
    await new Promise((r) => setTimeout(r, 500));
    const whileOut = await load2.stop();
    t.same(whileOut.errors, [], 'new reads while it is out: no error');
    t.equal(whileOut.byNode[String(victim.port)] ?? 0, 0, 'and none of them on the failed replica');

    await recover(victim);
    const back = await until(15_000, () => node.health === 'up');
    t.ok(back !== null, `back in rotation ${back} ms after recovering (monitor.rise = 3 passed checks)`);
    const load3 = await readWorkload(fx, 8);
    const used = await until(10_000, () => true);
    await new Promise((r) => setTimeout(r, 1500));
    const after = await load3.stop();
    t.same(after.errors, [], 'after recovery: no error');
    t.ok((after.byNode[String(victim.port)] ?? 0) > 0, `it serves reads again (${JSON.stringify(after.byNode)})`);
    t.comment(`${what}: out after ${out} ms, back ${back} ms after recovery; ${Date.now() - failedAt} ms in all${used === null ? '' : ''}`);
  });
}

t.test('the primary stops: tagged reads continue, writes fail at once with a clear error', async (t) => {
  const fx = await startProxy(t, { replicas: 2, config: { monitor: { interval: `${INTERVAL_MS}ms`, timeout: `${TIMEOUT_MS}ms` } } });
  await fx.cluster.primary.query('CREATE TABLE p_t (x int)');
  await fx.cluster.waitForReplication();
  const reader = await fx.client({ options: TAGGED });
  const writer = await fx.client();
  await writer.query('INSERT INTO p_t VALUES (1)');
  const load = await readWorkload(fx, 4);
  await fx.cluster.primary.stop('fast');
  const primary = fx.proxy.nodes.primary;
  t.ok((await until(BOUND_MS + 2000, () => primary.health === 'down')) !== null, 'the monitor has the primary down');
  await new Promise((r) => setTimeout(r, 1000));
  const during = await load.stop();
  t.same(during.errors, [], `tagged reads went on: ${during.reads} reads, no error`);
  t.same((await reader.query('SELECT count(*)::int AS n, pg_is_in_recovery() AS r FROM p_t')).rows[0], { n: 1, r: true }, 'a tagged session started before reads from a replica');
  const fresh = await fx.client({ options: TAGGED });
  t.equal((await fresh.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'a tagged session started now reads from a replica');
  const started = Date.now();
  const e = await writer.query('INSERT INTO p_t VALUES (2)').then(() => null, (err: { code?: string; message: string }) => err);
  const took = Date.now() - started;
  t.ok(e !== null, `a write fails: ${e?.code} ${e?.message}`);
  t.ok(took < 3000, `at once (${took} ms), no hang`);
  await fx.cluster.primary.start();
  t.ok((await until(15_000, () => primary.health === 'up')) !== null, 'the primary is back in rotation');
  const w2 = await fx.client();
  await w2.query('INSERT INTO p_t VALUES (3)');
  t.pass('writes work again in a new session');
});
