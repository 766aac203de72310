/**
 * Client limits, each with its own SQLSTATE, and nobody else notices: limits.max_user_connections
 * (53300 for the user over it, others still connect), limits.idle_in_transaction_timeout (25P03, the
 * transaction rolled back on the server, busy and idle-outside-a-transaction sessions untouched), and
 * limits.startup_timeout closing 300 silent connections (57014) while a client keeps working.
 */
import t from 'tap';
import net from 'node:net';
import pg from 'pg';
import { startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';

t.setTimeout(180_000);

async function connect(fx: ProxyFixture, user = 'postgres'): Promise<{ client: pg.Client; fatal: Promise<Error & { code?: string }> }> {
  const client = new pg.Client({ host: '127.0.0.1', port: fx.port, user, database: 'postgres' });
  const fatal = new Promise<Error & { code?: string }>((resolve) => client.on('error', (e) => resolve(e)));
  await client.connect();
  return { client, fatal };
}

/** A well-behaved client's loop: counts answers and errors until stopped. */
function steadyClient(fx: ProxyFixture): { stop: () => Promise<{ ok: number; errors: string[] }> } {
  let running = true;
  const result = { ok: 0, errors: [] as string[] };
  const loop = (async () => {
    const c = await fx.client();
    while (running) {
      try {
        const r = await c.query<{ n: number }>('SELECT $1::int AS n', [result.ok]);
        if (r.rows[0]?.n !== result.ok) result.errors.push(`wrong answer ${String(r.rows[0]?.n)}`);
        result.ok++;
      } catch (e) {
        result.errors.push((e as Error).message);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return result;
    },
  };
}

t.test('limits.max_user_connections: the user over it gets 53300, other users still connect', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { limits: { max_user_connections: 2 } } });
  const a = await connect(fx);
  const b = await connect(fx);
  const third = await connect(fx).then(() => null, (e: Error & { code?: string }) => e);
  t.equal(third?.code, '53300', 'a third session of the same user is refused with 53300');
  t.match(third?.message, /too many connections for user "postgres".*2 per user \(limits\.max_user_connections\)/, `says which limit: ${third?.message}`);
  const other = await connect(fx, 'alice');
  t.equal((await other.client.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n, 1, 'another user connects and works');
  t.equal((await a.client.query<{ n: number }>('SELECT 2 AS n')).rows[0]?.n, 2, 'the sessions under the limit go on');
  await b.client.end();
  // The slot comes back once the closed session's socket is gone.
  let again: pg.Client | null = null;
  for (let i = 0; i < 50 && again === null; i++) {
    again = await connect(fx).then((r) => r.client, () => null);
    if (again === null) await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(again, 'after one closes, the user may connect again');
  t.ok((fx.proxy.stats.errorsBySqlState.get('53300') ?? 0) >= 1, 'the refusal is counted in errors by SQLSTATE');
  await Promise.all([a.client.end(), other.client.end(), again?.end()]);
});

t.test('limits.idle_in_transaction_timeout: FATAL 25P03, the transaction rolled back; nobody else affected', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { limits: { idle_in_transaction_timeout: '400ms' } } });
  await fx.cluster.primary.query('CREATE TABLE idle_tx (id int)');
  const idle = await connect(fx);
  await idle.client.query('BEGIN');
  await idle.client.query('INSERT INTO idle_tx VALUES (1)');
  const busy = await connect(fx);
  await busy.client.query('BEGIN');
  const outside = await connect(fx);
  await outside.client.query('SELECT 1');
  const started = Date.now();
  // The busy session keeps working inside its transaction with gaps shorter than the timeout, including
  // one statement that itself runs longer than the timeout (running is not idle).
  await busy.client.query('SELECT pg_sleep(0.6)');
  for (let i = 0; i < 6; i++) {
    await busy.client.query('INSERT INTO idle_tx VALUES (2)');
    await new Promise((r) => setTimeout(r, 150));
  }
  const err = await idle.fatal;
  t.equal(err.code, '25P03', 'the idle-in-transaction session gets 25P03');
  t.match(err.message, /idle-in-transaction timeout.*limits\.idle_in_transaction_timeout/, err.message);
  t.ok(Date.now() - started >= 350, 'not before the timeout');
  await busy.client.query('COMMIT');
  t.pass('the busy transaction committed');
  t.equal((await outside.client.query<{ n: number }>('SELECT 3 AS n')).rows[0]?.n, 3, 'a session idle outside a transaction is untouched');
  const rows = await fx.cluster.primary.query<{ id: number; n: string }>('SELECT id, count(*) AS n FROM idle_tx GROUP BY id ORDER BY id');
  t.same(rows.map((r) => [r.id, Number(r.n)]), [[2, 6]], "the closed session's INSERT was rolled back, the busy one's committed");
  await Promise.all([busy.client.end(), outside.client.end()]);
});

t.test('limits.startup_timeout: 300 silent connections are closed while a client keeps working', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { limits: { startup_timeout: '1s' } } });
  const steady = steadyClient(fx);
  const opened = Date.now();
  const silent = await Promise.all(Array.from({ length: 300 }, (_, i) => new Promise<{ closedAfterMs: number; answer: Buffer }>((resolve, reject) => {
    const s = net.connect(fx.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('connect', () => {
      // A third of them send half a startup packet, then nothing: still silent as far as startup goes.
      if (i % 3 === 0) s.write(Buffer.from([0, 0, 0, 40, 0, 3]));
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve({ closedAfterMs: Date.now() - opened, answer: Buffer.concat(chunks) }));
  })));
  const result = await steady.stop();
  const times = silent.map((s) => s.closedAfterMs).sort((a, b) => a - b);
  t.comment(`300 silent connections closed after ${times[0]}..${times[times.length - 1]} ms; steady client ${result.ok} queries, ${result.errors.length} errors`);
  t.equal(silent.length, 300, 'every silent connection was closed by pgsplit');
  t.ok((times[0] ?? 0) >= 900, 'not before limits.startup_timeout');
  const fatal = silent.filter((s) => s.answer[0] === 0x45 && s.answer.includes(Buffer.from('57014')));
  t.equal(fatal.length, 300, 'each got FATAL 57014 (canceling authentication due to timeout) before the close');
  t.same(result.errors, [], 'the well-behaved client saw no error');
  t.ok(result.ok > 10, `and kept working meanwhile (${result.ok} queries)`);
});
