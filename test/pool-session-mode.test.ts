/**
 * pool.mode session, against real servers: clients borrow a pooled server connection for their session
 * and give it back when they leave. The next client gets the same backend, with its own startup
 * parameters applied and nothing of the previous client's left (settings, temporary tables, LISTEN,
 * prepared statements); more clients than pool.size wait for a connection instead of opening more.
 */
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

t.test('session mode: one backend serves clients in turn, each with its own startup settings and a clean slate', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { pool: { mode: 'session', size: 1 } } });

  const a = await fx.client({ applicationName: 'first', options: '-c search_path=pg_catalog -c extra_float_digits=2' });
  const pidA = Number((await a.query('SELECT pg_backend_pid() AS p')).rows[0].p);
  t.same((await a.query('SHOW application_name')).rows[0], { application_name: 'first' }, 'startup application_name applied');
  t.same((await a.query('SHOW search_path')).rows[0], { search_path: 'pg_catalog' }, 'options -c search_path applied');
  t.same((await a.query('SHOW extra_float_digits')).rows[0], { extra_float_digits: '2' }, 'options -c extra_float_digits applied');
  await a.query('SET work_mem = \'7MB\'');
  await a.query('CREATE TEMP TABLE left_behind (x int)');
  await a.query('LISTEN pool_channel');
  await a.query('PREPARE left_stmt AS SELECT 1');
  await a.end();

  // The next client waits for the one connection (pool.size 1) until the first one's is back and clean.
  const b = await fx.client({ applicationName: 'second' });
  const pidB = Number((await b.query('SELECT pg_backend_pid() AS p')).rows[0].p);
  t.equal(pidB, pidA, 'the second client got the same backend: it was pooled, not closed');
  t.same((await b.query('SHOW application_name')).rows[0], { application_name: 'second' }, 'its own application_name');
  t.not((await b.query('SHOW search_path')).rows[0].search_path, 'pg_catalog', 'the first client\'s search_path is gone');
  t.not((await b.query('SHOW work_mem')).rows[0].work_mem, '7MB', 'the first client\'s SET is gone');
  t.equal((await b.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'left_behind'")).rows[0].n, 0, 'its temporary table is gone');
  t.equal((await b.query('SELECT count(*)::int AS n FROM pg_listening_channels()')).rows[0].n, 0, 'its LISTEN is gone');
  t.equal((await b.query('SELECT count(*)::int AS n FROM pg_prepared_statements')).rows[0].n, 0, 'its prepared statement is gone');
  await b.end();
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
