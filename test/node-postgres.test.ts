/**
 * node-postgres (`pg`) through pgsplit, against a real primary with streaming replicas: parameter types,
 * transactions, named prepared statements moving between servers, LISTEN/NOTIFY, notices, session
 * settings, errors, and many concurrent clients. Routing is checked with pg_is_in_recovery() (true only
 * on a replica) and with the proxy's per-node counters.
 */
import t from 'tap';
import pg from 'pg';
import { startProxy } from './fixtures/proxy-fixture.js';
import { routeCounter } from './fixtures/proxy-fixture.js';

t.setTimeout(300_000);

const TAGGED = '-c pgsplit.route=replica';


async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// say() is the test's own function, read-only: vouched for as the operator would (routing.read_only_functions).
const fx = await startProxy(t, { config: { routing: { read_only_functions: ['say'] } } });
await fx.cluster.primary.query(`
  CREATE TABLE items (id int PRIMARY KEY, name text, data bytea, doc jsonb, n int);
  INSERT INTO items VALUES
    (1, 'a', '\\x00ff10', '{"k": [1, 2, {"x": null}]}', 10),
    (2, 'b', NULL, '"str"', NULL),
    (3, 'c', '\\x', '{}', 30),
    (4, 'héllo ☃', '\\xdeadbeef', '[true, false]', 40);
  CREATE TABLE t (v int);
  CREATE TABLE tx_t (id int PRIMARY KEY, note text);
  CREATE TABLE conc (client int, seq int, val int, PRIMARY KEY (client, seq));
  CREATE SCHEMA myschema;
  CREATE TABLE myschema.only_here (x int);
  INSERT INTO myschema.only_here VALUES (7);
  CREATE SCHEMA otherschema;
  CREATE FUNCTION say(text) RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RAISE NOTICE 'said %', $1; RETURN 1; END $$;
`);
await fx.cluster.waitForReplication();

/** A pg.Client straight to the primary: the reference results. */
const direct = new pg.Client({ host: fx.cluster.primary.host, port: fx.cluster.primary.port, user: 'postgres', database: 'postgres' });
direct.on('error', () => undefined);
await direct.connect();
t.teardown(() => direct.end().catch(() => undefined));

/** A pg.Client through pgsplit in pipeline mode (queries go on the wire without waiting for answers). */
async function pipelineClient(options?: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: fx.port, user: 'postgres', database: 'postgres', options, pipeline: true });
  c.on('error', () => undefined);
  await c.connect();
  t.teardown(() => c.end().catch(() => undefined));
  return c;
}

