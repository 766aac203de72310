/**
 * The operator's view of the server pools, against a real server: a PoolRegistry whose leases are
 * acquired and released by hand, seen through the real admin console (psql, SHOW POOLS / SHOW SERVERS)
 * and the real metrics registry served over HTTP (/metrics). The console is reached through a small
 * listener that does the startup handshake and hands the socket to AdminConsole, as the proxy does for
 * the database `pgsplit`, so that the test needs no session wiring.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { AdminConsole, type AdminSource } from '../src/admin/admin-console.js';
import { PoolRegistry } from '../src/pool/pool-registry.js';
import type { PoolKey } from '../src/pool/server-pool.js';
import type { Lease } from '../src/pool/lease.js';
import { MetricsServer } from '../src/stats/metrics-server.js';
import { createProxyMetrics } from '../src/stats/proxy-metrics.js';
import { ProxyStats } from '../src/stats/proxy-stats.js';
import { backendPid, startPrimary, TEST_POOL } from './fixtures/pool-fixture.js';

t.setTimeout(180_000);
const run = promisify(execFile);
const cluster = await startPrimary(t);

const KEY: PoolKey = { node: 'primary', role: 'primary', database: 'postgres', user: 'postgres' };

function registryOn(t: Test, size: number): PoolRegistry {
  const registry = new PoolRegistry({ ...TEST_POOL, size });
  t.teardown(() => registry.close());
  return registry;
}

function poolOf(registry: PoolRegistry, key: PoolKey = KEY) {
  return registry.pool(key, { name: key.node, configKey: key.node, host: '127.0.0.1', port: cluster.primary.port },
    { user: key.user, database: key.database, application_name: 'pool-admin-metrics' });
}

/**
 * A listener that answers a client's startup with AuthenticationOk and gives the socket to an
 * AdminConsole over `src`, as the proxy does once an admin user is authenticated.
 */
