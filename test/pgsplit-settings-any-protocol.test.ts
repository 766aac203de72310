/**
 * pgsplit's own settings (SET / SHOW / RESET pgsplit.*) in every way drivers send them, and tagging
 * mistakes made loud:
 * - through the extended protocol (pgjdbc's default, node-postgres queryMode extended), answered as a
 *   server answers a SET or SHOW, never reaching a server (which would take it as a placeholder);
 * - with comments around them (ORMs, sqlcommenter); refused when not alone (SET LOCAL, several
 *   statements in one string) instead of silently doing nothing;
 * - at startup: an unknown name or a bad value refuses the connection (42704 / 22023);
 * - RESET pgsplit.route returns to the startup tag; SET ... = DEFAULT answers SET.
 * Also: a tagged session does not look like a standby (in_hot_standby), so libpq's
 * target_session_attrs=read-write accepts it; and an unsynced batch of reads open on a replica
 * (Parse/Describe/Flush) does not take the next write there.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import pg from 'pg';
import { routeCounter, startProxy } from './fixtures/proxy-fixture.js';
import { RawPgClient, describeAll, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(180_000);

const TAGGED = '-c pgsplit.route=replica';
const fx = await startProxy(t, { replicas: 1 });
await fx.cluster.primary.query('CREATE TABLE s_t (id int PRIMARY KEY, v text)');
await fx.cluster.waitForReplication();

async function raw(t: { teardown(fn: () => unknown): void }, options?: string): Promise<RawPgClient> {
  const c = await RawPgClient.connect({ port: fx.port, options });
  t.teardown(() => c.close());
  return c;
}
const whereRead = fe.extended('SELECT pg_is_in_recovery() AS r');

t.test('extended protocol: SET, SHOW and RESET pgsplit.route are answered by pgsplit', async (t) => {
  const c = await raw(t);
  const direct = await RawPgClient.connect({ port: fx.cluster.primary.port });
  t.teardown(() => direct.close());
  // The shape PostgreSQL gives a SET of its own parameters.
  direct.send(fe.parse('', 'SET statement_timeout = 0'), fe.bind('', ''), fe.describe('P', ''), fe.execute(), fe.sync());
  const shape = describeAll(await direct.untilReady(1));
  c.send(fe.parse('', "SET pgsplit.route = 'replica'"), fe.bind('', ''), fe.describe('P', ''), fe.execute(), fe.sync());
  t.same(describeAll(await c.untilReady(1)), shape, 'SET pgsplit.route: ParseComplete, BindComplete, NoData, SET, ReadyForQuery, as a server answers a SET');
  c.send(whereRead);
  t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'BindComplete', 'Row:t', 'Complete:SELECT 1', 'Ready:I'], 'the session is tagged: reads go to a replica');
  c.send(fe.parse('show', 'SHOW pgsplit.route'), fe.describe('S', 'show'), fe.bind('', 'show'), fe.execute(), fe.sync());
  t.same(describeAll(await c.untilReady(1)),
    ['ParseComplete', 'Params:', 'Fields:pgsplit.route', 'BindComplete', 'Row:replica', 'Complete:SHOW', 'Ready:I'], 'SHOW through a named statement');
  c.send(fe.bind('', 'show'), fe.execute(), fe.close('S', 'show'), fe.sync());
  t.same(describeAll(await c.untilReady(1)), ['BindComplete', 'Row:replica', 'Complete:SHOW', 'CloseComplete', 'Ready:I'], 'executed again, then closed');
  c.send(fe.bind('', 'show'), fe.execute(), fe.sync());
  const gone = describeAll(await c.untilReady(1));
  t.same(gone, ['Error:26000', 'Ready:I'], 'once closed, the server says the statement does not exist');
  c.send(fe.parse('', 'RESET pgsplit.route'), fe.bind('', ''), fe.execute(), fe.sync(), whereRead);
  t.same(describeAll(await c.untilReady(2)), ['ParseComplete', 'BindComplete', 'Complete:RESET', 'Ready:I', 'ParseComplete', 'BindComplete', 'Row:f', 'Complete:SELECT 1', 'Ready:I'],
    'RESET returns to the startup tag (untagged): reads go to the primary');
  c.send(fe.parse('', "SET pgsplit.route = 'replcia'"), fe.bind('', ''), fe.execute(), fe.sync());
  const bad = await c.untilReady(1);
  t.same(describeAll(bad), ['ParseComplete', 'BindComplete', 'Error:22023', 'Ready:I'], 'a bad value: 22023 at Execute, as a server does');
});

t.test('node-postgres in extended mode', async (t) => {
  const c = await fx.client({ options: TAGGED });
  const q = (text: string) => c.query({ text, queryMode: 'extended' } as pg.QueryConfig & { queryMode: 'extended' });
  t.same((await q('SHOW pgsplit.route')).rows, [{ 'pgsplit.route': 'replica' }], 'tagged at startup');
  await q("SET pgsplit.route = 'primary'");
  t.same((await q('SHOW pgsplit.route')).rows, [{ 'pgsplit.route': 'primary' }], 'untagged by an extended SET');
  t.equal((await q('SELECT pg_is_in_recovery() AS r')).rows[0].r, false, 'reads now go to the primary');
  await q('RESET pgsplit.route');
  t.equal((await q('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'RESET returns to the startup tag');
  const e = await q('SHOW pgsplit.nothing').then(() => null, (err: { code?: string }) => err.code);
  t.equal(e, '42704', 'an unknown pgsplit setting: 42704');
  await fx.cluster.primary.query("INSERT INTO s_t VALUES (90, 'lsn') ON CONFLICT DO NOTHING");
  const [{ l: before }] = await fx.cluster.primary.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l') as [{ l: string }];
  const lsn = (await q('SHOW pgsplit.lsn')).rows[0]['pgsplit.lsn'] as string;
  t.match(lsn, /^[0-9A-F]+\/[0-9A-F]+$/, `extended SHOW pgsplit.lsn gives the primary's WAL position: ${lsn}`);
  const covers = await fx.cluster.primary.query<{ covers: boolean }>('SELECT ($1::pg_lsn >= $2::pg_lsn) AS covers', [lsn, before]);
  t.same(covers, [{ covers: true }], 'at or past the last write seen before it was asked');
  t.match((await c.query('SHOW pgsplit.lsn')).rows[0]['pgsplit.lsn'], /^[0-9A-F]+\/[0-9A-F]+$/, 'simple SHOW pgsplit.lsn gives one too');
});

t.test('extended SHOW pgsplit.lsn in a batch: answered in order, then the rest of the batch', async (t) => {
  const c = await raw(t, TAGGED);
  c.send(
    fe.parse('lsn', 'SHOW pgsplit.lsn'), fe.describe('S', 'lsn'), fe.bind('', 'lsn'), fe.execute(),
    fe.parse('', 'SELECT 2 AS two'), fe.bind('', ''), fe.execute(), fe.sync(),
  );
  const got = describeAll(await c.untilReady(1));
  t.same(got.slice(0, 4), ['ParseComplete', 'Params:', 'Fields:pgsplit.lsn', 'BindComplete'], 'Parse, Describe and Bind answered as a server would');
  t.match(got[4], /^Row:[0-9A-F]+\/[0-9A-F]+$/, 'Execute: the WAL position');
  t.same(got.slice(5), ['Complete:SHOW', 'ParseComplete', 'BindComplete', 'Row:2', 'Complete:SELECT 1', 'Ready:I'], 'then the read behind it, in order');
  c.send(fe.bind('', 'lsn'), fe.execute(), fe.parse('', "SET pgsplit.route = 'nowhere'"), fe.bind('', ''), fe.execute(), fe.bind('', 'lsn'), fe.execute(), fe.sync());
  const bad = describeAll(await c.untilReady(1));
  t.same([bad[0], bad[2], bad[3], bad[4], bad[5]], ['BindComplete', 'Complete:SHOW', 'ParseComplete', 'BindComplete', 'Error:22023'], 'an error after a SHOW pgsplit.lsn in the same batch');
  t.same(bad.slice(6), ['Ready:I'], 'skips the rest up to Sync, as a server does');
});

t.test('a batch with BEGIN, then SET pgsplit.route, then a read (pgjdbc with autocommit off)', async (t) => {
  const c = await raw(t);
  c.send(
    fe.parse('', 'BEGIN'), fe.bind('', ''), fe.execute(),
    fe.parse('', "SET pgsplit.route = 'replica'"), fe.bind('', ''), fe.execute(),
    fe.parse('', 'SELECT 1 AS one'), fe.bind('', ''), fe.execute(),
    fe.sync(),
  );
  t.same(describeAll(await c.untilReady(1)), [
    'ParseComplete', 'BindComplete', 'Complete:BEGIN',
    'ParseComplete', 'BindComplete', 'Complete:SET',
    'ParseComplete', 'BindComplete', 'Row:1', 'Complete:SELECT 1', 'Ready:T',
  ]);
  c.send(fe.query('COMMIT'), fe.query('SHOW pgsplit.route'));
  t.same(describeAll(await c.untilReady(2)), ['Complete:COMMIT', 'Ready:I', 'Fields:pgsplit.route', 'Row:replica', 'Complete:SHOW', 'Ready:I']);
});

t.test('comments around SET pgsplit.*, and SETs that cannot work, refused', async (t) => {
  const c = await fx.client();
  await c.query("/* app='nova',controller='audit' */ SET pgsplit.route = 'replica'");
  t.same((await c.query('SHOW pgsplit.route')).rows, [{ 'pgsplit.route': 'replica' }], 'a leading comment (sqlcommenter style)');
  await c.query("SET pgsplit.route = 'primary' -- untag\n");
  t.same((await c.query('SHOW pgsplit.route')).rows, [{ 'pgsplit.route': 'primary' }], 'a trailing comment');
  await c.query("  -- tag it\n  SET pgsplit.route TO replica /* done */ ;  ");
  t.same((await c.query('SHOW pgsplit.route')).rows, [{ 'pgsplit.route': 'replica' }], 'comments and white space on both sides');
  for (const sql of ["SET LOCAL pgsplit.route = 'primary'", "SELECT 1; SET pgsplit.route = 'primary'", "SET pgsplit.route = 'primary'; SELECT 1"]) {
    const e = await c.query(sql).then(() => null, (err: { code?: string; hint?: string }) => err);
    t.equal(e?.code, '0A000', `refused: ${sql}`);
    t.match(e?.hint ?? '', /alone/);
  }
  t.same((await c.query('SHOW pgsplit.route')).rows, [{ 'pgsplit.route': 'replica' }], 'nothing changed the tag');
  const r = await c.query("SET pgsplit.route = DEFAULT");
  t.equal(r.command, 'SET', 'SET ... = DEFAULT answers SET, as PostgreSQL does');
  t.same((await c.query('SHOW pgsplit.route')).rows, [{ 'pgsplit.route': 'primary' }], 'and returns to the startup tag');
});

