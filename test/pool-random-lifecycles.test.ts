/**
 * Many clients doing random things through one small pool on a real server: leases that leave settings,
 * LISTEN, an open transaction or an error behind, clients that give up waiting or go away, releases with
 * error. Whatever the order, the pool never holds more than pool.size connections, every client is
 * answered (a lease, a wait timeout or its own abort), nobody is left waiting while a connection is
 * idle, and every connection left in the pool is clean (checked on the server). Seeded: PGSPLIT_POOL_SEED
 * repeats a run.
 */
import t from 'tap';
import { backendsOf, eventually, poolOn, query, startPrimary } from './fixtures/pool-fixture.js';
import { Rng } from './fixtures/rng.js';
import type { Lease } from '../src/pool/lease.js';

t.setTimeout(300_000);
const cluster = await startPrimary(t);
const seed = Number(process.env.PGSPLIT_POOL_SEED ?? 20261207);

t.test(`random lifecycles (seed ${seed})`, async (t) => {
  const rng = new Rng(seed);
  const SIZE = 3;
  const pool = poolOn(t, cluster, 'pool-random', { size: SIZE, maxClientWaitMs: 15, serverIdleTimeoutMs: 300, minIdle: 1, preparedStatements: 4 });
  const outcomes = { leased: 0, timedOut: 0, aborted: 0 };
  let overSize = 0;
  let strandedWaiters = 0;
  const check = (): void => {
    const s = pool.stats();
    if (s.serversActive + s.serversIdle + s.serversPending > SIZE) overSize++;
    if (s.clientsWaiting > 0 && s.serversIdle > 0) strandedWaiters++;
  };
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, rng.int(4)));

  async function session(id: number): Promise<void> {
    for (let round = 0; round < 12; round++) {
      await pause();
      const giveUp = rng.chance(0.1) ? new AbortController() : null;
      const acquiring = pool.acquire(`client ${id}`, giveUp?.signal);
      check();
      if (giveUp !== null) setTimeout(() => giveUp.abort(new Error('gone')), rng.int(3));
      let lease: Lease;
      try {
        lease = await acquiring;
      } catch (e) {
        if ((e as Error).message === 'gone') outcomes.aborted++;
        else if ((e as { code?: string }).code === 'POOL_WAIT_TIMEOUT') outcomes.timedOut++;
        else throw e;
        continue;
      }
      outcomes.leased++;
      check();
      const what = rng.int(6);
      if (what === 0) {
        await query(lease, "SET work_mem = '1111kB'");
        lease.state.settingsChanged = true;
      } else if (what === 1) {
        await query(lease, 'LISTEN pool_random');
        lease.state.listening = true;
      } else if (what === 2) {
        await query(lease, 'BEGIN');
      } else if (what === 3) {
        await query(lease, 'SELECT 1/0');
      } else {
        await query(lease, 'SELECT pg_backend_pid()');
      }
      await pause();
      if (rng.chance(0.1)) pool.releaseWithError(lease);
      else await pool.release(lease);
      check();
    }
  }
  await Promise.all(Array.from({ length: 25 }, (_, i) => session(i)));

  t.equal(outcomes.leased + outcomes.timedOut + outcomes.aborted, 25 * 12, `every acquire answered: ${JSON.stringify(outcomes)}`);
  t.ok(outcomes.leased > 0);
  t.equal(overSize, 0, 'never more than pool.size connections');
  t.equal(strandedWaiters, 0, 'never a client waiting while a connection was idle');
  t.match(pool.stats(), { clientsActive: 0, clientsWaiting: 0, serversActive: 0 });
  const idle = pool.stats().serversIdle;
  t.ok(idle <= SIZE);
  // Every connection still in the pool is clean, on the server.
  const leases = await Promise.all(Array.from({ length: idle }, (_, i) => pool.acquire(`checker ${i}`)));
  for (const lease of leases) {
    const r = await query(lease, "SELECT current_setting('work_mem'), (SELECT count(*) FROM pg_catalog.pg_listening_channels())");
    t.not(r.rows[0]?.[0], '1111kB', 'settings reset');
    t.equal(r.rows[0]?.[1], '0', 'not listening');
    t.equal(r.status, 'I', 'not in a transaction');
  }
  for (const lease of leases) await pool.release(lease);
  t.ok(await eventually(async () => (await backendsOf(cluster, 'pool-random')).length === pool.stats().serversIdle + pool.stats().serversPending),
    'the server has exactly the pool\'s connections');
  t.ok(await eventually(() => pool.stats().serversIdle === 1), 'and the idle timeout brings them down to min_idle');
});
