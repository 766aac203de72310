/**
 * pool.max_client_wait: a client that waits longer for a connection than the setting allows gets an error
 * naming the pool, the key and what to do (SQLSTATE 53300, an ERROR: the client's session may go on), and
 * leaves the queue: the connection that comes free later goes to the next waiter or idle, never to a
 * client that has given up. 0 waits as long as it takes.
 */
import t from 'tap';
import { poolOn, startPrimary } from './fixtures/pool-fixture.js';
import { PgsplitError } from '../src/errors.js';

t.setTimeout(180_000);
const cluster = await startPrimary(t);

t.test('a client waiting past pool.max_client_wait gets POOL_WAIT_TIMEOUT naming the pool', async (t) => {
  const pool = poolOn(t, cluster, 'pool-wait', { size: 1, maxClientWaitMs: 200 });
  const holder = await pool.acquire('holder');
  const e = await pool.acquire('late').then(() => null, (err: unknown) => err);
  t.ok(e instanceof PgsplitError, 'rejected');
  const err = e as PgsplitError;
  t.equal(err.code, 'POOL_WAIT_TIMEOUT');
  t.equal(err.sqlState, '53300');
  t.equal(err.severity, 'ERROR', 'the client may try again');
  t.match(err.message, /^no server connection of pool primary \(primary\) database "postgres" user "postgres" came free within \d+ ms \(pool\.max_client_wait\): all 1 \(pool\.size\) were busy$/);
  t.match(err.hint ?? '', /raise pool\.size/);
  t.match(pool.stats(), { waitTimeouts: 1, clientsWaiting: 0, clientsActive: 1 });
  await pool.release(holder);
  t.match(pool.stats(), { serversIdle: 1, clientsActive: 0 }, 'the freed connection went idle, not to the client that gave up');
  const next = await pool.acquire('next');
  t.equal(next.server.id, holder.server.id);
  await pool.release(next);
});

t.test('a waiter served before its limit is not failed later', async (t) => {
  const pool = poolOn(t, cluster, 'pool-wait-served', { size: 1, maxClientWaitMs: 60_000 });
  const holder = await pool.acquire('holder');
  const waiting = pool.acquire('waiter');
  t.equal(pool.stats().clientsWaiting, 1);
  await pool.release(holder);
  const lease = await waiting;
  t.equal(lease.identity, 'waiter');
  t.equal(pool.stats().waitTimeouts, 0);
  await pool.release(lease);
});

t.test('of two waiters, the one that timed out leaves the queue; the other is served in order', async (t) => {
  const pool = poolOn(t, cluster, 'pool-wait-two', { size: 1, maxClientWaitMs: 300 });
  const holder = await pool.acquire('holder');
  const first = pool.acquire('first').then(() => 'served', () => 'timed out');
  t.equal(await first, 'timed out');
  const second = pool.acquire('second');
  await pool.release(holder);
  t.equal((await second).identity, 'second');
  await pool.release(await second);
});

t.test('a client that goes away while waiting (its AbortSignal) leaves the queue at once', async (t) => {
  const pool = poolOn(t, cluster, 'pool-wait-abort', { size: 1 });
  const holder = await pool.acquire('holder');
  const gone = new AbortController();
  const waiting = pool.acquire('gone', gone.signal).then(() => 'served', (e: Error) => e.message);
  const next = pool.acquire('next');
  t.equal(pool.stats().clientsWaiting, 2);
  gone.abort(new Error('client disconnected'));
  t.equal(await waiting, 'client disconnected');
  t.equal(pool.stats().clientsWaiting, 1);
  await pool.release(holder);
  t.equal((await next).identity, 'next', 'the connection went to the client still waiting');
  await pool.release(await next);
  const already = await pool.acquire('late', AbortSignal.abort(new Error('already gone'))).then(() => 'served', (e: Error) => e.message);
  t.equal(already, 'already gone');
});
