import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';
import { RawPgClient } from './fixtures/raw-pg-client.js';

t.setTimeout(120_000);

// The safety net behind the classifier: a statement that looked read-only but writes (here a user
// function the classifier cannot see into) is refused by the replica with 25006, and pgsplit runs it on
// the primary instead, as long as nothing of its result reached the client and no transaction is open.
t.test('a write the classifier missed is re-run on the primary, once', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: { routing: { unknown_functions: 'replica' } } });
  await fx.cluster.primary.query('CREATE TABLE audit (id serial primary key, note text)');
  await fx.cluster.primary.query(
    "CREATE FUNCTION record_note(n text) RETURNS int LANGUAGE sql AS 'INSERT INTO audit(note) VALUES (n) RETURNING id'");
  await fx.cluster.waitForReplication();

  const c = await fx.client({ options: '-c pgsplit.route=replica' });
  t.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'the session reads from a replica');
  const before = fx.proxy.stats.rerunsOnPrimary;
  const r = await c.query("SELECT record_note('simple') AS id, pg_is_in_recovery() AS r");
  t.equal(r.rows[0].r, false, 'the refused statement ran on the primary');
  t.equal(fx.proxy.stats.rerunsOnPrimary, before + 1, 'the re-run is counted');

  const r2 = await c.query({ text: 'SELECT record_note($1) AS id, pg_is_in_recovery() AS r', values: ['extended'] });
  t.equal(r2.rows[0].r, false, 'extended protocol: re-run on the primary too');
  const r3 = await c.query({ name: 'rn', text: 'SELECT record_note($1) AS id', values: ['prepared'] });
  t.ok(r3.rows[0].id > 0, 'named prepared statement: re-run on the primary');

  const rows = await fx.cluster.primary.query<{ note: string }>('SELECT note FROM audit ORDER BY id');
  t.same(rows.map((x) => x.note), ['simple', 'extended', 'prepared'], 'each statement ran exactly once');
  t.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'later reads still go to the replica');

  // Inside a read-only transaction the refusal is the client's answer: nothing is re-run.
  await c.query('BEGIN READ ONLY');
  await t.rejects(c.query("SELECT record_note('in-tx')"), { code: '25006' }, 'inside a transaction the 25006 reaches the client');
  await c.query('ROLLBACK');
  const after = await fx.cluster.primary.query<{ n: string }>("SELECT count(*)::text AS n FROM audit WHERE note = 'in-tx'");
  t.equal(after[0]?.n, '0', 'and the statement did not run on the primary');

  // After rows have reached the client the statement is not re-run: the error is passed on.
  const raw = await RawPgClient.connect({ port: fx.port, user: 'postgres', database: 'postgres', options: '-c pgsplit.route=replica' });
  t.teardown(() => raw.close());
  const res = await raw.simple("SELECT 1 AS a; SELECT record_note('second-statement')");
  t.ok(res.includes("Error:25006") && res.includes("Row:1"), 'a refusal after rows were forwarded reaches the client');
  const second = await fx.cluster.primary.query<{ n: string }>("SELECT count(*)::text AS n FROM audit WHERE note = 'second-statement'");
  t.equal(second[0]?.n, '0', 'and is not re-run');
});