t.test('parameterized queries: same results as on the primary, tagged and untagged', async (t) => {
  const untagged = await fx.client();
  const tagged = await fx.client({ options: TAGGED });
  const cases: Array<{ text: string; values: unknown[] }> = [
    {
      text: 'SELECT $1::text AS t, $2::int AS i, $3::text AS n, $4::bytea AS b, $5::json AS j',
      values: ['héllo wörld ☃', 42, null, Buffer.from([0, 1, 2, 254, 255]), { a: 1, b: [true, null, 'x'] }],
    },
    { text: 'SELECT $1::int + $2::int AS sum, $3::int IS NULL AS is_null, $4::bytea AS empty', values: [2147483000, 647, null, Buffer.alloc(0)] },
    { text: 'SELECT id, name, data, doc, n FROM items WHERE id = ANY($1::int[]) ORDER BY id', values: [[1, 2, 3, 4]] },
    { text: 'SELECT count(*)::int AS c FROM items WHERE name = $1 OR n IS NOT DISTINCT FROM $2', values: ['b', null] },
    { text: 'SELECT id, doc -> $1 AS part FROM items WHERE data = $2', values: ['k', Buffer.from([0x00, 0xff, 0x10])] },
    { text: 'SELECT $1::jsonb AS doc, $1::jsonb -> $2 AS sub', values: [JSON.stringify({ k: { deep: [1, 2] }, q: "it's" }), 'k'] },
    { text: 'SELECT name FROM items WHERE name LIKE $1', values: ['h%'] },
  ];
  for (const c of cases) {
    const want = await direct.query(c.text, c.values);
    for (const [label, client] of [['untagged', untagged], ['tagged', tagged]] as const) {
      const count = routeCounter(fx);
      const got = await client.query(c.text, c.values);
      t.same(got.rows, want.rows, `${label}: ${c.text}`);
      t.same(got.fields.map((f) => [f.name, f.dataTypeID]), want.fields.map((f) => [f.name, f.dataTypeID]), `${label}: same columns`);
      t.same(count(), label === 'tagged' ? { primary: 0, replica: 1 } : { primary: 1, replica: 0 }, `${label}: routed to the ${label === 'tagged' ? 'replica' : 'primary'}`);
    }
  }
  const r = await tagged.query('SELECT pg_is_in_recovery() AS r, $1::bytea AS b, $2::json AS j', [Buffer.from('\x00zz'), JSON.stringify([1, 'two'])]);
  t.same(r.rows[0], { r: true, b: Buffer.from('\x00zz'), j: [1, 'two'] }, 'tagged parameterized read runs on a replica');
  const w = await tagged.query('INSERT INTO t VALUES ($1) RETURNING pg_is_in_recovery() AS r, v', [-1]);
  t.same(w.rows[0], { r: false, v: -1 }, 'tagged parameterized write runs on the primary');
  const u = await untagged.query('SELECT pg_is_in_recovery() AS r, $1::text AS s', ['x']);
  t.same(u.rows[0], { r: false, s: 'x' }, 'untagged parameterized read runs on the primary');
});

