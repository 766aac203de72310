/**
 * A tagged session's settings reach its replica as the values the primary holds after them, read back
 * from the server that ran them once the session is outside a transaction (src/session/session-settings.ts):
 * set_config(..., false), partial values that merge (DateStyle), and changes a rollback undid.
 */
import t from 'tap';
import fsp from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
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

t.test('a placeholder LOAD drops on the primary is dropped on the replica too', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const c = await fx.client({ options: TAGGED });
  const direct = new pg.Client({ host: '127.0.0.1', port: fx.cluster.primary.port, user: 'postgres', database: 'postgres' });
  await direct.connect();
  t.teardown(() => direct.end());
  const steps = async (q: (sql: string) => Promise<{ rows: Array<Record<string, unknown>> }>): Promise<unknown[]> => {
    const seen: unknown[] = [];
    const show = async (): Promise<void> => {
      seen.push((await q("SELECT current_setting('plpgsql.pgsplit_test', true) AS v")).rows[0]?.v);
    };
    await q("SET plpgsql.pgsplit_test = 'x'");
    await show();
    // plpgsql reserves its prefix when it loads: the placeholder is removed (with a WARNING).
    await q("LOAD 'plpgsql'");
    await show();
    await q('RESET ALL');
    await show();
    seen.push(await q("SET plpgsql.pgsplit_test = 'y'").then(() => 'accepted', (e: { code?: string }) => e.code));
    return seen;
  };
  const want = await steps((sql) => direct.query(sql));
  t.same(want, ['x', null, null, '42602'], 'direct: the placeholder is gone after LOAD, and the prefix reserved');
  t.same(await steps((sql) => c.query(sql)), want, 'tagged: the same, its reads on the replica');
  t.equal((await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r, true, 'the reads ran on the replica');
});

t.test('custom parameters (app.tenant_id, as row-level security policies read them) reach the replica', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const c = await fx.client({ options: TAGGED });
  const read = async (name: string): Promise<{ r: boolean; v: string | null }> =>
    (await c.query<{ r: boolean; v: string | null }>(`SELECT pg_is_in_recovery() AS r, current_setting('${name}', true) AS v`)).rows[0]!;
  await c.query("SET app.tenant_id = '42'");
  t.same(await read('app.tenant_id'), { r: true, v: '42' }, 'SET app.tenant_id: the replica has it');
  await c.query("SELECT set_config('app.user_name', $1, false)", ["o'brien"]);
  t.same(await read('app.user_name'), { r: true, v: "o'brien" }, 'set_config with a parameter value: the replica has it');
  await c.query('BEGIN');
  await c.query("SET LOCAL app.tenant_id = '7'");
  t.same(await read('app.tenant_id'), { r: true, v: '7' }, 'SET LOCAL in a transaction: its reads on the replica see it');
  await c.query('SAVEPOINT s');
  await c.query("SET LOCAL app.tenant_id = '9'");
  await c.query('ROLLBACK TO SAVEPOINT s');
  t.same(await read('app.tenant_id'), { r: true, v: '7' }, 'a SET LOCAL undone by ROLLBACK TO SAVEPOINT: undone there too');
  // set_config is a function call the classifier sends to the primary: the transaction moves, with its SET LOCAL.
  await c.query("SELECT set_config('app.tenant_id', $1, true)", ['8']);
  t.same(await read('app.tenant_id'), { r: false, v: '8' }, 'set_config(..., true) in a transaction: moved to the primary, the value holds');
  await c.query('COMMIT');
  t.same(await read('app.tenant_id'), { r: true, v: '42' }, 'after COMMIT the session value is back');
  await c.query('RESET app.tenant_id');
  t.same(await read('app.tenant_id'), { r: true, v: '' }, 'RESET: empty, as on the primary');
});

t.test('settings a replica refuses: the read runs on the primary instead of with the wrong settings', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const replica = fx.cluster.replicas[0]!;
  // The replica alone loads auto_explain in every session, so the prefix is reserved there: a placeholder
  // under it, which the primary accepts, is refused by the replica when the session's settings are replayed.
  await fsp.appendFile(path.join(replica.dataDir, 'postgresql.conf'), "\nsession_preload_libraries = 'auto_explain'\n");
  await replica.query('SELECT pg_reload_conf()');
  const c = await fx.client({ options: TAGGED });
  t.equal((await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r, true, 'reads go to the replica at first');
  await c.query("SET TimeZone = 'Asia/Tokyo'");
  await c.query("SET auto_explain.pgsplit_only_on_primary = 'x'");
  const read = await c.query<{ r: boolean; tz: string }>("SELECT pg_is_in_recovery() AS r, current_setting('TimeZone') AS tz");
  t.same(read.rows[0], { r: false, tz: 'Asia/Tokyo' }, 'the replay failed on the replica: the read ran on the primary, with the session\'s settings');
  const again = await c.query<{ r: boolean; tz: string }>("SELECT pg_is_in_recovery() AS r, current_setting('TimeZone') AS tz");
  t.same(again.rows[0], { r: false, tz: 'Asia/Tokyo' }, 'and the next one too (never with the replica\'s defaults)');
  await c.query('RESET auto_explain.pgsplit_only_on_primary');
  await c.query('BEGIN');
  const inTx = await c.query<{ r: boolean; tz: string }>("SELECT pg_is_in_recovery() AS r, current_setting('TimeZone') AS tz");
  await c.query('COMMIT');
  t.equal(inTx.rows[0]?.tz, 'Asia/Tokyo', 'in a transaction too');
});
