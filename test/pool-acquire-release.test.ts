/**
 * Acquire and release against a real server: many clients share pool.size connections, waiters are
 * served in arrival order, and a released connection is cleaned with the mildest statement that undoes
 * what its client did (RESET ALL keeps pgsplit's prepared statements, DISCARD ALL after LISTEN), or closed
 * when left inside a transaction. pg_stat_activity says how many connections the server saw.
 */
import t from 'tap';
import { backendPid, backendsOf, eventually, poolOn, query, startPrimary } from './fixtures/pool-fixture.js';
import type { Lease } from '../src/pool/lease.js';
import { PoolRegistry } from '../src/pool/pool-registry.js';
import { poolSettingsFrom } from '../src/pool/server-pool.js';
import { resolveConfig } from '../src/config/load-config.js';
import { errors, type PgsplitError } from '../src/errors.js';

t.setTimeout(180_000);
const cluster = await startPrimary(t);

t.test('60 clients, pool.size 3: every client runs, on at most 3 server connections', async (t) => {
  const pool = poolOn(t, cluster, 'pool-many', { size: 3 });
  const pids = new Set<number>();
  let most = 0;
  await Promise.all(Array.from({ length: 60 }, async (_, i) => {
    const lease = await pool.acquire(`client ${i}`);
    pids.add(await backendPid(lease));
    most = Math.max(most, pool.stats().serversActive + pool.stats().serversIdle + pool.stats().serversPending);
    await pool.release(lease);
  }));
  t.ok(pids.size <= 3 && pids.size >= 1, `${pids.size} distinct backends`);
  t.ok(most <= 3, 'never more than pool.size connections');
  const backends = await backendsOf(cluster, 'pool-many');
  t.ok(backends.length <= 3, `pg_stat_activity shows ${backends.length}`);
  t.ok([...pids].every((p) => backends.includes(p)), 'the connections the clients used, all still open');
  // A connection opened for a waiter that a released one served first goes idle unused: connects may exceed pids.
  const s = pool.stats();
  t.match(s, { clientsActive: 0, clientsWaiting: 0, serversActive: 0, serversIdle: backends.length, connects: backends.length, closes: 0 });
});

t.test('waiters are served first come, first served', async (t) => {
  const pool = poolOn(t, cluster, 'pool-fifo', { size: 1 });
  const first = await pool.acquire('first');
  const order: string[] = [];
  const waiting = ['b', 'c', 'd'].map((name) => pool.acquire(name).then((lease) => {
    order.push(name);
    return lease;
  }));
  t.equal(pool.stats().clientsWaiting, 3);
  t.equal(pool.stats().clientsActive, 1);
  t.ok(pool.stats().longestWaitMs >= 0);
  await pool.release(first);
  const leases: Lease[] = [];
  for (const w of waiting) {
    const lease = await w;
    leases.push(lease);
    t.ok(lease.waitedMs >= 0);
    await pool.release(lease);
  }
  t.same(order, ['b', 'c', 'd']);
  t.same(new Set(leases.map((l) => l.server.id)).size, 1, 'one connection for all of them');
});

t.test('after a SET the connection is RESET before the next client, and pgsplit\'s prepared statement survives', async (t) => {
  const pool = poolOn(t, cluster, 'pool-reset', { size: 1 });
  const a = await pool.acquire('a');
  const pid = await backendPid(a);
  t.equal((await query(a, "SET work_mem = '1234kB'")).error, null);
  a.state.settingsChanged = true;
  t.equal((await query(a, 'PREPARE pgsplit_1 AS SELECT 1')).error, null);
  a.state.prepared.add('pgsplit_1');
  await pool.release(a);
  const b = await pool.acquire('b');
  t.equal(await backendPid(b), pid, 'the same connection');
  t.not((await query(b, 'SHOW work_mem')).rows[0]?.[0], '1234kB', 'the setting is gone');
  t.same((await query(b, 'SELECT name FROM pg_prepared_statements')).rows, [['pgsplit_1']], 'the prepared statement is not');
  t.same(b.state.prepared.list(), ['pgsplit_1']);
  await pool.release(b);
});