t.test('pgsplit settings in the startup options are checked', async (t) => {
  const connect = async (options: string): Promise<{ code?: string; message: string } | pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port: fx.port, user: 'postgres', database: 'postgres', options });
    c.on('error', () => undefined);
    try {
      await c.connect();
      t.teardown(() => c.end());
      return c;
    } catch (e) {
      return e as { code?: string; message: string };
    }
  };
  const typo = await connect('-c pgsplit.route=replcia');
  t.ok(!(typo instanceof pg.Client), 'a bad route value refuses the connection');
  if (!(typo instanceof pg.Client)) {
    t.equal(typo.code, '22023');
    t.match(typo.message, /replcia/, 'the message names the value');
  }
  const unknown = await connect('-c pgsplit.rout=replica');
  t.ok(!(unknown instanceof pg.Client), 'an unknown pgsplit setting refuses the connection');
  if (!(unknown instanceof pg.Client)) {
    t.equal(unknown.code, '42704');
    t.match(unknown.message, /pgsplit\.rout/);
  }
  const ok = await connect(`${TAGGED} -c pgsplit.max_lag=250ms`);
  t.ok(ok instanceof pg.Client, 'valid settings connect');
  if (ok instanceof pg.Client) {
    t.same((await ok.query('SHOW pgsplit.max_lag')).rows, [{ 'pgsplit.max_lag': '250ms' }], 'pgsplit.max_lag from the startup options applies');
  }
});

