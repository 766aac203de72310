import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

// pgsplit reads statement text the way the server will: with the session's standard_conforming_strings,
// and not at all (primary only) in client encodings where a multibyte character can hide a backslash.
t.test('statement text is lexed with the session settings the server uses', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  await fx.cluster.primary.query('CREATE TABLE victims (id int)');
  await fx.cluster.primary.query('INSERT INTO victims SELECT generate_series(1, 3)');
  await fx.cluster.waitForReplication();

  const c = await fx.client({ options: '-c pgsplit.route=replica' });
  t.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'tagged session reads a replica');

  await c.query('SET standard_conforming_strings = off');
  const reruns = fx.proxy.stats.rerunsOnPrimary;
  const deletes = fx.proxy.stats.routedByReason.get('delete') ?? 0;
  // With standard_conforming_strings off, \' does not end the string: the server sees a DELETE here.
  await c.query("SELECT 'a\\' ; SELECT '; DELETE FROM victims WHERE id = 1; --'");
  t.equal(fx.proxy.stats.routedByReason.get('delete') ?? 0, deletes + 1, 'the hidden DELETE was seen and routed to the primary');
  t.equal(fx.proxy.stats.rerunsOnPrimary, reruns, 'without needing the replica to refuse it');
  const left = await fx.cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM victims');
  t.equal(left[0]?.n, '2', 'the DELETE ran once, on the primary');
  t.equal((await c.query("SELECT 'x\\'y' AS v, pg_is_in_recovery() AS r")).rows[0].r, true, 'plain reads still go to the replica');
  await c.query('SET standard_conforming_strings = on');

  await c.query("SET client_encoding = 'SJIS'");
  const sj = await c.query('SELECT pg_is_in_recovery() AS r');
  t.equal(sj.rows[0].r, false, 'in SJIS every statement goes to the primary');
  t.ok((fx.proxy.stats.routedByReason.get('client-encoding') ?? 0) > 0, 'with reason client-encoding');
  await c.query("SET client_encoding = 'UTF8'");
  t.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'back in UTF8, reads go to the replica again');
});