t.test('after LISTEN the connection gets DISCARD ALL: no channel, no prepared statement left', async (t) => {
  const pool = poolOn(t, cluster, 'pool-discard', { size: 1 });
  const a = await pool.acquire('a');
  await query(a, 'LISTEN pool_channel');
  a.state.listening = true;
  await query(a, 'PREPARE pgsplit_1 AS SELECT 1');
  a.state.prepared.add('pgsplit_1');
  await pool.release(a);
  const b = await pool.acquire('b');
  t.same((await query(b, 'SELECT pg_catalog.pg_listening_channels()')).rows, [], 'not listening');
  t.same((await query(b, 'SELECT count(*) FROM pg_prepared_statements')).rows, [['0']]);
  t.equal(b.state.prepared.size, 0, 'and the state knows it');
  t.ok(b.state.clean);
  await pool.release(b);
});

t.test('a connection released inside a transaction is closed, not handed on', async (t) => {
  const pool = poolOn(t, cluster, 'pool-in-tx', { size: 1 });
  const a = await pool.acquire('a');
  const pid = await backendPid(a);
  const begun = await query(a, 'BEGIN');
  t.equal(begun.status, 'T');
  await pool.release(a);
  t.equal(pool.stats().closes, 1);
  const b = await pool.acquire('b');
  t.not(await backendPid(b), pid, 'a new connection');
  t.ok(await eventually(async () => !(await backendsOf(cluster, 'pool-in-tx')).includes(pid)), 'the old backend is gone from pg_stat_activity');
  await pool.release(b);
  t.equal(pool.release(b) instanceof Promise, true, 'releasing twice is a no-op');
  t.equal(pool.stats().serversIdle, 1);
});

t.test('the registry: one pool per (node, role, database, user), SHOW POOLS rows, a removed node\'s pools closed', async (t) => {
  const registry = new PoolRegistry(poolSettingsFrom(resolveConfig({ primary: cluster.primary.url(), pool: { size: 2 }, limits: { connect_timeout: '3s' } })));
  t.teardown(() => registry.close());
  const target = { name: 'primary', host: '127.0.0.1', port: cluster.primary.port };
  const key = { node: 'primary', role: 'primary', database: 'postgres', user: 'postgres' } as const;
  const a = registry.pool(key, target, { user: 'postgres', database: 'postgres', application_name: 'pool-registry' });
  t.equal(registry.pool({ ...key }, target, {}), a, 'the same key: the same pool');
  const other = registry.pool({ ...key, database: 'template1' }, target, { user: 'postgres', database: 'template1', application_name: 'pool-registry' });
  t.not(other, a);
  const lease = await a.acquire('c1');
  t.equal((await query(lease, 'SELECT current_database()')).rows[0]?.[0], 'postgres');
  const rows = registry.rows();
  t.equal(rows.length, 2);
  t.match(rows[0], { node: 'primary', role: 'primary', database: 'postgres', user: 'postgres', clientsActive: 1, serversActive: 1, clientsWaiting: 0 });
  t.match(rows[1], { database: 'template1', clientsActive: 0, serversIdle: 0 });
  await a.release(lease);
  registry.closeNode('primary', errors.shuttingDown());
  t.same(registry.rows(), []);
  t.equal(((await a.acquire('late').catch((e: unknown) => e)) as PgsplitError).code, 'SHUTTING_DOWN', 'a closed pool refuses');
  t.ok(await eventually(async () => (await backendsOf(cluster, 'pool-registry')).length === 0), 'and its connections are gone');
});

t.test('pool settings come from pool.* and limits.connect_timeout', async (t) => {
  const config = resolveConfig({ primary: 'postgres://u@h/db', pool: { mode: 'session', size: 7, server_lifetime: 0 }, limits: { connect_timeout: '2s' } });
  t.strictSame(poolSettingsFrom(config), {
    size: 7, minIdle: 0, maxClientWaitMs: 120_000, serverIdleTimeoutMs: 600_000, serverLifetimeMs: 0, preparedStatements: 200, connectTimeoutMs: 2000,
  });
});
