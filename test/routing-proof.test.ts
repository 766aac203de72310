import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

t.test('tagged reads reach a replica, everything else the primary', async (t) => {
  const fx = await startProxy(t);
  await fx.cluster.primary.query('CREATE TABLE proof (id int primary key, note text)');
  await fx.cluster.waitForReplication();

  const untagged = await fx.client();
  const r1 = await untagged.query('SELECT pg_is_in_recovery() AS r');
  t.equal(r1.rows[0].r, false, 'untagged session reads the primary');

  const tagged = await fx.client({ options: '-c pgsplit.route=replica' });
  const r2 = await tagged.query('SELECT pg_is_in_recovery() AS r');
  t.equal(r2.rows[0].r, true, 'tagged session (startup option) reads a replica');

  const ins = await tagged.query("INSERT INTO proof VALUES (1, 'from tagged') RETURNING pg_is_in_recovery() AS r");
  t.equal(ins.rows[0].r, false, 'a tagged INSERT runs on the primary');
  const onPrimary = await fx.cluster.primary.query<{ note: string }>('SELECT note FROM proof WHERE id = 1');
  t.equal(onPrimary[0]?.note, 'from tagged', 'the row is on the primary');

  await tagged.query('BEGIN');
  await tagged.query("INSERT INTO proof VALUES (2, 'in tx')");
  const inTx = await tagged.query('SELECT note, pg_is_in_recovery() AS r FROM proof WHERE id = 2');
  t.equal(inTx.rows[0]?.note, 'in tx', 'a read inside the write transaction sees its own row');
  t.equal(inTx.rows[0]?.r, false, 'and runs on the primary');
  await tagged.query('COMMIT');
  const after = await tagged.query('SELECT pg_is_in_recovery() AS r');
  t.equal(after.rows[0].r, true, 'after COMMIT the tagged session reads a replica again');

  const viaSet = await fx.client();
  await viaSet.query("SET pgsplit.route = 'replica'");
  t.equal((await viaSet.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'SET pgsplit.route tags the session');
  t.equal((await viaSet.query('SHOW pgsplit.route')).rows[0]['pgsplit.route'], 'replica');
  await viaSet.query('SET pgsplit.route = DEFAULT');
  t.equal((await viaSet.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false, 'SET ... DEFAULT untags it');
  await t.rejects(viaSet.query("SET pgsplit.route = 'sideways'"), { code: '22023' }, 'a bad value is refused with 22023');
  t.equal((await viaSet.query('SELECT 1 AS one')).rows[0].one, 1, 'and the session stays usable');

  const hinted = await fx.client();
  t.equal((await hinted.query('/* pgsplit:route=replica */ SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'a leading hint sends one read to a replica');
  t.equal((await hinted.query('SELECT pg_is_in_recovery() AS r /* pgsplit:route=replica */')).rows[0].r, true, 'so does a trailing hint');
  const hw = await hinted.query("/* pgsplit:route=replica */ INSERT INTO proof VALUES (3, 'hinted') RETURNING pg_is_in_recovery() AS r");
  t.equal(hw.rows[0].r, false, 'a hint never sends a write to a replica');

  const byName = await fx.client({ applicationName: 'nova-compute' });
  t.equal((await byName.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false, 'application_name does not tag without a pattern');
});

t.test('application_name patterns tag sessions', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: { routing: { application_names: ['nova-compute*'] } } });
  const c = await fx.client({ applicationName: 'nova-compute-7' });
  t.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true);
  const api = await fx.client({ applicationName: 'nova-api' });
  t.equal((await api.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false);
});
