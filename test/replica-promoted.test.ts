/**
 * A replica promoted to primary (pg_promote(), as a failover tool would) is noticed by the monitor and
 * no longer treated as a replica: tagged reads stop going to it, and go to the remaining replica.
 */
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

t.test('a promoted replica gets no more reads', async (t) => {
  const fx = await startProxy(t, { replicas: 2, config: { monitor: { interval: '50ms' } } });
  const [first, second] = fx.cluster.replicas;
  const node = fx.proxy.nodes.byName('replica1')!;
  t.equal(node.inRecovery, true, 'replica1 starts in recovery');
  await first!.query('SELECT pg_promote(true, 30)');
  const started = Date.now();
  while (!node.promoted && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
  t.ok(node.promoted, `the monitor noticed the promotion after ${Date.now() - started} ms`);
  t.equal(fx.proxy.nodes.ineligibility(node, { maxLagMs: 1e9, minLsn: null }), 'not-in-recovery', 'and keeps it out of the replica choice');
  const ports = new Set<number>();
  for (let k = 0; k < 10; k++) {
    const c = await fx.client({ options: '-c pgsplit.route=replica' });
    const r = await c.query<{ port: number; rec: boolean }>("SELECT current_setting('port')::int AS port, pg_is_in_recovery() AS rec");
    ports.add(r.rows[0]!.port);
    t.equal(r.rows[0]!.rec, true, `tagged session ${k} reads from a server in recovery`);
    await c.end();
  }
  t.same([...ports], [second!.port], 'every tagged read went to the remaining replica');
});
