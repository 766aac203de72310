/**
 * A tagged session's settings reach its replica as the values the primary holds after them, read back
 * from the server that ran them once the session is outside a transaction (src/session/session-settings.ts):
 * set_config(..., false), partial values that merge (DateStyle), and changes a rollback undid.
 */
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(180_000);

const TAGGED = '-c pgsplit.route=replica';

t.test('settings follow a tagged session to its replica as values', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  await fx.cluster.primary.query('CREATE SCHEMA app');
  await fx.cluster.primary.query("CREATE TABLE app.things (v text); INSERT INTO app.things VALUES ('in app')");
  await fx.cluster.waitForReplication();
  const c = await fx.client({ options: TAGGED });
  const onReplica = async (expr: string): Promise<{ r: boolean; v: string }> =>
    (await c.query<{ r: boolean; v: string }>(`SELECT pg_is_in_recovery() AS r, (${expr})::text AS v`)).rows[0]!;

  await c.query("SELECT set_config('TimeZone', 'Asia/Tokyo', false)");
  t.same(await onReplica("current_setting('TimeZone')"), { r: true, v: 'Asia/Tokyo' }, 'set_config(TimeZone, ..., false) holds on the replica');
  await c.query("SELECT set_config('search_path', 'app, public', false)");
  t.same(await onReplica('(SELECT v FROM things)'), { r: true, v: 'in app' }, 'set_config(search_path, ...) holds on the replica (no 42P01)');

  await c.query('SET datestyle TO iso');
  await c.query('SET datestyle TO ymd');
  const primaryStyle = (await c.query<{ v: string }>("SELECT current_setting('DateStyle') AS v /* pgsplit:route=primary */")).rows[0]?.v;
  t.equal(primaryStyle, 'ISO, YMD', 'the primary merges the two');
  t.same(await onReplica("current_setting('DateStyle')"), { r: true, v: 'ISO, YMD' }, 'the replica has the same value (not Postgres, YMD)');

  await c.query('BEGIN');
  await c.query("SET work_mem = '7MB'");
  await c.query('SAVEPOINT a');
  await c.query("SET statement_timeout = '9s'");
  await c.query('ROLLBACK TO SAVEPOINT a');
  await c.query('COMMIT');
  t.same(await onReplica("current_setting('statement_timeout')"), { r: true, v: '0' }, 'a SET undone by ROLLBACK TO SAVEPOINT is not replayed');
  t.same(await onReplica("current_setting('work_mem')"), { r: true, v: '7MB' }, 'a SET committed with its transaction is');
  await c.query('BEGIN');
  await c.query("SELECT set_config('work_mem', '9MB', false)");
  await c.query('ROLLBACK');
  t.same(await onReplica("current_setting('work_mem')"), { r: true, v: '7MB' }, 'set_config in a transaction rolled back: not replayed');

  await c.query('RESET ALL');
  t.same(await onReplica("current_setting('TimeZone') || ' ' || current_setting('work_mem') || ' ' || current_setting('DateStyle')"),
    { r: true, v: `${await defaultOf('TimeZone')} ${await defaultOf('work_mem')} ${await defaultOf('DateStyle')}` }, 'RESET ALL reaches the replica');
  async function defaultOf(name: string): Promise<string> {
    const rows = await fx.cluster.primary.query<{ v: string }>(`SELECT current_setting('${name}') AS v`);
    return rows[0]?.v ?? '?';
  }
});
