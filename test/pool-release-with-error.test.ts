/**
 * A connection that failed is closed, never handed on: releaseWithError aborts it (the backend goes away)
 * and its place goes to the next waiter on a new connection; a connection the server ends while idle
 * (pg_terminate_backend) leaves the pool by itself; one the server ends while leased is closed when it
 * comes back; a server that cannot be reached fails the waiting client with the reason.
 */
import t from 'tap';
import pg from 'pg';
import { backendPid, backendsOf, eventually, poolOn, query, startPrimary } from './fixtures/pool-fixture.js';
import { ServerPool } from '../src/pool/server-pool.js';
import { claimFreePort, releasePort } from '../src/cluster/local-node.js';
import { PgsplitError } from '../src/errors.js';
import { TEST_POOL } from './fixtures/pool-fixture.js';

t.setTimeout(180_000);
const cluster = await startPrimary(t);

async function terminate(pid: number): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port: cluster.primary.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  await c.query('SELECT pg_terminate_backend($1)', [pid]);
  await c.end();
}

t.test('releaseWithError closes the connection, even mid-statement, and the waiter gets a new one', async (t) => {
  const pool = poolOn(t, cluster, 'pool-error', { size: 1 });
  const a = await pool.acquire('a');
  const pid = await backendPid(a);
  // A statement still running when the client goes away.
  a.conn.socket.write(Buffer.from([0x51, 0, 0, 0, 23, ...Buffer.from('SELECT pg_sleep(60)'), 0]));
  const waiter = pool.acquire('b');
  pool.releaseWithError(a);
  const b = await waiter;
  const newPid = await backendPid(b);
  t.not(newPid, pid, 'a new connection');
  t.ok(await eventually(async () => !(await backendsOf(cluster, 'pool-error')).includes(pid)), 'the old backend ended (its statement cancelled)');
  t.match(pool.stats(), { closes: 1, connects: 2, serversActive: 1 });
  pool.releaseWithError(a);
  t.equal(pool.stats().closes, 1, 'a lease ends once');
  await pool.release(b);
});

t.test('an idle connection the server ends leaves the pool; the next client gets a working one', async (t) => {
  const pool = poolOn(t, cluster, 'pool-terminated', { size: 2 });
  const a = await pool.acquire('a');
  const pid = await backendPid(a);
  await pool.release(a);
  t.equal(pool.stats().serversIdle, 1);
  await terminate(pid);
  t.ok(await eventually(() => pool.stats().serversIdle === 0), 'gone from idle');
  const b = await pool.acquire('b');
  t.not(await backendPid(b), pid);
  t.equal((await query(b, 'SELECT 1')).rows[0]?.[0], '1');
  await pool.release(b);
});

t.test('a leased connection the server ends is closed when released, not handed on', async (t) => {
  const pool = poolOn(t, cluster, 'pool-lost-leased', { size: 1 });
  const a = await pool.acquire('a');
  const pid = await backendPid(a);
  await terminate(pid);
  await eventually(() => a.state.unusable !== null);
  t.equal(a.state.cleanupPlan().kind, 'close');
  await pool.release(a);
  const b = await pool.acquire('b');
  t.not(await backendPid(b), pid);
  await pool.release(b);
});

t.test('a connection released with part of a server message unread is closed', async (t) => {
  const pool = poolOn(t, cluster, 'pool-partial', { size: 1 });
  const a = await pool.acquire('a');
  const pid = await backendPid(a);
  // The header of a ReadyForQuery without its body, as if the session had stopped reading mid-message.
  a.conn.reader.push(Buffer.from([0x5a, 0, 0, 0, 5]));
  await pool.release(a);
  t.equal(a.state.unusable, 'part of a server message was still unread');
  const b = await pool.acquire('b');
  t.not(await backendPid(b), pid);
  await pool.release(b);
});

t.test('a server nobody answers on: the waiting client gets the connect error, and the pool keeps no slot for it', async (t) => {
  const port = await claimFreePort();
  t.teardown(() => releasePort(port));
  const pool = new ServerPool(
    { node: 'replica9', role: 'replica', database: 'postgres', user: 'postgres' },
    { name: 'replica9', configKey: 'replicas[8]', host: '127.0.0.1', port },
    { user: 'postgres', database: 'postgres' },
    { ...TEST_POOL, size: 1 },
  );
  t.teardown(() => pool.close());
  const e = await pool.acquire('a').catch((err: unknown) => err);
  t.ok(e instanceof PgsplitError);
  t.match((e as PgsplitError).message, /could not connect to replica9/);
  t.match(pool.stats(), { serversPending: 0, clientsWaiting: 0, serversIdle: 0 });
  pool.close();
  const closed = await pool.acquire('b').catch((err: unknown) => err);
  t.equal((closed as PgsplitError).code, 'SHUTTING_DOWN', 'a closed pool refuses at once');
});
