/**
 * pool.mode transaction parks a client's idle connection between its transactions instead of giving it
 * back: the client's next transaction takes it back at no cost, unless another client needed a connection
 * first, when the pool reclaims it (the client lets go as it would have, and the pool's cleanup runs). Real
 * servers, real clients (pg); backends are told apart by pg_backend_pid() and counted in pg_stat_activity.
 */
import t, { type Test } from 'tap';
import { startCluster, startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import { clientBackendPid as pid, eventually } from './fixtures/pool-fixture.js';
import type { LocalCluster, LocalNode } from '../src/cluster/local-cluster.js';

t.setTimeout(180_000);

const TAGGED = '-c pgsplit.route=replica';

/** pgsplit's pooled connections to `node` (client backends but the counting one and the monitor's). */
async function backends(node: LocalNode): Promise<number[]> {
  return (await node.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'
    AND datname = 'postgres' AND pid <> pg_backend_pid() AND application_name <> 'pgsplit-monitor' ORDER BY pid`)).map((r) => r.pid);
}


let cluster: LocalCluster;
t.before(async () => {
  cluster = await startCluster(t, { replicas: 1 });
});

function proxyWith(t: Test, pool: Record<string, unknown>): Promise<ProxyFixture> {
  return startProxy(t, { reuseCluster: cluster, config: { pool: { mode: 'transaction', ...pool } } });
}

t.test('two clients taking turns each keep their own backend, counted idle between their statements', async (t) => {
  const fx = await proxyWith(t, { size: 4 });
  const a = await fx.client();
  const b = await fx.client();
  const seen = [new Set<number>(), new Set<number>()];
  // Strictly alternating: a connection given back at each statement would go to the other client next
  // (the pool lends the newest idle one first).
  for (let i = 0; i < 20; i++) {
    seen[0]?.add(await pid(a));
    seen[1]?.add(await pid(b));
  }
  await a.query('BEGIN');
  seen[0]?.add(await pid(a));
  await a.query('COMMIT');
  t.same(seen.map((s) => s.size), [1, 1], 'each client ran every statement on one backend');
  t.not([...seen[0] ?? []][0], [...seen[1] ?? []][0], 'not the same one');
  const primary = fx.proxy.pools.rows().find((r) => r.role === 'primary');
  t.match(primary, { clientsActive: 0, serversActive: 0, serversIdle: 2 }, 'SHOW POOLS: both connections idle while their clients are');
  t.ok(fx.proxy.pools.servers().every((s) => s.state === 'idle'), 'SHOW SERVERS: idle');
});

t.test("a tagged client's replica connection stays with it too", async (t) => {
  const fx = await proxyWith(t, { size: 4 });
  const a = await fx.client({ options: TAGGED });
  const b = await fx.client({ options: TAGGED });
  const seen = [new Set<number>(), new Set<number>()];
  for (let i = 0; i < 20; i++) {
    const ra = (await a.query<{ p: number; r: boolean }>('SELECT pg_backend_pid() AS p, pg_is_in_recovery() AS r')).rows[0];
    const rb = (await b.query<{ p: number; r: boolean }>('SELECT pg_backend_pid() AS p, pg_is_in_recovery() AS r')).rows[0];
    t.equal(ra?.r && rb?.r, true, 'read on the replica');
    seen[0]?.add(ra?.p ?? -1);
    seen[1]?.add(rb?.p ?? -1);
    if (!ra?.r || !rb?.r) break;
  }
  t.same(seen.map((s) => s.size), [1, 1], 'each tagged client read on one replica backend');
});

t.test('with one connection, clients take it from each other at once; what each SET stays its own', async (t) => {
  // A parked connection that were not lent would make the other client wait past max_client_wait.
  const fx = await proxyWith(t, { size: 1, max_client_wait: '2s' });
  const a = await fx.client();
  const b = await fx.client();
  await a.query("SET work_mem = '1MB'");
  const first = await pid(a);
  for (let i = 0; i < 10; i++) {
    t.equal((await b.query<{ work_mem: string }>('SHOW work_mem')).rows[0]?.work_mem, '4MB', "b never sees a's SET");
    t.equal((await a.query<{ work_mem: string }>('SHOW work_mem')).rows[0]?.work_mem, '1MB', 'a keeps it');
  }
  t.equal(await pid(b), first, 'one backend served both');
  t.same(await backends(cluster.primary), [first], 'and pgsplit never opened another');
});

t.test('a client of another login waiting for a full pool gets the room of a parked connection', async (t) => {
  const fx = await proxyWith(t, { size: 1, max_client_wait: '5s' });
  const a = await fx.client();
  const first = await pid(a);
  // Other startup parameters, another login: the parked connection cannot serve it; it is closed to make room.
  const b = await fx.client({ options: '-c work_mem=2MB' });
  t.equal((await b.query<{ work_mem: string }>('SHOW work_mem')).rows[0]?.work_mem, '2MB', 'b runs with its own startup value');
  const second = await pid(b);
  t.not(second, first, 'on a connection opened for its login');
  t.equal((await a.query<{ work_mem: string }>('SHOW work_mem')).rows[0]?.work_mem, '4MB', 'a runs again, on a connection of its own login');
  t.ok(await eventually(async () => (await backends(cluster.primary)).length === 1, 15_000), 'never more than pool.size connections stay open');
});

t.test('a parked connection the server ends: the next statement runs on another one', async (t) => {
  const fx = await proxyWith(t, { size: 2 });
  const a = await fx.client();
  const before = await pid(a);
  await cluster.primary.query('SELECT pg_terminate_backend($1)', [before]);
  t.ok(await eventually(async () => !(await backends(cluster.primary)).includes(before), 15_000), 'the backend is gone');
  const after = await pid(a);
  t.ok(after > 0 && after !== before, 'the client saw no error and runs on a new backend');
  t.equal(fx.proxy.pools.rows().find((r) => r.role === 'primary')?.serversIdle, 1, 'the ended one left the pool');
});

t.test('pool.server_idle_timeout closes a connection parked that long', async (t) => {
  const fx = await proxyWith(t, { size: 2, server_idle_timeout: '200ms', min_idle: 0 });
  const a = await fx.client();
  const before = await pid(a);
  t.ok(await eventually(async () => (await backends(cluster.primary)).length === 0, 15_000), 'closed while its client stayed idle');
  const after = await pid(a);
  t.ok(after > 0 && after !== before, 'the client goes on with a new one');
});
