/**
 * pool.mode session, against real servers: clients borrow a pooled server connection for their session
 * and give it back when they leave. The next client gets the same backend, with its own startup
 * parameters applied and nothing of the previous client's left (settings, temporary tables, LISTEN,
 * prepared statements); more clients than pool.size wait for a connection instead of opening more.
 */
import net from 'node:net';
import t from 'tap';
import { sendCancel, startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

t.test('session mode: one backend serves clients in turn, each with its own startup settings and a clean slate', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'session', size: 1 } } });

  const a = await fx.client({ applicationName: 'first', options: '-c search_path=pg_catalog -c extra_float_digits=2' });
  const pidA = Number((await a.query('SELECT pg_backend_pid() AS p')).rows[0].p);
  t.same((await a.query('SHOW application_name')).rows[0], { application_name: 'first' }, 'startup application_name applied');
  t.same((await a.query('SHOW search_path')).rows[0], { search_path: 'pg_catalog' }, 'options -c search_path applied');
  t.same((await a.query('SHOW extra_float_digits')).rows[0], { extra_float_digits: '2' }, 'options -c extra_float_digits applied');
  await a.query('SET work_mem = \'7MB\'');
  await a.query('SET search_path = public');
  await a.query('LISTEN pool_channel');
  await a.query('PREPARE left_stmt AS SELECT 1');
  await a.end();

  // The next client, with the same startup parameters but its name, waits for the one connection
  // (pool.size 1) until the first one's is back and clean.
  const b = await fx.client({ applicationName: 'second', options: '-c search_path=pg_catalog -c extra_float_digits=2' });
  const pidB = Number((await b.query('SELECT pg_backend_pid() AS p')).rows[0].p);
  t.equal(pidB, pidA, 'the second client got the same backend: it was pooled, not closed');
  t.same((await b.query('SHOW application_name')).rows[0], { application_name: 'second' }, 'its own application_name');
  t.same((await b.query('SHOW search_path')).rows[0], { search_path: 'pg_catalog' }, 'its startup search_path, not the first client\'s SET');
  t.not((await b.query('SHOW work_mem')).rows[0].work_mem, '7MB', 'the first client\'s SET is gone');
  t.equal((await b.query('SELECT count(*)::int AS n FROM pg_listening_channels()')).rows[0].n, 0, 'its LISTEN is gone');
  t.equal((await b.query('SELECT count(*)::int AS n FROM pg_prepared_statements')).rows[0].n, 0, 'its prepared statement is gone');
  // A backend where a temporary object was made keeps its temporary schema past DISCARD ALL: closed, not lent again.
  await b.query('CREATE TEMP TABLE left_behind (x int)');
  await b.end();
  const b2 = await fx.client({ applicationName: 'second', options: '-c search_path=pg_catalog -c extra_float_digits=2' });
  const pidB2 = Number((await b2.query('SELECT pg_backend_pid() AS p')).rows[0].p);
  t.not(pidB2, pidA, 'after a temporary table, the next client of the same login got a new backend');
  t.equal((await b2.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'left_behind'")).rows[0].n, 0, 'no temporary table there');
  await b2.end();

  // Other startup parameters: a connection logged in with them (the other login's closed to make way).
  const c = await fx.client({ applicationName: 'third' });
  const pidC = Number((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p);
  t.not(pidC, pidB2, 'a client with other startup parameters got a connection logged in with its own');
  t.not((await c.query('SHOW search_path')).rows[0].search_path, 'pg_catalog', 'no startup search_path of the others');
  t.same((await c.query('SHOW extra_float_digits')).rows[0], { extra_float_digits: '1' }, 'the server default extra_float_digits');
  await c.end();
});

t.test('session mode: 12 clients through pool.size 2 open at most 2 backends and all finish', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'session', size: 2 } } });
  const pids = new Set<number>();
  const errors: string[] = [];
  await Promise.all(Array.from({ length: 12 }, async (_, i) => {
    try {
      const c = await fx.client({ applicationName: `c${i}` });
      const r = await c.query('SELECT pg_backend_pid() AS p, current_setting(\'application_name\') AS a');
      pids.add(Number(r.rows[0].p));
      if (r.rows[0].a !== `c${i}`) errors.push(`client ${i} saw application_name ${String(r.rows[0].a)}`);
      await c.end();
    } catch (e) {
      errors.push(String(e));
    }
  }));
  t.same(errors, [], 'no errors, each client saw its own application_name');
  t.ok(pids.size <= 2, `backends used: ${pids.size} (at most pool.size 2)`);
  t.same(fx.proxy.pools.rows().map((r) => [r.node, r.database]), [['primary', 'postgres']], 'one pool: primary, database postgres');
});

t.test('session mode: a bad startup setting is refused as a direct connection refuses it', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'session', size: 1 } } });
  await t.rejects(fx.client({ options: '-c no_such_setting_here=1' }), /unrecognized configuration parameter|no_such_setting_here/);
  const c = await fx.client();
  t.same((await c.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the pool still serves the next client');
  await c.end();
});

t.test('session mode: a startup value the previous client changed back by SET is applied again', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'session', size: 1 } } });
  const a = await fx.client({ applicationName: 'same' });
  // The server reports the change; the pool must know the connection no longer holds 'same'.
  await a.query("SET application_name = ''");
  await a.end();
  const b = await fx.client({ applicationName: 'same' });
  t.same((await b.query('SHOW application_name')).rows[0], { application_name: 'same' }, 'the next client with the same startup value has it');
  await b.end();
});

t.test('session mode: a cancel request stops the statement of the client that sent it, not the other one\'s', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'session', size: 2 } } });
  const a = await fx.client();
  const b = await fx.client();
  const sleepA = a.query('SELECT pg_sleep(20)').then(() => null, (e: Error & { code?: string }) => e);
  const sleepB = b.query('SELECT pg_sleep(3)').then(() => null, (e: Error & { code?: string }) => e);
  while (Number((await fx.cluster.primary.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%' AND state = 'active'"))[0]?.n) < 2) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await sendCancel(fx.port, a);
  t.equal((await sleepA)?.code, '57014', 'the client that asked has its statement cancelled');
  t.equal(await sleepB, null, 'the other client\'s statement on the same pool ran to its end');
});

t.test('session mode: a client that leaves while waiting for a connection gives up its place', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'session', size: 1 } } });
  const holder = await fx.client();
  await holder.query('SELECT 1');
  // A raw client that sends its startup and leaves while its session waits for the one connection.
  const raw = net.connect({ host: '127.0.0.1', port: fx.port });
  await new Promise<void>((resolve) => raw.on('connect', () => resolve()));
  const params = Buffer.from('user\0postgres\0database\0postgres\0\0');
  const startup = Buffer.alloc(8 + params.length);
  startup.writeInt32BE(startup.length, 0);
  startup.writeInt32BE(196608, 4);
  params.copy(startup, 8);
  raw.write(startup);
  while ((fx.proxy.pools.rows()[0]?.clientsWaiting ?? 0) === 0) await new Promise((r) => setTimeout(r, 20));
  raw.destroy();
  while ((fx.proxy.pools.rows()[0]?.clientsWaiting ?? 0) > 0) await new Promise((r) => setTimeout(r, 20));
  t.pass('the waiter left the queue when its client went away');
  await holder.end();
  const next = await fx.client();
  t.same((await next.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the next client gets the connection');
  await next.end();
});
