/**
 * The settings a pooled connection needs for the next client (PgBouncer's varcache, for any
 * parameter): only the names whose values differ from what the connection holds, in one statement whose
 * literals survive quotes, backslashes and either standard_conforming_strings. Checked byte for byte,
 * then applied on a real server and read back, then reset.
 */
import t from 'tap';
import { startCluster } from './fixtures/proxy-fixture.js';
import { ServerConnection } from '../src/server/server-connection.js';
import { ServerState } from '../src/server/server-state.js';
import { runInternalQuery } from '../src/server/server-query.js';

t.setTimeout(180_000);

t.test('only differing values are planned; names compare case-insensitively; identity is never set', async (t) => {
  const s = new ServerState(new Map([['DateStyle', 'ISO, MDY'], ['TimeZone', 'UTC'], ['is_superuser', 'on'], ['session_authorization', 'app']]), 4);
  const plan = s.settingsPlan(new Map([
    ['datestyle', 'ISO, MDY'],
    ['TimeZone', 'Europe/Paris'],
    ['is_superuser', 'off'],
    ['session_authorization', 'mallory'],
    ['role', 'admin'],
  ]));
  t.same(plan.changes, [{ name: 'TimeZone', value: 'Europe/Paris' }]);
  t.equal(plan.sql, "SELECT pg_catalog.set_config(s.n, s.v, false) FROM (VALUES (E'TimeZone', E'Europe/Paris')) AS s(n, v)");
  t.same(s.settingsPlan(new Map([['DateStyle', 'ISO, MDY']])), { changes: [], sql: null }, 'nothing to do: no statement at all');
});

t.test('quotes and backslashes are doubled inside E literals', async (t) => {
  const s = new ServerState(new Map(), 4);
  const plan = s.settingsPlan(new Map([['application_name', "it's a \\ test"]]));
  t.equal(plan.sql, "SELECT pg_catalog.set_config(s.n, s.v, false) FROM (VALUES (E'application_name', E'it''s a \\\\ test')) AS s(n, v)");
});

t.test('applied on a real server, read back, and reset', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const conn = await ServerConnection.connect({ name: 'primary', host: '127.0.0.1', port: cluster.primary.port }, { user: 'postgres', database: 'postgres' }, 5000);
  t.teardown(() => conn.close());
  const state = new ServerState(conn.parameters, 4);
  const wanted = new Map([
    ['TimeZone', 'Asia/Tokyo'],
    ['DateStyle', 'SQL, DMY'],
    ['application_name', "it's a \\ test"],
    // Reported by PostgreSQL 18 in this quoted form; SET would take it as one schema name.
    ['search_path', '"$user", public, "My Schema"'],
    ['work_mem', '8MB'],
    ['standard_conforming_strings', 'off'],
  ]);
  const plan = state.settingsPlan(wanted);
  t.equal(plan.changes.length, 6);
  const ran = await runInternalQuery(conn, state, plan.sql ?? '', 5000);
  t.equal(ran.error, null, 'the plan ran');
  state.applied(plan);
  const shown = await runInternalQuery(conn, state,
    "SELECT current_setting('TimeZone'), current_setting('DateStyle'), current_setting('application_name'), " +
    "current_setting('search_path'), current_setting('work_mem'), current_setting('standard_conforming_strings'), " +
    "pg_catalog.array_to_string(pg_catalog.current_schemas(false), '|')", 5000);
  t.same(shown.rows[0]?.slice(0, 6), [...wanted.values()], 'every value reads back as planned');
  t.equal(state.get('application_name'), "it's a \\ test", 'the reported values came back as ParameterStatus');
  t.same(state.settingsPlan(wanted), { changes: [], sql: null }, 'planned again: nothing left to do');

  const cleanup = state.cleanupPlan();
  t.equal(cleanup.sql, 'RESET ALL', 'work_mem and search_path are not reported: the connection is reset before reuse');
  const reset = await runInternalQuery(conn, state, cleanup.sql ?? '', 5000);
  t.equal(reset.error, null);
  state.cleaned(cleanup.kind);
  const after = await runInternalQuery(conn, state, "SELECT current_setting('work_mem'), current_setting('TimeZone')", 5000);
  t.not(after.rows[0]?.[0], '8MB', 'work_mem is back to its default');
  t.equal(state.get('TimeZone'), after.rows[0]?.[1], 'the TimeZone ParameterStatus after RESET ALL updated the state');
  t.equal(state.get('work_mem'), undefined);
  t.equal(state.settingsPlan(wanted).changes.length, 6, 'and the next client gets everything set again');
});
