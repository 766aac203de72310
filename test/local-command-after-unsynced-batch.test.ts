/**
 * A statement pgsplit answers itself (SHOW/SET pgsplit.*) or a Terminate right behind Parse/Bind/Execute
 * with no Sync: pgsplit once waited for the batch's answers, which the server holds until a Sync that
 * the client sends only after it, and both sides waited forever. Now pgsplit asks the server where the
 * batch stands (a probe and Flush): the batch's answers come first, then pgsplit's; after an error in
 * the batch the statement is skipped, as PostgreSQL skips a Query there. A Terminate leaves at once and
 * the server rolls the batch's implicit transaction back.
 */
import t from 'tap';
import pg from 'pg';
import { fe } from './fixtures/raw-pg-client.js';
import { startProxy } from './fixtures/proxy-fixture.js';
import { PAUSE, answerTo, compareWithDirect } from './fixtures/stream-compare.js';

t.setTimeout(180_000);

const after = fe.query("SELECT 'after'");

t.test('local statements and Terminate behind an unsynced batch', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const primary = new pg.Client({ connectionString: fx.cluster.primary.url() });
  await primary.connect();
  t.teardown(() => primary.end());
  await primary.query('CREATE TABLE batch_left (n int)');

  for (const [tagged, route] of [[false, 'primary'], [true, 'replica']] as const) {
    const options = tagged ? '-c pgsplit.route=replica' : undefined;
    const ok = await answerTo(fx.port, [fe.parse('', 'SELECT 1'), fe.bind('', ''), fe.execute(), fe.query('SHOW pgsplit.route'), fe.sync(), after], { options, atLeast: 13 });
    ok.client.close();
    t.same(ok.messages, [
      'ParseComplete', 'BindComplete', 'Row:1', 'Complete:SELECT 1',
      'Fields:pgsplit.route', `Row:${route}`, 'Complete:SHOW', 'Ready:I',
      'Ready:I', 'Fields:?column?', 'Row:after', 'Complete:SELECT 1', 'Ready:I',
    ], `${route}: the batch's answers, then SHOW pgsplit.route's, then the Sync's`);

    const lsn = await answerTo(fx.port, [fe.parse('', 'SELECT 1'), fe.bind('', ''), fe.execute(), fe.query('SHOW pgsplit.lsn'), fe.sync(), after], { options, atLeast: 13 });
    lsn.client.close();
    t.same(lsn.messages.slice(0, 5), ['ParseComplete', 'BindComplete', 'Row:1', 'Complete:SELECT 1', 'Fields:pgsplit.lsn'], `${route}: SHOW pgsplit.lsn (asks the primary) answered after the batch`);
    t.match(lsn.messages[5], /^Row:[0-9A-F]+\/[0-9A-F]+$/, `${route}: with a WAL position`);
    t.same(lsn.messages.slice(6), ['Complete:SHOW', 'Ready:I', 'Ready:I', 'Fields:?column?', 'Row:after', 'Complete:SELECT 1', 'Ready:I'], `${route}: and the rest in order`);

    const set = await answerTo(fx.port, [fe.parse('', 'SELECT 1'), fe.bind('', ''), fe.execute(), fe.query("SET pgsplit.max_lag = '3s'"), fe.query('SHOW pgsplit.max_lag'), fe.sync()], { options, atLeast: 11 });
    set.client.close();
    t.same(set.messages, [
      'ParseComplete', 'BindComplete', 'Row:1', 'Complete:SELECT 1', 'Complete:SET', 'Ready:I',
      'Fields:pgsplit.max_lag', 'Row:3000ms', 'Complete:SHOW', 'Ready:I', 'Ready:I',
    ], `${route}: SET then SHOW pgsplit.max_lag behind the batch`);
  }

  // After an error in the batch, PostgreSQL skips a Query up to Sync: the local statement is skipped too.
  const { direct, proxied } = await compareWithDirect(fx, [fe.parse('', 'SELECT 1/0'), fe.bind('', ''), fe.execute(), fe.query('SHOW pgsplit.route'), fe.sync(), after]);
  for (const p of proxied) {
    t.same(p.messages, direct.messages, `error in the batch: SHOW pgsplit.route skipped like a direct Query (${p.tagged ? 'tagged' : 'untagged'})`);
    t.equal(p.stillServes, true, 'and the session still serves');
  }

  // SET pgsplit.* ends the batch as a Query would: the INSERT before it is committed, and an error in a
  // later batch does not take it back (pgsplit once answered the SET itself and left the batch open).
  for (const tagged of [false, true]) {
    const a = await answerTo(fx.port, [
      fe.parse('', 'INSERT INTO batch_left VALUES (77)'), fe.bind('', ''), fe.execute(), fe.query("SET pgsplit.max_lag = '2s'"),
      fe.parse('', 'SELECT 1/0'), fe.bind('', ''), fe.execute(), fe.sync(),
    ], { options: tagged ? '-c pgsplit.route=replica' : undefined, atLeast: 8 });
    a.client.close();
    t.same(a.messages, ['ParseComplete', 'BindComplete', 'Complete:INSERT 0 1', 'Complete:SET', 'Ready:I', 'ParseComplete', 'Error:22012', 'Ready:I'],
      `SET pgsplit.max_lag behind an INSERT, then a failing batch (${tagged ? 'tagged' : 'untagged'})`);
    const { rows } = await primary.query('SELECT count(*)::int AS n FROM batch_left WHERE n = 77');
    t.equal((rows[0] as { n: number }).n, 1, 'the INSERT was committed, as a direct Query would have committed it');
    await primary.query('DELETE FROM batch_left');
  }

  // Terminate behind an unsynced batch: the answer to what came before it still comes first.
  const first = await answerTo(fx.port, [fe.query("SELECT pg_sleep(0.3)::text, '42'"), fe.parse('', 'SELECT 1'), fe.bind('', ''), fe.execute(), fe.terminate()], { maxMs: 5000, atLeast: 4 });
  first.client.close();
  t.same(first.messages, ['Fields:pg_sleep,?column?', 'Row:,42', 'Complete:SELECT 1', 'Ready:I'], 'the answer before the batch arrives, then the close');
  t.equal(first.closed, true, 'and the session closes');

  // After a local statement behind a read batch on a replica, a write goes to the primary (the empty
  // Query ended the batch; the write once followed the stale batch to the replica and got 25006).
  const w = await answerTo(fx.port, [fe.parse('', 'SELECT 1'), fe.bind('', ''), fe.execute(), fe.query("SET pgsplit.max_lag = '5s'"), PAUSE, fe.query('INSERT INTO batch_left VALUES (9)')], { options: '-c pgsplit.route=replica', atLeast: 8 });
  w.client.close();
  t.same(w.messages, ['ParseComplete', 'BindComplete', 'Row:1', 'Complete:SELECT 1', 'Complete:SET', 'Ready:I', 'Complete:INSERT 0 1', 'Ready:I'], 'tagged: the write after it runs on the primary');
  await primary.query('DELETE FROM batch_left');

  // Inside a failed transaction PostgreSQL refuses every statement but ROLLBACK: pgsplit's too.
  const aborted = await answerTo(fx.port, [fe.query('BEGIN'), fe.query('SELECT 1/0'), fe.query('SHOW pgsplit.route'), fe.query('ROLLBACK'), fe.query('SHOW pgsplit.route')], { atLeast: 13 });
  aborted.client.close();
  t.same(aborted.messages, [
    'Complete:BEGIN', 'Ready:T', 'Error:22012', 'Ready:E', 'Error:25P02', 'Ready:E', 'Complete:ROLLBACK', 'Ready:I',
    'Fields:pgsplit.route', 'Row:primary', 'Complete:SHOW', 'Ready:I',
  ], 'SHOW pgsplit.route in a failed transaction gets 25P02, after ROLLBACK its answer');

  // Terminate after a batch ended by Flush: what the server flushed reaches the client before the close.
  const flushed = await answerTo(fx.port, [fe.parse('', "SELECT pg_sleep(0.3)::text, 'flushed'"), fe.bind('', ''), fe.execute(), fe.flush(), fe.terminate()], { maxMs: 5000, atLeast: 4 });
  flushed.client.close();
  t.same(flushed.messages, ['ParseComplete', 'BindComplete', 'Row:,flushed', 'Complete:SELECT 1'], 'the flushed answers, then the close');
  t.equal(flushed.closed, true, 'closed');

  // Terminate behind an unsynced INSERT: pgsplit closes at once, and the row was never committed.
  for (const tagged of [false, true]) {
    const started = Date.now();
    const x = await answerTo(fx.port, [fe.parse('', 'INSERT INTO batch_left VALUES (1)'), fe.bind('', ''), fe.execute(), fe.terminate()], { options: tagged ? '-c pgsplit.route=replica' : undefined, maxMs: 5000 });
    x.client.close();
    t.equal(x.closed, true, `Terminate behind an unsynced batch closes the session (${tagged ? 'tagged' : 'untagged'})`);
    t.ok(Date.now() - started < 4000, 'without waiting for the batch');
  }
  let left = -1;
  for (let i = 0; i < 50; i++) {
    const { rows } = await primary.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'INSERT INTO batch_left%' AND pid <> pg_backend_pid()");
    left = (rows[0] as { n: number }).n;
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(left, 0, 'the server connections that ran the batch are gone');
  const { rows } = await primary.query('SELECT count(*)::int AS n FROM batch_left');
  t.equal((rows[0] as { n: number }).n, 0, 'the unsynced INSERT was rolled back, as when a client leaves mid-batch');
});
