/**
 * node.sessions (the count the replica choice balances on: sessions attached to a replica as theirs)
 * through real sessions (Session's Binding): tagged sessions opened one by one spread over two replicas,
 * a replica taken out of rotation sends its sessions to the other one at their next read (the count moves
 * with them), and every count is back to 0 once the clients are gone.
 */
import t from 'tap';
import type pg from 'pg';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

const TAGGED = '-c pgsplit.route=replica';

t.test('replica counts follow sessions as they attach, move and leave', async (t) => {
  const fx = await startProxy(t, { replicas: 2, config: { routing: { max_lag: '30s' }, monitor: { interval: '100ms' } } });
  const [r1, r2] = fx.proxy.nodes.replicas;
  if (r1 === undefined || r2 === undefined) throw new Error('two replicas expected');
  const counts = (): number[] => [r1.sessions, r2.sessions];
  t.same(counts(), [0, 0]);

  // One by one: each attaches its home replica (the least loaded, ties in configuration order) at startup.
  const clients: pg.Client[] = [];
  for (let i = 0; i < 4; i++) clients.push(await fx.client({ options: TAGGED, applicationName: `count-${i}` }));
  t.same(counts(), [2, 2], 'four tagged sessions, two on each replica');

  const readsOnReplica = async (): Promise<boolean[]> =>
    Promise.all(clients.map(async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r === true));
  t.same(await readsOnReplica(), [true, true, true, true]);
  t.same(counts(), [2, 2], 'reads keep each session on its replica');

  // Out of rotation: the sessions on it move to the other replica at their next read, and so does the count.
  r1.disabled = true;
  t.same(await readsOnReplica(), [true, true, true, true]);
  t.same(counts(), [0, 4], 'the count moved with the sessions');
  r1.disabled = false;

  // Leaving: each session's count goes with it.
  await Promise.all(clients.slice(0, 2).map((c) => c.end()));
  while (fx.proxy.sessionCount > 2) await new Promise((res) => setTimeout(res, 20));
  t.same(counts(), [0, 2]);
  await Promise.all(clients.slice(2).map((c) => c.end()));
  while (fx.proxy.sessionCount > 0) await new Promise((res) => setTimeout(res, 20));
  t.same(counts(), [0, 0], 'no session left, no count left');
});