async function consoleListener(t: Test, src: AdminSource): Promise<number> {
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      const len = buf.readInt32BE(0);
      if (buf.length < len) return;
      socket.off('data', onData);
      const rest = buf.subarray(len);
      const auth = Buffer.alloc(9);
      auth.write('R', 0);
      auth.writeInt32BE(8, 1);
      auth.writeInt32BE(0, 5);
      socket.write(auth);
      new AdminConsole(socket, src, 1 << 20).start(rest);
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/** Runs `sql` in psql on the console; rows as arrays of cells, the header first. */
async function psql(port: number, sql: string): Promise<string[][]> {
  const bin = (await run('pg_config', ['--bindir'])).stdout.trim();
  const { stdout } = await run(path.join(bin, 'psql'), ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'pgsplit', '-A', '-F', '|', '-P', 'footer=off', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { env: { ...process.env, PGSSLMODE: 'disable', PGGSSENCMODE: 'disable', PGCONNECT_TIMEOUT: '10' } });
  return stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
}

/** The rows as objects keyed by the header's column names. */
function records(table: string[][]): Array<Record<string, string>> {
  const [header = [], ...rows] = table;
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}

/** An admin source with nothing but the pools and the given session server links. */
function adminSource(registry: PoolRegistry | null, servers: AdminSource['servers'] = () => []): AdminSource {
  return {
    version: 'test', nodes: () => [], clients: () => [], servers, stats: () => [], config: () => [],
    setPaused: () => undefined, setDisabled: () => 'none', kill: () => 'none',
    reload: () => {
      throw new Error('no reload here');
    },
    pools: () => registry,
  };
}

/** The value of the sample `name` whose labels include every one of `labels` (undefined when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function scrape(t: Test, stats: ProxyStats, registry: PoolRegistry): Promise<string> {
  const metrics = new MetricsServer(createProxyMetrics({
    stats, clientStates: () => new Map(), liveClientBytes: () => ({ in: 0, out: 0 }), serverStates: () => new Map(), nodes: () => [], pools: () => registry,
  }), () => ({ ok: true, reason: 'test' }));
  const { port } = await metrics.listen('127.0.0.1', 0);
  t.teardown(() => metrics.close());
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.equal(res.status, 200);
  return res.text();
}

t.test('SHOW POOLS, SHOW SERVERS and the pool metrics follow leases, a waiter and releases', async (t) => {
  const registry = registryOn(t, 2);
  const stats = new ProxyStats();
  const pool = poolOf(registry);
  // Set after the pool exists: it must reach pools created before it too.
  registry.onWaited = (key, ms) => stats.poolWaited(key, ms);
  const a = await pool.acquire('client 7');
  const b = await pool.acquire('client 8');
  const pidA = await backendPid(a);
  const pidB = await backendPid(b);
  let served: Lease | null = null;
  const waiting = pool.acquire('client 9').then((l) => (served = l));
  t.equal(pool.stats().clientsWaiting, 1, 'a third client waits (pool.size 2)');

  // One session reports lease a's connection as its own (client 7); b is leased outside any session.
  let sessionLinks: ReturnType<AdminSource['servers']> = [{ node: 'primary', state: 'active', client: 7, backendPid: pidA }];
  const port = await consoleListener(t, adminSource(registry, () => sessionLinks));
  const pools = await psql(port, 'SHOW POOLS');
  t.same(pools[0], ['database', 'user', 'cl_active', 'cl_waiting', 'sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login', 'maxwait', 'maxwait_us', 'node', 'role'],
    "PgBouncer's columns in its order, then node and role");
  t.match(records(pools), [{ database: 'postgres', user: 'postgres', cl_active: '2', cl_waiting: '1', sv_active: '2', sv_idle: '0', sv_used: '0', sv_tested: '0', sv_login: '0', node: 'primary', role: 'primary' }]);
  const row = records(pools)[0];
  t.ok(Number(row?.maxwait) >= 0 && Number(row?.maxwait_us) >= 0 && Number(row?.maxwait_us) < 1_000_000, `maxwait ${row?.maxwait} s + ${row?.maxwait_us} us`);

  const servers = records(await psql(port, 'SHOW SERVERS'));
  t.same(servers.map((s) => [s.node, s.state, s.client, Number(s.backend_pid), s.user, s.pool]), [
    ['primary', 'active', '7', pidA, 'postgres', 'postgres/postgres'],
    ['primary', 'active', '', pidB, 'postgres', 'postgres/postgres'],
  ], "the session's connection gets its pool's login and label; the other leased one is listed once, with no client id");

  let text = await scrape(t, stats, registry);
  const labels = { pool: 'postgres/postgres', node: 'primary', role: 'primary' };
  t.equal(sample(text, 'pgsplit_pool_clients_waiting', labels), 1, 'pgsplit_pool_clients_waiting');
  t.equal(sample(text, 'pgsplit_pool_servers', { ...labels, state: 'active' }), 2);
  t.equal(sample(text, 'pgsplit_pool_servers', { ...labels, state: 'idle' }), 0);
  t.equal(sample(text, 'pgsplit_pool_wait_seconds_count', { node: 'primary', role: 'primary' }), 2, 'two leases handed out so far, none to the waiter yet');
  t.match(text, /# TYPE pgsplit_pool_wait_seconds histogram/);

  await pool.release(a);
  sessionLinks = [];
  await waiting;
  t.ok(served !== null, 'the waiter got the released connection');
  await pool.release(b);
  await pool.release(served as unknown as Lease);
  text = await scrape(t, stats, registry);
  t.equal(sample(text, 'pgsplit_pool_clients_waiting', labels), 0);
  t.equal(sample(text, 'pgsplit_pool_servers', { ...labels, state: 'idle' }), 2, 'both connections idle after the releases');
  t.equal(sample(text, 'pgsplit_pool_servers', { ...labels, state: 'active' }), 0);
  t.equal(sample(text, 'pgsplit_pool_wait_seconds_count', { node: 'primary', role: 'primary' }), 3, 'the waiter reported too');
  t.equal(sample(text, 'pgsplit_pool_wait_seconds_bucket', { node: 'primary', role: 'primary', le: '+Inf' }), 3);
  t.match(records(await psql(port, 'SHOW POOLS')), [{ cl_active: '0', cl_waiting: '0', sv_active: '0', sv_idle: '2', maxwait: '0', maxwait_us: '0' }]);
  const idle = records(await psql(port, 'SHOW SERVERS'));
  t.same(idle.map((s) => [s.state, s.client]), [['idle', ''], ['idle', '']], 'idle pooled connections are listed');
  t.same(new Set(idle.map((s) => Number(s.backend_pid))), new Set([pidA, pidB]));
});

t.test('a connection being opened shows as sv_login and as pending', async (t) => {
  // A server that never finishes the login: the connection opened for the waiting client stays pending.
  const registry = new PoolRegistry({ ...TEST_POOL, size: 1 }, () => new Promise(() => undefined));
  const stuck = registry.pool(KEY, { name: 'primary', host: '127.0.0.1', port: 1 }, { user: 'postgres', database: 'postgres' })
    .acquire('client 1').catch((e: unknown) => e);
  const port = await consoleListener(t, adminSource(registry));
  t.match(records(await psql(port, 'SHOW POOLS')), [{ cl_active: '0', cl_waiting: '1', sv_active: '0', sv_idle: '0', sv_tested: '0', sv_login: '1' }]);
  const text = await scrape(t, new ProxyStats(), registry);
  t.equal(sample(text, 'pgsplit_pool_servers', { pool: 'postgres/postgres', state: 'pending' }), 1);
  registry.close();
  t.match(await stuck, { code: 'SHUTTING_DOWN' }, 'the waiter is let go when the registry closes');
});

t.test('pins are counted by reason; without a registry SHOW POOLS is empty and the pool gauges have no series', async (t) => {
  const stats = new ProxyStats();
  stats.pinned('prepared-statement');
  stats.pinned('prepared-statement');
  stats.pinned('listen');
  const empty = registryOn(t, 1);
  const text = await scrape(t, stats, empty);
  t.equal(sample(text, 'pgsplit_pool_pins_total', { reason: 'prepared-statement' }), 2);
  t.equal(sample(text, 'pgsplit_pool_pins_total', { reason: 'listen' }), 1);
  t.match(text, /# TYPE pgsplit_pool_pins_total counter/);
  t.equal(sample(text, 'pgsplit_pool_clients_waiting', {}), undefined, 'no pool, no series');

  const port = await consoleListener(t, adminSource(null, () => [{ node: 'primary', state: 'idle', client: 3, backendPid: 42 }]));
  t.same(records(await psql(port, 'SHOW POOLS')), [], 'no rows while the proxy does not pool');
  t.same(records(await psql(port, 'SHOW SERVERS')).map((s) => [s.client, s.backend_pid, s.user, s.pool]), [['3', '42', '', '']],
    "a session's own (unpooled) connection: no login or pool shown");
  t.ok((await psql(port, 'SHOW HELP')).some((r) => r[0] === 'SHOW POOLS'), 'SHOW HELP lists SHOW POOLS');
});
