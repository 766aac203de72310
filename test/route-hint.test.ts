import t from 'tap';
import { lexSql } from '../src/router/sql-lexer.js';
import { parseDurationMs, parseRouteHints, type RouteHints } from '../src/router/route-hint.js';
import { parseLsn } from '../src/monitor/lsn.js';

/** Hints of a query string, with the token bounds computed the way the classifier does. */
function hintsOf(sql: string): RouteHints {
  const lex = lexSql(sql);
  const first = lex.statements[0]?.[0]?.start ?? sql.length;
  const lastStmt = lex.statements[lex.statements.length - 1];
  const last = lastStmt?.[lastStmt.length - 1]?.end ?? 0;
  return parseRouteHints(lex.comments, sql.length, first, last);
}

t.test('pgsplit: hints', async (t) => {
  const cases: [string, Partial<RouteHints>][] = [
    ['/* pgsplit:route=replica */ SELECT 1', { route: 'replica' }],
    ['/* pgsplit:route=primary */ SELECT 1', { route: 'primary' }],
    ['/*pgsplit:route=replica*/SELECT 1', { route: 'replica' }],
    ['SELECT 1 /* pgsplit:route=replica */', { route: 'replica' }],
    ['SELECT 1; /* pgsplit:route=replica */', { route: 'replica' }],
    ['SELECT 1 -- pgsplit:route=replica', { route: 'replica' }],
    ['-- pgsplit:route=replica\nSELECT 1', { route: 'replica' }],
    ['/* pgsplit:route=replica,max_lag=500ms */ SELECT 1', { route: 'replica', maxLagMs: 500 }],
    ['/* pgsplit:route=replica max_lag=2s */ SELECT 1', { route: 'replica', maxLagMs: 2000 }],
    ['/* pgsplit:route=replica, max_lag=1.5s, after=0/16B3748 */ SELECT 1', { route: 'replica', maxLagMs: 1500, after: '0/16B3748' }],
    ['/* pgsplit: route = replica */ SELECT 1', { route: 'replica' }],
    ["/* pgsplit:route='replica' */ SELECT 1", { route: 'replica' }],
    ['/* PGSPLIT:ROUTE=REPLICA */ SELECT 1', { route: 'replica' }],
    ['/* pgsplit:max_lag=1min */ SELECT 1', { maxLagMs: 60000 }],
    ['/* pgsplit:max_lag=250 */ SELECT 1', { maxLagMs: 250 }],
    ['/* pgsplit:after=1/ab */ SELECT 1', { after: '1/AB' }],
    ['/* pgsplit:after=00000001/000000AB */ SELECT 1', { after: '1/AB' }],
    // leading and trailing comments both count
    ['/* pgsplit:route=replica */ SELECT 1 /* pgsplit:max_lag=100ms */', { route: 'replica', maxLagMs: 100 }],
  ];
  for (const [sql, want] of cases) {
    const h = hintsOf(sql);
    t.match(h, want, sql);
    t.same(h.malformed, [], `${sql}: nothing malformed`);
  }
});

t.test('only leading or trailing comments count', async (t) => {
  const ignored = [
    'SELECT /* pgsplit:route=replica */ 1',
    'SELECT 1; /* pgsplit:route=replica */ SELECT 2',
    "SELECT '/* pgsplit:route=replica */'",
    'SELECT $$ -- pgsplit:route=replica $$',
    'SELECT "/* pgsplit:route=replica */"',
    'SELECT 1 /* pgsplit:route=replica', // unterminated
  ];
  for (const sql of ignored) t.same(hintsOf(sql), { malformed: [] }, sql);
  // a query with no tokens: every comment counts
  t.match(hintsOf('/* pgsplit:route=primary */'), { route: 'primary' });
});

t.test('sqlcommenter', async (t) => {
  const cases: [string, Partial<RouteHints>][] = [
    ["SELECT 1 /*pgsplit_route='replica',pgsplit_max_lag='500ms'*/", { route: 'replica', maxLagMs: 500 }],
    [
      "SELECT * FROM t /*action='index',controller='users',framework='django%3A4.2',pgsplit_route='replica',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/",
      { route: 'replica' },
    ],
    ["/*pgsplit_after='0%2F16B3748'*/ SELECT 1", { after: '0/16B3748' }],
    ["SELECT 1 /*pgsplit_max_lag='1.5s'*/", { maxLagMs: 1500 }],
    ["SELECT 1 /*pgsplit_max_lag='2%20s'*/", { maxLagMs: 2000 }],
    ["SELECT 1 /* pgsplit_route='primary' */", { route: 'primary' }],
    ["SELECT 1 /*pgsplit_route='rep\\'lica'*/", {}],
  ];
  for (const [sql, want] of cases) t.match(hintsOf(sql), want, sql);
  t.same(hintsOf("SELECT 1 /*pgsplit_route='replica',pgsplit_max_lag='500ms'*/").malformed, []);
  // bad encodings: in pgsplit keys they are malformed, elsewhere silently ignored
  const bad = hintsOf("SELECT 1 /*pgsplit_route='%E0%A4%A',pgsplit_max_lag='20ms'*/");
  t.equal(bad.route, undefined);
  t.equal(bad.maxLagMs, 20);
  t.equal(bad.malformed.length, 1);
  t.match(bad.malformed[0], /URL encoding/);
  const other = hintsOf("SELECT 1 /*traceparent='%E0%A4%A',pgsplit_route='replica'*/");
  t.same(other, { route: 'replica', malformed: [] });
});