t.test('a tagged session does not look like a standby', async (t) => {
  const c = await raw(t, TAGGED);
  t.equal(c.parameters.get('in_hot_standby'), 'off', 'in_hot_standby reported off');
  const r = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile('psql', ['-X', '-A', '-t', '-c', 'SELECT pg_is_in_recovery()', `host=127.0.0.1 port=${fx.port} user=postgres dbname=postgres target_session_attrs=read-write options='${TAGGED}'`],
      { timeout: 30_000 }, (err, out, e) => resolve({ code: err ? 1 : 0, out, err: e }));
  });
  t.equal(r.code, 0, `libpq target_session_attrs=read-write accepts a tagged session ${r.err}`);
  t.equal(r.out.trim(), 't', 'and its reads still go to a replica');
});

t.test('an unsynced batch of reads on a replica does not take the next write there', async (t) => {
  const c = await raw(t, TAGGED);
  const count = routeCounter(fx);
  // Prepared as some drivers prepare everything: Parse, Describe, Flush, no Sync.
  c.send(fe.parse('q1', 'SELECT v, pg_is_in_recovery() AS r FROM s_t WHERE id = $1'), fe.describe('S', 'q1'), fe.flush());
  t.same(describeAll(await c.take(3)), ['ParseComplete', 'Params:23', 'Fields:v,r']);
  c.send(fe.query("INSERT INTO s_t VALUES (1, 'one')"));
  t.same(describeAll(await c.untilReady(1)), ['Complete:INSERT 0 1', 'Ready:I'], 'a simple-protocol INSERT after it succeeds (no 25006)');
  c.send(fe.bind('', 'q1', ['1']), fe.execute(), fe.sync());
  const after = describeAll(await c.untilReady(1));
  t.match(after[1], /^Row:one,[tf]$/, 'the prepared read runs afterwards and sees the write (read-your-writes, wherever it runs)');
  t.same([after[0], ...after.slice(2)], ['BindComplete', 'Complete:SELECT 1', 'Ready:I']);
  t.same((await fx.cluster.primary.query('SELECT v FROM s_t WHERE id = 1')).map((r) => r.v), ['one']);
  c.send(fe.parse('q2', 'SELECT 1'), fe.describe('S', 'q2'), fe.flush());
  await c.take(3);
  c.send(fe.query('BEGIN'), fe.query("INSERT INTO s_t VALUES (2, 'two')"), fe.query('COMMIT'));
  t.same(describeAll(await c.untilReady(3)), ['Complete:BEGIN', 'Ready:T', 'Complete:INSERT 0 1', 'Ready:T', 'Complete:COMMIT', 'Ready:I'], 'BEGIN and a write after it');
  c.send(fe.parse('bad', 'SELECT nope FROM s_t'), fe.flush());
  t.same(describeAll(await c.take(1)), ['Error:42703'], 'a batch that failed');
  c.send(fe.query("INSERT INTO s_t VALUES (3, 'skipped')"), fe.sync());
  t.same(describeAll(await c.untilReady(1)), ['Ready:I'], 'the Query after the failed batch is skipped up to the Sync, as on a direct connection');
  t.same(await fx.cluster.primary.query('SELECT v FROM s_t WHERE id = 3'), []);
  t.ok(count().replica >= 1, 'the prepared reads were on a replica');
});

