/**
 * The pool's own housekeeping, seen from the server (pg_stat_activity): pool.min_idle connections are
 * opened ahead of demand and kept; idle connections past pool.server_idle_timeout close down to min_idle;
 * a connection past pool.server_lifetime is closed while idle, or when released, and replaced when
 * needed. Bounds are generous: they say it happened, never how fast.
 */
import t from 'tap';
import { TEST_POOL, backendPid, backendsOf, eventually, poolOn, startPrimary } from './fixtures/pool-fixture.js';

t.setTimeout(180_000);
const cluster = await startPrimary(t);

t.test('pool.min_idle connections are opened before any client asks', async (t) => {
  const pool = poolOn(t, cluster, 'pool-min-idle', { size: 4, minIdle: 2 });
  t.ok(await eventually(async () => (await backendsOf(cluster, 'pool-min-idle')).length === 2), 'two backends');
  t.equal(pool.stats().serversIdle, 2);
  const lease = await pool.acquire('a');
  t.equal(lease.waitedMs, 0, 'served from idle');
  t.ok(await eventually(() => pool.stats().serversIdle === 2), 'and one more opened to keep two idle');
  await pool.release(lease);
  t.ok((await backendsOf(cluster, 'pool-min-idle')).length <= 4);
});

t.test('idle connections past pool.server_idle_timeout close, down to pool.min_idle', async (t) => {
  const pool = poolOn(t, cluster, 'pool-idle-timeout', { size: 4, minIdle: 1, serverIdleTimeoutMs: 200 });
  const leases = await Promise.all([pool.acquire('a'), pool.acquire('b'), pool.acquire('c')]);
  const pids = await Promise.all(leases.map((l) => backendPid(l)));
  await Promise.all(leases.map((l) => pool.release(l)));
  t.equal(pool.stats().connects, 3, 'three connections for the burst (min_idle is met by them)');
  t.ok(await eventually(async () => (await backendsOf(cluster, 'pool-idle-timeout')).length === 1), 'one left on the server');
  const left = await backendsOf(cluster, 'pool-idle-timeout');
  t.ok(pids.includes(left[0] ?? -1), 'one of the burst\'s connections: the one kept for min_idle was never closed and reopened');
  t.match(pool.stats(), { serversIdle: 1, connects: 3, closes: 2 });
});

t.test('without pool.server_idle_timeout idle connections stay', async (t) => {
  const pool = poolOn(t, cluster, 'pool-no-idle-timeout', { size: 2 });
  const leases = await Promise.all([pool.acquire('a'), pool.acquire('b')]);
  await Promise.all(leases.map((l) => pool.release(l)));
  // Three maintenance rounds at least (every second without timeouts).
  await new Promise((r) => setTimeout(r, 3500));
  t.equal((await backendsOf(cluster, 'pool-no-idle-timeout')).length, 2);
});

t.test('an idle connection past pool.server_lifetime is replaced; a leased one is closed on release', async (t) => {
  const pool = poolOn(t, cluster, 'pool-lifetime', { size: 1, serverLifetimeMs: 300 });
  const a = await pool.acquire('a');
  const first = await backendPid(a);
  await pool.release(a);
  t.ok(await eventually(async () => !(await backendsOf(cluster, 'pool-lifetime')).includes(first)), 'closed while idle');
  const b = await pool.acquire('b');
  const second = await backendPid(b);
  t.not(second, first, 'a new connection');
  await new Promise((r) => setTimeout(r, 400));
  await pool.release(b);
  t.equal(pool.stats().serversIdle, 0, 'past its lifetime when released: not kept');
  t.ok(await eventually(async () => !(await backendsOf(cluster, 'pool-lifetime')).includes(second)), 'and gone from the server');
});

t.test('a reload that lowers pool.size closes idle connections beyond it, and leased ones as they come back', async (t) => {
  const pool = poolOn(t, cluster, 'pool-resize', { size: 4 });
  const leases = await Promise.all([pool.acquire('a'), pool.acquire('b'), pool.acquire('c'), pool.acquire('d')]);
  await pool.release(leases[0]!);
  await pool.release(leases[1]!);
  t.match(pool.stats(), { serversIdle: 2, serversActive: 2 });
  pool.reconfigure({ ...TEST_POOL, size: 1 });
  t.match(pool.stats(), { serversIdle: 0, serversActive: 2 }, 'both idle ones closed: the two leased already exceed the new size');
  await pool.release(leases[2]!);
  t.match(pool.stats(), { serversIdle: 0 }, 'one still leased: this one is beyond the size');
  await pool.release(leases[3]!);
  t.match(pool.stats(), { serversIdle: 1, serversActive: 0 }, 'the last one is kept');
  t.ok(await eventually(async () => (await backendsOf(cluster, 'pool-resize')).length === 1), 'the server agrees');
  pool.reconfigure({ ...TEST_POOL, size: 3 });
  const more = await Promise.all([pool.acquire('e'), pool.acquire('f'), pool.acquire('g')]);
  t.equal(pool.stats().serversActive, 3, 'a larger size applies to the next acquires');
  for (const l of more) await pool.release(l);
});