t.test('malformed pgsplit hints are recorded and ignored', async (t) => {
  const cases: [string, RegExp][] = [
    ['/* pgsplit:route=standby */ SELECT 1', /route must be replica or primary/],
    ['/* pgsplit:colour=blue */ SELECT 1', /unknown key "colour"/],
    ['/* pgsplit:max_lag=soon */ SELECT 1', /max_lag must be a duration/],
    ['/* pgsplit:max_lag=5parsecs */ SELECT 1', /max_lag must be a duration/],
    ['/* pgsplit:max_lag=-5ms */ SELECT 1', /max_lag must be a duration/],
    ['/* pgsplit:after=16B3748 */ SELECT 1', /after must be an LSN/],
    ['/* pgsplit:after=0/123456789 */ SELECT 1', /after must be an LSN/],
    ['/* pgsplit:replica */ SELECT 1', /expected key=value/],
    ['/* pgsplit: */ SELECT 1', /no key=value pairs/],
    ["/* pgsplit:route='replica */ SELECT 1", /unterminated quoted value/],
    ["SELECT 1 /*pgsplit_colour='blue'*/", /unknown key "colour"/],
    ["SELECT 1 /*pgsplit_route='nowhere'*/", /route must be/],
  ];
  for (const [sql, re] of cases) {
    const h = hintsOf(sql);
    t.equal(h.route, undefined, sql);
    t.equal(h.maxLagMs, undefined, sql);
    t.equal(h.after, undefined, sql);
    t.equal(h.malformed.length, 1, sql);
    t.match(h.malformed[0], re, sql);
  }
  // a good key next to a bad one still counts
  const mixed = hintsOf('/* pgsplit:route=replica,max_lag=fast */ SELECT 1');
  t.equal(mixed.route, 'replica');
  t.equal(mixed.malformed.length, 1);
});

t.test('unrelated comments are ignored silently', async (t) => {
  const cases = [
    '/* just a comment */ SELECT 1',
    '-- route=replica\nSELECT 1',
    "SELECT 1 /*action='index',controller='users'*/",
    '/* route=replica */ SELECT 1',
    '/* see pgsplit docs */ SELECT 1',
    '/* pgsplit */ SELECT 1',
  ];
  for (const sql of cases) t.same(hintsOf(sql), { malformed: [] }, sql);
});

t.test('conflicts: the stricter hint wins', async (t) => {
  const r = hintsOf('/* pgsplit:route=replica */ SELECT 1 /* pgsplit:route=primary */');
  t.equal(r.route, 'primary');
  t.match(r.malformed, [/conflicting route/]);
  const r2 = hintsOf('/* pgsplit:route=primary */ SELECT 1 /* pgsplit:route=replica */');
  t.equal(r2.route, 'primary');
  const lag = hintsOf('/* pgsplit:max_lag=2s */ SELECT 1 /* pgsplit:max_lag=100ms */');
  t.equal(lag.maxLagMs, 100);
  const lag2 = hintsOf('/* pgsplit:max_lag=100ms */ SELECT 1 /* pgsplit:max_lag=2s */');
  t.equal(lag2.maxLagMs, 100);
  const after = hintsOf('/* pgsplit:after=1/0 */ SELECT 1 /* pgsplit:after=0/FFFFFFFF */');
  t.equal(after.after, '1/0');
  const after2 = hintsOf('/* pgsplit:after=0/FFFFFFFF */ SELECT 1 /* pgsplit:after=1/0 */');
  t.equal(after2.after, '1/0');
  // the same value twice is no conflict
  t.same(hintsOf('/* pgsplit:route=replica */ SELECT 1 /* pgsplit:route=replica */'), { route: 'replica', malformed: [] });
});

t.test('durations', async (t) => {
  const cases: [string, number | undefined][] = [
    ['500ms', 500],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1min', 60000],
    ['1h', 3600000],
    ['250us', 0.25],
    ['0', 0],
    ['750', 750],
    ['.5s', 500],
    [' 10 ms ', 10],
    ['10MS', 10],
    ['', undefined],
    ['ms', undefined],
    ['-1s', undefined],
    ['1e3', undefined],
    ['1m', undefined],
    ['1..5s', undefined],
    ['Infinity', undefined],
  ];
  for (const [s, want] of cases) t.equal(parseDurationMs(s), want, JSON.stringify(s));
});

t.test('LSNs', async (t) => {
  t.equal(parseLsn('0/16B3748'), 0x16b3748n);
  t.equal(parseLsn('A/0'), 0xa00000000n);
  t.equal(parseLsn('0/'), null);
  t.equal(parseLsn('/1'), null);
  t.equal(parseLsn('g/1'), null);
  t.equal(parseLsn('0x1/1'), null);
});