t.test('transactions through pg', async (t) => {
  const untagged = await fx.client();
  await untagged.query('BEGIN');
  await untagged.query("INSERT INTO tx_t VALUES (1, 'committed')");
  await untagged.query('COMMIT');
  t.same((await direct.query('SELECT note FROM tx_t WHERE id = 1')).rows, [{ note: 'committed' }], 'COMMIT: the row is visible');
  await untagged.query('BEGIN');
  await untagged.query("INSERT INTO tx_t VALUES (2, 'rolled back')");
  t.same((await untagged.query('SELECT note FROM tx_t WHERE id = 2')).rows, [{ note: 'rolled back' }], 'visible inside its transaction');
  await untagged.query('ROLLBACK');
  t.same((await direct.query('SELECT note FROM tx_t WHERE id = 2')).rows, [], 'ROLLBACK: the row is gone');
  t.same((await untagged.query('SELECT count(*)::int AS c FROM tx_t WHERE id = 2')).rows, [{ c: 0 }], 'and the session does not see it');

  const tagged = await fx.client({ options: TAGGED });
  t.equal((await tagged.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'tagged read outside a transaction: replica');
  await tagged.query('BEGIN');
  t.equal((await tagged.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'tagged: a read before the write inside the transaction runs on a replica');
  const ins = await tagged.query("INSERT INTO tx_t VALUES (3, 'tagged tx') RETURNING pg_is_in_recovery() AS r");
  t.equal(ins.rows[0].r, false, 'tagged: the write runs on the primary');
  const inTx = await tagged.query('SELECT pg_is_in_recovery() AS r, note FROM tx_t WHERE id = $1', [3]);
  t.same(inTx.rows, [{ r: false, note: 'tagged tx' }], 'tagged: a read after the write sees it, on the primary');
  await tagged.query('COMMIT');
  t.same((await direct.query('SELECT note FROM tx_t WHERE id = 3')).rows, [{ note: 'tagged tx' }], 'tagged COMMIT: the row is on the primary');
  await fx.cluster.waitForReplication();
  t.same((await tagged.query('SELECT pg_is_in_recovery() AS r, note FROM tx_t WHERE id = 3')).rows, [{ r: true, note: 'tagged tx' }],
    'after COMMIT the tagged session reads the replicated row on a replica');

  await tagged.query('BEGIN');
  t.equal((await tagged.query("INSERT INTO tx_t VALUES (4, 'tagged rollback') RETURNING pg_is_in_recovery() AS r")).rows[0].r, false);
  await tagged.query('ROLLBACK');
  t.same((await direct.query('SELECT note FROM tx_t WHERE id = 4')).rows, [], 'tagged ROLLBACK: the row is gone');

  // BEGIN READ ONLY may run on a replica; a write inside it fails there as it would anywhere.
  await tagged.query('BEGIN READ ONLY');
  t.equal((await tagged.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'BEGIN READ ONLY in a tagged session runs on a replica');
  t.same((await tagged.query('SELECT pg_is_in_recovery() AS r, count(*)::int AS c FROM tx_t')).rows, [{ r: true, c: 2 }], 'reads inside it stay there');
  await t.rejects(tagged.query("INSERT INTO tx_t VALUES (5, 'nope')"), { code: '25006' }, 'a write inside the read-only transaction fails with 25006');
  await t.rejects(tagged.query('SELECT 1'), { code: '25P02' }, 'the transaction is aborted, as PostgreSQL says');
  await tagged.query('ROLLBACK');
  t.same((await tagged.query('SELECT pg_is_in_recovery() AS r, 1 AS one')).rows, [{ r: true, one: 1 }], 'after ROLLBACK the session continues');
  t.same((await tagged.query("INSERT INTO tx_t VALUES (6, 'after ro') RETURNING pg_is_in_recovery() AS r")).rows, [{ r: false }], 'and writes reach the primary');
  t.same((await direct.query('SELECT id FROM tx_t WHERE id IN (5, 6) ORDER BY id')).rows, [{ id: 6 }]);

  // Untagged BEGIN READ ONLY stays on the primary, with the same semantics.
  await untagged.query('BEGIN READ ONLY');
  t.equal((await untagged.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false, 'untagged BEGIN READ ONLY runs on the primary');
  await t.rejects(untagged.query("INSERT INTO tx_t VALUES (7, 'nope')"), { code: '25006' });
  await untagged.query('ROLLBACK');
  t.equal((await untagged.query('SELECT 2 AS two')).rows[0].two, 2);
});

t.test('named prepared statements move between a replica and the primary', async (t) => {
  await direct.query('TRUNCATE t');
  const c = await fx.client({ options: TAGGED });
  const read = (v: number) => c.query({ name: 'read-one', text: 'SELECT pg_is_in_recovery() AS r, $1::int AS v', values: [v] });
  const write = (v: number) => c.query({ name: 'write-one', text: 'INSERT INTO t VALUES ($1) RETURNING pg_is_in_recovery() AS r', values: [v] });
  for (let i = 1; i <= 4; i++) {
    t.same((await read(i)).rows, [{ r: true, v: i }], `read-one #${i} runs on a replica`);
    t.same((await write(100 + i)).rows, [{ r: false }], `write-one #${i} runs on the primary`);
  }
  t.same((await read(5)).rows, [{ r: true, v: 5 }], 'read-one #5 (two in a row)');
  t.same((await read(6)).rows, [{ r: true, v: 6 }], 'read-one #6');

  await c.query('BEGIN');
  t.same((await write(200)).rows, [{ r: false }], 'write-one in a transaction');
  t.same((await read(7)).rows, [{ r: false, v: 7 }], 'read-one inside the write transaction runs on the primary');
  t.same((await c.query('SELECT count(*)::int AS c FROM t WHERE v = 200')).rows, [{ c: 1 }], 'and sees the uncommitted row');
  await c.query('COMMIT');
  t.same((await read(8)).rows, [{ r: true, v: 8 }], 'after COMMIT read-one is back on a replica');
  t.same((await direct.query('SELECT v FROM t ORDER BY v')).rows.map((r) => r.v), [101, 102, 103, 104, 200], 'the writes all reached the primary, once each');

  // Prepared first on the primary (inside a transaction that wrote), executed later on a replica.
  const c2 = await fx.client({ options: TAGGED });
  await c2.query('BEGIN');
  await c2.query('SELECT txid_current()');
  const p = (s: string) => c2.query({ name: 'p-first', text: 'SELECT pg_is_in_recovery() AS r, $1::text AS s, length($1) AS n', values: [s] });
  t.same((await p('inside')).rows, [{ r: false, s: 'inside', n: 6 }], 'prepared on the primary inside a transaction');
  await c2.query('COMMIT');
  t.same((await p('outside')).rows, [{ r: true, s: 'outside', n: 7 }], 'executed outside it on a replica (re-prepared there)');
  t.same((await p('again')).rows, [{ r: true, s: 'again', n: 5 }], 'and again');
  await c2.query('BEGIN');
  await c2.query('SELECT txid_current()');
  t.same((await p('back')).rows, [{ r: false, s: 'back', n: 4 }], 'back on the primary inside a new transaction');
  await c2.query('ROLLBACK');

  // An untagged session with named statements stays on the primary.
  const u = await fx.client();
  const ur = await u.query({ name: 'read-one', text: 'SELECT pg_is_in_recovery() AS r, $1::int AS v', values: [9] });
  t.same(ur.rows, [{ r: false, v: 9 }]);
  t.same((await u.query({ name: 'read-one', text: 'SELECT pg_is_in_recovery() AS r, $1::int AS v', values: [10] })).rows, [{ r: false, v: 10 }]);
});

t.test('LISTEN/NOTIFY', async (t) => {
  const listener = await fx.client({ options: TAGGED });
  const received: Array<[string, string | undefined]> = [];
  listener.on('notification', (n) => received.push([n.channel, n.payload]));
  t.equal((await listener.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'the listener starts on a replica');
  await listener.query('LISTEN chan');
  t.equal((await listener.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false, 'LISTEN pins the session to the primary');
  t.equal((await listener.query({ text: 'SELECT pg_is_in_recovery() AS r, $1::int AS v', values: [1] })).rows[0].r, false, 'extended-protocol reads too');

  const taggedSender = await fx.client({ options: TAGGED });
  const untaggedSender = await fx.client();
  await taggedSender.query("NOTIFY chan, 'from-tagged'");
  await untaggedSender.query("NOTIFY chan, 'from-untagged'");
  const viaFn = await taggedSender.query("SELECT pg_notify('chan', 'x') AS n, pg_is_in_recovery() AS r");
  t.equal(viaFn.rows[0].r, false, 'SELECT pg_notify() from a tagged session runs on the primary');
  await untaggedSender.query("SELECT pg_notify('chan', 'y')");
  await taggedSender.query({ text: 'SELECT pg_notify($1, $2)', values: ['chan', 'z-extended'] });
  await waitFor(() => received.length >= 5, 10_000, 'five notifications');
  t.same(received, [['chan', 'from-tagged'], ['chan', 'from-untagged'], ['chan', 'x'], ['chan', 'y'], ['chan', 'z-extended']],
    'the listener got every notification, in commit order, with its payload');

  // A notification sent inside a transaction arrives at COMMIT, not at ROLLBACK.
  await taggedSender.query('BEGIN');
  await taggedSender.query("NOTIFY chan, 'rolled-back'");
  await taggedSender.query('ROLLBACK');
  await taggedSender.query('BEGIN');
  await taggedSender.query("NOTIFY chan, 'committed'");
  await taggedSender.query('COMMIT');
  await waitFor(() => received.length >= 6, 10_000, 'the committed notification');
  await new Promise((r) => setTimeout(r, 100));
  t.same(received.slice(5), [['chan', 'committed']], 'only the committed notification arrives');

  await listener.query('UNLISTEN chan');
  await untaggedSender.query("NOTIFY chan, 'after-unlisten'");
  await new Promise((r) => setTimeout(r, 200));
  t.equal(received.length, 6, 'nothing after UNLISTEN');
});

t.test('notices reach pg', async (t) => {
  for (const [label, options] of [['untagged', undefined], ['tagged', TAGGED]] as const) {
    const c = await fx.client({ options });
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$");
    t.same(notices, ['hello 42'], `${label}: DO block notice`);
    const r = await c.query("SELECT say('replica?') AS one, pg_is_in_recovery() AS r");
    t.same(r.rows, [{ one: 1, r: label === 'tagged' }], `${label}: a read raising a notice runs where it should`);
    t.same(notices, ['hello 42', 'said replica?'], `${label}: the notice from that read arrives`);
    t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, `${label}: still usable`);
  }
});

t.test('session settings follow the session', async (t) => {
  const c = await fx.client({ options: TAGGED });
  const onPrimary = '/* pgsplit:route=primary */ ';
  const where = async (sql: string) => (await c.query(sql)).rows[0] as Record<string, unknown>;
  t.same(await where("SELECT current_setting('search_path') AS sp, pg_is_in_recovery() AS r"), { sp: '"$user", public', r: true }, 'default search_path on the replica');

  let count = routeCounter(fx);
  await c.query('SET search_path = myschema, public');
  await c.query("SET statement_timeout = '5s'");
  t.same(count(), { primary: 2, replica: 0 }, 'the SETs go to the primary');

  count = routeCounter(fx);
  t.same((await c.query('SHOW search_path')).rows, [{ search_path: 'myschema, public' }], 'SHOW search_path sees the SET');
  t.same(count(), { primary: 0, replica: 1 }, 'SHOW ran on the replica');
  t.same(await where("SELECT current_setting('statement_timeout') AS st, pg_is_in_recovery() AS r"), { st: '5s', r: true }, 'statement_timeout on the replica');
  t.same(await where('SELECT x, pg_is_in_recovery() AS r FROM only_here'), { x: 7, r: true }, 'unqualified names resolve through the search_path on the replica');
  t.same(await where(`${onPrimary}SELECT current_setting('search_path') AS sp, current_setting('statement_timeout') AS st, pg_is_in_recovery() AS r`),
    { sp: 'myschema, public', st: '5s', r: false }, 'the primary has them too');

  await c.query('RESET search_path');
  t.same((await c.query('SHOW search_path')).rows, [{ search_path: '"$user", public' }], 'RESET search_path reaches the replica');
  t.same(await where("SELECT current_setting('search_path') AS sp, current_setting('statement_timeout') AS st, pg_is_in_recovery() AS r"),
    { sp: '"$user", public', st: '5s', r: true }, 'statement_timeout is still set');
  t.same(await where(`${onPrimary}SELECT current_setting('search_path') AS sp, pg_is_in_recovery() AS r`), { sp: '"$user", public', r: false }, 'and the primary is reset too');

  // A SET inside a rolled-back transaction does not stick.
  await c.query('BEGIN');
  await c.query('SET search_path = otherschema');
  t.same(await where("SELECT current_setting('search_path') AS sp, pg_is_in_recovery() AS r"), { sp: 'otherschema', r: true }, 'inside the transaction the SET applies (the transaction opened on the replica with it)');
  await c.query('ROLLBACK');
  t.same(await where("SELECT current_setting('search_path') AS sp, pg_is_in_recovery() AS r"), { sp: '"$user", public', r: true }, 'after ROLLBACK the replica has the old value');
  t.same(await where(`${onPrimary}SELECT current_setting('search_path') AS sp, pg_is_in_recovery() AS r`), { sp: '"$user", public', r: false }, 'and so does the primary');

  // A SET inside a committed transaction does.
  await c.query('BEGIN');
  await c.query("SET statement_timeout = '7s'");
  await c.query('COMMIT');
  t.same(await where("SELECT current_setting('statement_timeout') AS st, pg_is_in_recovery() AS r"), { st: '7s', r: true }, 'a SET committed in a transaction reaches the replica');

  // SET LOCAL lasts only for its transaction.
  await c.query('BEGIN');
  await c.query("SET LOCAL statement_timeout = '9s'");
  t.same(await where("SELECT current_setting('statement_timeout') AS st"), { st: '9s' });
  await c.query('COMMIT');
  t.same(await where("SELECT current_setting('statement_timeout') AS st, pg_is_in_recovery() AS r"), { st: '7s', r: true }, 'SET LOCAL does not stick');
  t.same(await where(`${onPrimary}SELECT current_setting('statement_timeout') AS st, pg_is_in_recovery() AS r`), { st: '7s', r: false });
});

t.test('errors reject with the right code and the client stays usable', async (t) => {
  for (const [label, options] of [['untagged', undefined], ['tagged', TAGGED]] as const) {
    const c = await fx.client({ options });
    const onReplica = label === 'tagged';
    await t.rejects(c.query('SELECT 1/0'), { code: '22012' }, `${label}: division by zero`);
    t.same((await c.query('SELECT pg_is_in_recovery() AS r, 1 AS one')).rows, [{ r: onReplica, one: 1 }], `${label}: usable after 22012`);
    await t.rejects(c.query('SELECT * FROM no_such_table'), { code: '42P01' }, `${label}: undefined table`);
    t.same((await c.query('SELECT pg_is_in_recovery() AS r, 2 AS two')).rows, [{ r: onReplica, two: 2 }], `${label}: usable after 42P01`);
    await t.rejects(c.query('SELECT 10 / $1::int', [0]), { code: '22012' }, `${label}: division by zero, extended protocol`);
    await t.rejects(c.query({ name: 'bad-prep', text: 'SELECT * FROM no_such_table WHERE x = $1', values: [1] }), { code: '42P01' }, `${label}: undefined table in a named Parse`);
    await t.rejects(c.query('SELEC 1'), { code: '42601' }, `${label}: syntax error`);
    await t.rejects(c.query('INSERT INTO items (id) VALUES (1)'), { code: '23505' }, `${label}: unique violation (a write)`);
    await t.rejects(c.query('INSERT INTO t VALUES ($1)', ['not an int']), { code: '22P02' }, `${label}: bad parameter`);
    t.same((await c.query('SELECT pg_is_in_recovery() AS r, $1::int AS v', [3])).rows, [{ r: onReplica, v: 3 }], `${label}: extended read still works`);
    t.same((await c.query('INSERT INTO t VALUES (1) RETURNING pg_is_in_recovery() AS r')).rows, [{ r: false }], `${label}: writes still work`);
    // An error inside a transaction aborts it; ROLLBACK recovers.
    await c.query('BEGIN');
    await t.rejects(c.query('SELECT 1/0'), { code: '22012' });
    await t.rejects(c.query('SELECT 1'), { code: '25P02' }, `${label}: aborted transaction`);
    await c.query('ROLLBACK');
    t.same((await c.query('SELECT pg_is_in_recovery() AS r')).rows, [{ r: onReplica }], `${label}: usable after ROLLBACK`);
  }

  for (const [label, options] of [['untagged', undefined], ['tagged', TAGGED]] as const) {
    const c = await pipelineClient(options);
    const onReplica = label === 'tagged';
    const queries: Array<Promise<pg.QueryResult>> = [
      c.query('SELECT pg_is_in_recovery() AS r, 1 AS v'),
      c.query('SELECT 1/0'),
      c.query('INSERT INTO t VALUES (2) RETURNING pg_is_in_recovery() AS r, v'),
      c.query('SELECT pg_is_in_recovery() AS r, $1::int AS v', [4]),
      c.query('SELECT * FROM no_such_table'),
      c.query('SELECT pg_is_in_recovery() AS r, $1::int / $2::int AS v', [1, 0]),
      c.query({ name: 'pipe-read', text: 'SELECT pg_is_in_recovery() AS r, $1::int AS v', values: [7] }),
      c.query('INSERT INTO t VALUES ($1) RETURNING pg_is_in_recovery() AS r, v', [8]),
      c.query({ name: 'pipe-read', text: 'SELECT pg_is_in_recovery() AS r, $1::int AS v', values: [9] }),
    ];
    const settled = await Promise.allSettled(queries);
    const summary = settled.map((s) => (s.status === 'fulfilled' ? s.value.rows[0] : { code: (s.reason as { code?: string }).code }));
    t.same(summary, [
      { r: onReplica, v: 1 },
      { code: '22012' },
      { r: false, v: 2 },
      { r: onReplica, v: 4 },
      { code: '42P01' },
      { code: '22012' },
      { r: onReplica, v: 7 },
      { r: false, v: 8 },
      { r: onReplica, v: 9 },
    ], `${label}: errors inside a pipeline of queries do not break the ones after`);
    t.same((await c.query('SELECT 42 AS v')).rows, [{ v: 42 }], `${label}: pipeline client still usable`);
  }
});

t.test('many concurrent clients', async (t) => {
  await direct.query('TRUNCATE conc');
  const N = 20;
  const Q = 50;
  const started = Date.now();
  const count = routeCounter(fx);
  const failures: string[] = [];
  let replicaReads = 0;
  const run = async (id: number, tagged: boolean): Promise<number> => {
    const c = await fx.client({ options: tagged ? TAGGED : undefined, applicationName: `conc-${id}` });
    let writes = 0;
    for (let j = 0; j < Q; j++) {
      const check = (what: string, got: unknown, want: unknown) => {
        if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`client ${id} query ${j} ${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
      };
      if (j % 3 === 0) {
        const r = await c.query('INSERT INTO conc VALUES ($1, $2, $3) RETURNING val, pg_is_in_recovery() AS r', [id, j, id * 1000 + j]);
        check('insert', r.rows, [{ val: id * 1000 + j, r: false }]);
        writes++;
      } else if (j % 10 === 7) {
        await c.query('BEGIN');
        const w = await c.query('INSERT INTO conc VALUES ($1, $2, $3) RETURNING pg_is_in_recovery() AS r', [id, j, -j]);
        const r = await c.query({ name: 'conc-count', text: 'SELECT count(*)::int AS c, pg_is_in_recovery() AS r FROM conc WHERE client = $1', values: [id] });
        await c.query('COMMIT');
        check('tx insert', w.rows, [{ r: false }]);
        writes++;
        check('tx count', r.rows, [{ c: writes, r: false }]);
      } else if (j % 2 === 0) {
        const r = await c.query({ name: 'conc-mul', text: 'SELECT $1::int * $2::int AS p, pg_is_in_recovery() AS r, (SELECT count(*)::int FROM conc WHERE client = $1) AS mine', values: [id, j] });
        // A tagged read right after the client's own write runs on a replica that has replayed the
        // write, or on the primary when none catches up in time: either way it sees the write.
        check('named read', r.rows.map((x: { p: number; mine: number; r: boolean }) => ({ p: x.p, mine: x.mine, r: tagged ? 'any' : x.r })), [{ p: id * j, mine: writes, r: tagged ? 'any' : false }]);
        if (r.rows[0]?.r === true) replicaReads++;
      } else {
        const r = await c.query(`SELECT ${id} + ${j} AS s, pg_is_in_recovery() AS r, (SELECT count(*)::int FROM items) AS items, (SELECT count(*)::int FROM conc WHERE client = ${id}) AS mine`);
        check('simple read', r.rows.map((x: { s: number; items: number; mine: number; r: boolean }) => ({ s: x.s, items: x.items, mine: x.mine, r: tagged ? 'any' : x.r })), [{ s: id + j, items: 4, mine: writes, r: tagged ? 'any' : false }]);
        if (r.rows[0]?.r === true) replicaReads++;
      }
    }
    return writes;
  };
  const results = await Promise.all([
    ...Array.from({ length: N }, (_, i) => run(i, true)),
    ...Array.from({ length: N }, (_, i) => run(N + i, false)),
  ]);
  const elapsed = Date.now() - started;
  t.same(failures, [], 'every query returned the right result on the right server');
  const expectedWrites = results.reduce((a, b) => a + b, 0);
  const [row] = (await direct.query('SELECT count(*)::int AS c, count(DISTINCT client)::int AS clients FROM conc')).rows;
  t.same(row, { c: expectedWrites, clients: 2 * N }, `all ${expectedWrites} writes are on the primary`);
  const routed = count();
  t.ok(routed.replica > 0 && routed.primary > 0, `units routed: ${JSON.stringify(routed)} in ${elapsed} ms`);
  t.ok(replicaReads > 0, `${replicaReads} tagged reads ran on a replica, each seeing its own client's writes`);
  await fx.cluster.waitForReplication();
  const c = await fx.client({ options: TAGGED });
  t.same((await c.query('SELECT count(*)::int AS c, pg_is_in_recovery() AS r FROM conc')).rows, [{ c: expectedWrites, r: true }], 'and replicated');
});

/** Runs queries in one pg pipeline and summarizes each: its first row, its command tag, or its error code. */
async function pipelined(c: pg.Client, queries: Array<[string, unknown[]?]>): Promise<unknown[]> {
  const results = await Promise.allSettled(queries.map(([text, values]) => c.query(text, values)));
  return results.map((s) => (s.status === 'fulfilled' ? s.value.rows[0] ?? s.value.command : { code: (s.reason as { code?: string }).code }));
}

t.test('pipeline mode: a write queued behind COMMIT of a read-only transaction', async (t) => {
  const c = await pipelineClient(TAGGED);
  t.same(await pipelined(c, [
    ['BEGIN READ ONLY'],
    ['SELECT pg_is_in_recovery() AS r, 1 AS v'],
    ['COMMIT'],
    ['INSERT INTO t VALUES ($1) RETURNING pg_is_in_recovery() AS r, v', [301]],
  ]), ['BEGIN', { r: true, v: 1 }, 'COMMIT', { r: false, v: 301 }],
  'the read-only transaction runs on a replica, the write after its COMMIT on the primary');
  t.same((await direct.query('SELECT v FROM t WHERE v = 301')).rows, [{ v: 301 }], 'the write reached the primary');
  t.same((await c.query('SELECT pg_is_in_recovery() AS r')).rows, [{ r: true }], 'the session goes on');
});

t.test('pipeline mode: statements queued behind COMMIT are routed as outside the transaction', async (t) => {
  const c = await pipelineClient(TAGGED);
  t.same(await pipelined(c, [
    ['BEGIN'],
    ['SELECT pg_is_in_recovery() AS r, 1 AS v'],
    ['INSERT INTO t VALUES ($1) RETURNING pg_is_in_recovery() AS r, v', [302]],
    ['COMMIT'],
    ['SELECT pg_is_in_recovery() AS r, 2 AS v'],
    ['BEGIN READ ONLY'],
    ['SELECT pg_is_in_recovery() AS r, 3 AS v'],
    ['COMMIT'],
  ]), ['BEGIN', { r: true, v: 1 }, { r: false, v: 302 }, 'COMMIT', { r: true, v: 2 }, 'BEGIN', { r: true, v: 3 }, 'COMMIT'],
  'the transaction reads on a replica until its write moves it to the primary; the read and the read-only transaction after its COMMIT on a replica');
});