t.test('pgsplit settings are transactional, as PostgreSQL settings are', async (t) => {
  const c = await fx.client({ options: TAGGED });
  const show = async (name: string): Promise<string> => (await c.query(`SHOW pgsplit.${name}`)).rows[0][`pgsplit.${name}`] as string;
  await c.query('BEGIN');
  await c.query("SET pgsplit.route = 'primary'");
  t.equal(await show('route'), 'primary', 'inside the transaction the SET holds');
  await c.query('ROLLBACK');
  t.equal(await show('route'), 'replica', 'ROLLBACK undoes it');
  await c.query('BEGIN');
  await c.query('SELECT 1');
  await c.query('SAVEPOINT a');
  await c.query("SET pgsplit.max_lag = '5s'");
  await c.query('ROLLBACK TO SAVEPOINT a');
  t.equal(await show('max_lag'), '1000ms', 'ROLLBACK TO SAVEPOINT undoes what followed the savepoint');
  await c.query("SET pgsplit.max_lag = '3s'");
  await c.query('RELEASE SAVEPOINT a');
  await c.query('COMMIT');
  t.equal(await show('max_lag'), '3000ms', 'a SET committed with its transaction stays');
  await c.query('BEGIN');
  await c.query("SET pgsplit.route = 'primary'");
  await c.query('SELECT 1/0').catch(() => undefined);
  await c.query('COMMIT');
  t.equal(await show('route'), 'replica', 'COMMIT of a failed transaction rolls it back, and the SET with it');
  await c.query('BEGIN');
  await c.query("SET pgsplit.route = 'primary'");
  await c.query('COMMIT');
  t.equal(await show('route'), 'primary', 'committed');
});
