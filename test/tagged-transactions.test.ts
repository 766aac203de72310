/**
 * Explicit transactions of tagged sessions (routing.transactions: replica-until-write), against real
 * servers: a plain BEGIN is deferred, a transaction that only reads runs on a replica, and one that
 * writes moves to the primary before its first write with its SET LOCAL and savepoints replayed there.
 * Isolation levels that cannot move (repeatable read, serializable) stay on the primary, and a session
 * whose default is serializable never sends a read to a standby (which would refuse it with 0A000).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { routeCounter, startProxy } from './fixtures/proxy-fixture.js';
import { RawPgClient, dataRow, errorFields, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(240_000);

const TAGGED = '-c pgsplit.route=replica';

t.test('tagged transactions opened with a plain BEGIN', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: { routing: { max_lag: '5s' } } });
  await fx.cluster.primary.query('CREATE TABLE items (id int PRIMARY KEY, v text)');
  await fx.cluster.primary.query("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g");
  await fx.cluster.waitForReplication();

  t.test('a read-only transaction runs on a replica', async (t) => {
    const c = await fx.client({ options: TAGGED });
    const count = routeCounter(fx);
    await c.query('BEGIN');
    const a = await c.query<{ r: boolean; n: number }>('SELECT pg_is_in_recovery() AS r, count(*)::int AS n FROM items');
    const b = await c.query<{ v: string }>('SELECT v FROM items WHERE id = $1', [3]);
    await c.query('COMMIT');
    t.equal(a.rows[0]?.r, true, 'the reads ran on a standby');
    t.equal(a.rows[0]?.n, 10);
    t.equal(b.rows[0]?.v, 'v3', 'a parameterized read inside the transaction');
    const n = count();
    t.equal(n.primary, 0, 'nothing reached the primary');
    t.ok(n.replica >= 3, `reads and COMMIT on the replica (${n.replica})`);
  });

  t.test('BEGIN then COMMIT or ROLLBACK with nothing in between reaches no server', async (t) => {
    const c = await fx.client({ options: TAGGED });
    const count = routeCounter(fx);
    for (const end of ['COMMIT', 'ROLLBACK', 'END', 'ABORT']) {
      await c.query('BEGIN');
      const r = await c.query(end);
      t.equal(r.command, end === 'END' ? 'COMMIT' : end === 'ABORT' ? 'ROLLBACK' : end, `${end} answers as PostgreSQL does`);
    }
    t.same(count(), { primary: 0, replica: 0 });
    const after = await c.query<{ x: number }>('SELECT 1 AS x');
    t.equal(after.rows[0]?.x, 1, 'the session serves afterwards');
  });

  t.test('read, then write: the transaction moves to the primary before the write', async (t) => {
    const c = await fx.client({ options: TAGGED });
    await c.query('BEGIN');
    const before = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r, count(*) FROM items');
    t.equal(before.rows[0]?.r, true, 'the first read ran on a standby');
    await c.query('SET LOCAL statement_timeout = 4321');
    await c.query('SAVEPOINT s1');
    await c.query("SET LOCAL application_name = 'moved-tx'");
    await c.query('RELEASE SAVEPOINT s1');
    await c.query('SAVEPOINT s2');
    await c.query("INSERT INTO items VALUES (100, 'written')");
    const mid = await c.query<{ r: boolean; st: string; app: string; v: string }>(
      "SELECT pg_is_in_recovery() AS r, current_setting('statement_timeout') AS st, current_setting('application_name') AS app, (SELECT v FROM items WHERE id = 100) AS v");
    t.equal(mid.rows[0]?.r, false, 'after the write the transaction is on the primary');
    t.equal(mid.rows[0]?.st, '4321ms', 'SET LOCAL made on the replica holds on the primary');
    t.equal(mid.rows[0]?.app, 'moved-tx', 'SET LOCAL inside a released savepoint holds too');
    t.equal(mid.rows[0]?.v, 'written', 'the transaction reads its own write');
    await c.query('ROLLBACK TO SAVEPOINT s2');
    const gone = await c.query('SELECT 1 FROM items WHERE id = 100');
    t.equal(gone.rowCount, 0, 'ROLLBACK TO a savepoint made on the replica works on the primary');
    await c.query("INSERT INTO items VALUES (101, 'kept')");
    await c.query('COMMIT');
    const p = { rows: await fx.cluster.primary.query('SELECT v FROM items WHERE id IN (100, 101) ORDER BY id') };
    t.same(p.rows, [{ v: 'kept' }], 'the committed write is on the primary, the rolled back one is not');
    const st = await c.query<{ st: string }>("SELECT current_setting('statement_timeout') AS st");
    t.equal(st.rows[0]?.st, '0', 'SET LOCAL ended with the transaction');
  });

  t.test('a transaction that opens with SET LOCAL or SAVEPOINT opens on a replica, and moves with it', async (t) => {
    const c = await fx.client({ options: TAGGED });
    await c.query('BEGIN');
    await c.query("SET LOCAL lock_timeout = '1234ms'");
    const first = await c.query<{ r: boolean; lt: string }>("SELECT pg_is_in_recovery() AS r, current_setting('lock_timeout') AS lt");
    t.same(first.rows[0], { r: true, lt: '1234ms' }, 'SET LOCAL first: the transaction opened on a standby, with it');
    await c.query('COMMIT');
    const count = routeCounter(fx);
    await c.query('BEGIN');
    await c.query('SAVEPOINT first');
    await c.query("INSERT INTO items VALUES (110, 'after a savepoint')");
    await c.query('ROLLBACK TO SAVEPOINT first');
    await c.query("INSERT INTO items VALUES (111, 'kept')");
    await c.query('COMMIT');
    t.ok(count().replica >= 1, 'SAVEPOINT first ran on the replica');
    t.same(await fx.cluster.primary.query('SELECT id FROM items WHERE id IN (110, 111) ORDER BY id'), [{ id: 111 }],
      'the savepoint was replayed on the primary: ROLLBACK TO it undid the first insert only');
  });

  t.test('an error in a replica transaction, then ROLLBACK: as on a direct connection', async (t) => {
    const c = await fx.client({ options: TAGGED });
    await c.query('BEGIN');
    await c.query('SELECT count(*) FROM items');
    const e = await c.query('SELECT 1/0').then(() => null, (err: { code?: string }) => err.code);
    t.equal(e, '22012');
    const aborted = await c.query("INSERT INTO items VALUES (102, 'x')").then(() => null, (err: { code?: string }) => err.code);
    t.equal(aborted, '25P02', 'a write in the failed transaction is refused as by PostgreSQL, not with 25006');
    await c.query('ROLLBACK');
    const ok = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM items WHERE id = 102');
    t.equal(ok.rows[0]?.n, 0);
  });

  t.test('a savepoint rolled back after an error, then a write: moved with the savepoints', async (t) => {
    const c = await fx.client({ options: TAGGED });
    await c.query('BEGIN');
    await c.query('SAVEPOINT a');
    await c.query('SELECT count(*) FROM items');
    await c.query('SELECT 1/0').catch(() => undefined);
    await c.query('ROLLBACK TO SAVEPOINT a');
    await c.query("INSERT INTO items VALUES (103, 'after-error')");
    await c.query('RELEASE SAVEPOINT a');
    await c.query('COMMIT');
    const p = { rows: await fx.cluster.primary.query('SELECT v FROM items WHERE id = 103') };
    t.same(p.rows, [{ v: 'after-error' }]);
  });

  t.test('SELECT ... FOR UPDATE and cursors move the transaction before they run', async (t) => {
    const c = await fx.client({ options: TAGGED });
    await c.query('BEGIN');
    await c.query('SELECT count(*) FROM items');
    const r = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r FROM items WHERE id = 1 FOR UPDATE');
    t.equal(r.rows[0]?.r, false, 'a locking read runs on the primary');
    await c.query('COMMIT');
    await c.query('BEGIN');
    await c.query('DECLARE cur CURSOR FOR SELECT id, pg_is_in_recovery() AS r FROM items ORDER BY id');
    const f1 = await c.query<{ id: number; r: boolean }>('FETCH 2 FROM cur');
    await c.query("UPDATE items SET v = 'touched' WHERE id = 1");
    const f2 = await c.query<{ id: number }>('FETCH 2 FROM cur');
    await c.query('COMMIT');
    t.same(f1.rows.map((x) => x.id), [1, 2]);
    t.equal(f1.rows[0]?.r, false, 'the cursor was declared on the primary');
    t.same(f2.rows.map((x) => x.id), [3, 4], 'the cursor survives the write');
  });

  t.test('repeatable read and serializable transactions run on the primary', async (t) => {
    const c = await fx.client({ options: TAGGED });
    for (const begin of ['BEGIN ISOLATION LEVEL REPEATABLE READ', 'BEGIN ISOLATION LEVEL SERIALIZABLE', 'START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE', 'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY']) {
      await c.query(begin);
      const r = await c.query<{ r: boolean; iso: string }>("SELECT pg_is_in_recovery() AS r, current_setting('transaction_isolation') AS iso FROM items LIMIT 1");
      await c.query('COMMIT');
      t.equal(r.rows[0]?.r, false, `${begin}: on the primary`);
    }
    await c.query('BEGIN');
    await c.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
    const r = await c.query<{ r: boolean; iso: string }>("SELECT pg_is_in_recovery() AS r, current_setting('transaction_isolation') AS iso");
    await c.query('COMMIT');
    t.same(r.rows[0], { r: false, iso: 'serializable' }, 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE after a deferred BEGIN: on the primary');
  });

  t.test('a session whose default isolation is serializable never reads from a standby', async (t) => {
    for (const how of ['startup', 'set', 'characteristics'] as const) {
      const c = await fx.client({ options: how === 'startup' ? `${TAGGED} -c default_transaction_isolation=serializable` : TAGGED });
      if (how === 'set') await c.query("SET default_transaction_isolation = 'serializable'");
      if (how === 'characteristics') await c.query('SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE');
      const auto = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r FROM items LIMIT 1');
      t.equal(auto.rows[0]?.r, false, `${how}: an autocommit read runs on the primary (no 0A000)`);
      await c.query('BEGIN');
      const tx = await c.query<{ r: boolean; iso: string }>("SELECT pg_is_in_recovery() AS r, current_setting('transaction_isolation') AS iso");
      await c.query('COMMIT');
      t.same(tx.rows[0], { r: false, iso: 'serializable' }, `${how}: a transaction runs on the primary, serializable`);
      await c.query('BEGIN READ ONLY');
      const ro = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      await c.query('COMMIT');
      t.equal(ro.rows[0]?.r, false, `${how}: BEGIN READ ONLY too`);
      if (how !== 'startup') {
        await c.query('RESET default_transaction_isolation');
        const back = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
        t.equal(back.rows[0]?.r, true, `${how}: after RESET reads go to the replica again`);
      }
    }
  });

  t.test('routing.transactions: primary keeps every transaction on the primary', async (t) => {
    const fx2 = await startProxy(t, { reuseCluster: fx.cluster, config: { routing: { transactions: 'primary' } } });
    const c = await fx2.client({ options: TAGGED });
    await c.query('BEGIN');
    const r = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    await c.query('COMMIT');
    t.equal(r.rows[0]?.r, false);
    const auto = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    t.equal(auto.rows[0]?.r, true, 'autocommit reads still go to the replica');
  });

  t.test('psql with AUTOCOMMIT off: reads on the replica, the write on the primary', async (t) => {
    const script = [
      '\\set AUTOCOMMIT off',
      'SELECT pg_is_in_recovery() AS first_read;',
      'SELECT count(*) AS n FROM items;',
      'COMMIT;',
      'SELECT pg_is_in_recovery() AS second_read;',
      "INSERT INTO items VALUES (200, 'psql');",
      'SELECT pg_is_in_recovery() AS after_write, v FROM items WHERE id = 200;',
      'COMMIT;',
    ].join('\n');
    // Asynchronously: pgsplit runs in this process.
    const r = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-f', '-'], { env: fx.env({ PGOPTIONS: TAGGED }), timeout: 60_000 },
        (err, stdout, stderr) => resolve({ status: err ? 1 : 0, stdout, stderr }));
      child.stdin?.end(script);
    });
    t.equal(r.status, 0, r.stderr);
    t.same(r.stdout.trim().split('\n'), ['t', String(await countItems()), 't', 'f|psql']);
    async function countItems(): Promise<number> {
      const q = { rows: await fx.cluster.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM items WHERE id <> 200') };
      return q.rows[0]?.n ?? -1;
    }
  });
});

t.test('reads of a sequence relation go to the primary', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  await fx.cluster.primary.query('CREATE SEQUENCE counter_seq');
  await fx.cluster.primary.query("SELECT nextval('counter_seq')");
  await fx.cluster.waitForReplication();
  const c = await fx.client({ options: TAGGED });
  const direct = await fx.cluster.primary.query<{ last_value: string; log_cnt: string; is_called: boolean }>('SELECT last_value, log_cnt, is_called FROM counter_seq');
  const r = await c.query<{ last_value: string; log_cnt: string; is_called: boolean; r: boolean }>('SELECT last_value, log_cnt, is_called, pg_is_in_recovery() AS r FROM counter_seq');
  t.same(r.rows[0], { ...direct[0], r: false }, 'the same row as on the primary, read there (a standby shows its WAL-logged state)');
  t.equal((await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r, true, 'other reads still go to the replica');
  await c.query('CREATE SEQUENCE made_here_seq');
  await fx.cluster.waitForReplication();
  const m = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r, last_value FROM made_here_seq');
  t.equal(m.rows[0]?.r, false, 'a sequence created through pgsplit is known at once');
  await c.query('BEGIN');
  await c.query('SELECT count(*) FROM pg_class');
  const inTx = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r, is_called FROM public.counter_seq');
  await c.query('COMMIT');
  t.equal(inTx.rows[0]?.r, false, 'inside a replica transaction, the read of a sequence moves it to the primary');
});

t.test('a BEGIN sent through the extended protocol (psycopg, a named statement) opens on a replica too', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const c = await fx.client({ options: TAGGED });
  for (const begin of [{ text: 'BEGIN', name: 'begin_ext' }, { text: 'BEGIN', queryMode: 'extended' }, { text: 'BEGIN', name: 'begin_ext' }]) {
    await c.query(begin as { text: string });
    const r = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    await c.query({ text: 'COMMIT', queryMode: 'extended' } as { text: string });
    t.equal(r.rows[0]?.r, true, `${JSON.stringify(begin)}: the read runs on a replica`);
  }
  await c.query({ text: 'BEGIN', name: 'begin_ext' });
  await c.query('SELECT 1');
  const w = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r, txid_current()');
  await c.query('ROLLBACK');
  t.equal(w.rows[0]?.r, false, 'and moves to the primary at its first write');
});

t.test('BEGIN READ WRITE (psycopg and SQLAlchemy after a read-only unit of work) reads on a replica too', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const c = await fx.client({ options: TAGGED });
  await c.query('BEGIN READ WRITE');
  const r = await c.query<{ r: boolean; ro: string }>("SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro");
  const w = await c.query<{ r: boolean; ro: string }>("SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro, txid_current() > 0 AS x");
  await c.query('COMMIT');
  t.same(r.rows[0], { r: true, ro: 'on' }, 'the read ran on a standby (no 0A000 for READ WRITE there)');
  t.same({ r: w.rows[0]?.r, ro: w.rows[0]?.ro }, { r: false, ro: 'off' }, 'moved to the primary, opened there READ WRITE as the client asked');
  const e = await c.query({ text: 'BEGIN READ WRITE', name: 'brw' }).then(() => null, (err: { code?: string }) => err.code ?? 'error');
  t.equal(e, null, 'an extended-protocol BEGIN READ WRITE succeeds (it opens on the primary)');
  await c.query('ROLLBACK');
});

t.test('pipelined: a write behind the ROLLBACK TO SAVEPOINT that repairs a failed replica transaction moves it to the primary', async (t) => {
  // The statements after the error are sent before its answer comes: the failed status ('E') the
  // replica reports for SELECT 1/0 is over once ROLLBACK TO SAVEPOINT runs, so the INSERT behind it must
  // still move the transaction (it ran on the replica and failed with 25006 when it followed the 'E').
  // Each round's first read follows the previous round's commit, which the replica replays only at the
  // primary's WAL writer flush (synchronous_commit off, up to wal_writer_delay): it waits for it however
  // long it takes, so that it always runs on the replica.
  const fx = await startProxy(t, { replicas: 1, config: { routing: { max_lag: '5s', read_your_writes_timeout: '30s' } } });
  await fx.cluster.primary.query('CREATE TABLE piped (k text)');
  await fx.cluster.waitForReplication();
  const c = await RawPgClient.connect({ port: fx.port, options: TAGGED });
  const outcomes: string[] = [];
  for (let round = 0; round < 40; round++) {
    c.send(fe.query('BEGIN'), fe.query('SELECT pg_is_in_recovery()::text'), fe.query('SAVEPOINT s'), fe.query('SELECT 1/0'),
      fe.query('ROLLBACK TO SAVEPOINT s'), fe.query(`INSERT INTO piped VALUES ('r${round}')`), fe.query('SELECT pg_is_in_recovery()::text'),
      fe.query('COMMIT'));
    const msgs = await c.untilReady(8);
    const errors = msgs.filter((m) => m.type === 'E').map((m) => errorFields(m.payload).C ?? '?');
    const standby = msgs.filter((m) => m.type === 'D').map((m) => dataRow(m.payload)[0]);
    const tags = msgs.filter((m) => m.type === 'C').map((m) => m.payload.toString('utf8', 0, m.payload.length - 1));
    outcomes.push(`errors ${errors.join(',')}; standby ${standby.join(',')}; ${tags.join(',')}`);
  }
  t.same(outcomes, Array.from({ length: 40 }, () => 'errors 22012; standby true,false; BEGIN,SELECT 1,SAVEPOINT,ROLLBACK,INSERT 0 1,SELECT 1,COMMIT'),
    'only the division by zero failed; the first read ran on the replica, the read after the write on the primary');
  const rows = await fx.cluster.primary.query<{ n: number }>('SELECT count(*)::int AS n FROM piped');
  t.same(rows, [{ n: 40 }], 'every round\'s row is on the primary, once');
  c.close();
});
