/**
 * The extended query protocol through pgsplit, byte by byte: several Sync-delimited batches in one
 * write, Flush, the unnamed statement across batches, Close and re-Parse, errors in the middle of a
 * batch, and simple Queries pipelined behind extended batches. A small raw client
 * (fixtures/raw-pg-client.ts) writes exactly the messages each test lists, so nothing is hidden by a
 * driver. Routing is read from pg_is_in_recovery() ('t' on a replica, 'f' on the primary).
 */
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';
import { routeCounter } from './fixtures/proxy-fixture.js';
import { RawPgClient, describeAll, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(180_000);

const TAGGED = '-c pgsplit.route=replica';


const fx = await startProxy(t);
await fx.cluster.primary.query('CREATE TABLE pipe_t (seq int, note text)');
await fx.cluster.waitForReplication();

async function open(t: { teardown(fn: () => unknown): void }, tagged: boolean): Promise<RawPgClient> {
  const c = await RawPgClient.connect({ port: fx.port, options: tagged ? TAGGED : undefined });
  t.teardown(() => c.close());
  return c;
}

const READ = 'SELECT pg_is_in_recovery() AS r, $1::int AS seq';
const WRITE = 'INSERT INTO pipe_t (seq, note) VALUES ($1, $2) RETURNING pg_is_in_recovery() AS r, seq';
const read = (seq: number) => fe.extended(READ, [String(seq)]);
const write = (seq: number, note = 'pipelined') => fe.extended(WRITE, [String(seq), note]);
/** Expected answer of read()/write() above: ParseComplete, BindComplete, the row, CommandComplete, ReadyForQuery. */
const readOk = (seq: number, where: 't' | 'f', status = 'I') => ['ParseComplete', 'BindComplete', `Row:${where},${seq}`, 'Complete:SELECT 1', `Ready:${status}`];
const writeOk = (seq: number, status = 'I') => ['ParseComplete', 'BindComplete', `Row:f,${seq}`, 'Complete:INSERT 0 1', `Ready:${status}`];

t.test('pipelining: Sync-delimited batches in one write, tagged', async (t) => {
  const c = await open(t, true);
  const count = routeCounter(fx);
  c.send(read(1), write(2), read(3), read(4), write(5));
  t.equal(c.writes, 1, 'all five batches went out in one write');
  const got = describeAll(await c.untilReady(5));
  t.same(got, [...readOk(1, 't'), ...writeOk(2), ...readOk(3, 't'), ...readOk(4, 't'), ...writeOk(5)],
    'answers arrive in order: reads from a replica, writes from the primary');
  t.same(describeAll(await c.drain(300)), [], 'exactly one ReadyForQuery per Sync, nothing more');
  t.same(count(), { primary: 2, replica: 3 }, 'the proxy routed 2 batches to the primary, 3 to a replica');
  t.same((await fx.cluster.primary.query('SELECT seq FROM pipe_t WHERE seq IN (2, 5) ORDER BY seq')).map((r) => r.seq), [2, 5], 'both writes are on the primary');

  // Named statements parsed in the same write and executed by later batches without a Parse.
  c.send(
    fe.parse('pr', READ), fe.bind('', 'pr', ['10']), fe.execute(), fe.sync(),
    fe.parse('pw', WRITE), fe.bind('', 'pw', ['11', 'named']), fe.execute(), fe.sync(),
    fe.bind('', 'pr', ['12']), fe.execute(), fe.sync(),
    fe.bind('', 'pw', ['13', 'named']), fe.execute(), fe.sync(),
    fe.bind('', 'pr', ['14']), fe.execute(), fe.sync(),
    fe.bind('', 'pr', ['15']), fe.execute(), fe.sync(),
  );
  t.same(describeAll(await c.untilReady(6)), [
    ...readOk(10, 't'),
    ...writeOk(11),
    'BindComplete', 'Row:t,12', 'Complete:SELECT 1', 'Ready:I',
    'BindComplete', 'Row:f,13', 'Complete:INSERT 0 1', 'Ready:I',
    'BindComplete', 'Row:t,14', 'Complete:SELECT 1', 'Ready:I',
    'BindComplete', 'Row:t,15', 'Complete:SELECT 1', 'Ready:I',
  ], 'named statements follow their text: reads on a replica, writes on the primary');
  t.same(describeAll(await c.drain(200)), []);

  // A transaction in the middle of a pipeline: its read before the write on a replica, then it moves to
  // the primary for the write and stays there (routing.transactions: replica-until-write).
  c.send(fe.query('BEGIN'), read(20), write(21), read(22), fe.query('COMMIT'));
  t.same(describeAll(await c.untilReady(5)), [
    'Complete:BEGIN', 'Ready:T',
    ...readOk(20, 't', 'T'),
    ...writeOk(21, 'T'),
    ...readOk(22, 'f', 'T'),
    'Complete:COMMIT', 'Ready:I',
  ], 'a transaction pipelined in one write: reads on a replica until the write moves it to the primary');
  t.same((await fx.cluster.primary.query('SELECT seq FROM pipe_t WHERE seq = 21')).map((r) => r.seq), [21], 'its write committed on the primary');
  c.send(read(23));
  t.same(describeAll(await c.untilReady(1)), readOk(23, 't'), 'after it, reads go to a replica again');
});

t.test('pipelining: untagged batches all run on the primary, in order', async (t) => {
  const c = await open(t, false);
  c.send(read(1), write(30), read(3), fe.query('SELECT pg_is_in_recovery() AS r, 4 AS seq'), write(31));
  t.same(describeAll(await c.untilReady(5)), [
    ...readOk(1, 'f'), ...writeOk(30), ...readOk(3, 'f'),
    'Fields:r,seq', 'Row:f,4', 'Complete:SELECT 1', 'Ready:I',
    ...writeOk(31),
  ]);
  t.same(describeAll(await c.drain(200)), []);
});

for (const tagged of [true, false]) {
  const label = tagged ? 'tagged' : 'untagged';
  const where = tagged ? 't' : 'f';

  t.test(`Flush: statement description before Bind/Execute/Sync (${label})`, async (t) => {
    const c = await open(t, tagged);
    c.send(fe.parse('fs', 'SELECT pg_is_in_recovery() AS r, $1::int AS n'), fe.describe('S', 'fs'), fe.flush());
    t.same(describeAll(await c.take(3)), ['ParseComplete', 'Params:23', 'Fields:r,n'], 'Flush delivers ParseComplete, ParameterDescription, RowDescription');
    t.same(describeAll(await c.drain(200)), [], 'and no ReadyForQuery before the Sync');
    c.send(fe.bind('', 'fs', ['7']), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', `Row:${where},7`, 'Complete:SELECT 1', 'Ready:I'], 'the rest of the batch completes it');

    // Bind + Describe(portal) + Flush, then Execute + Sync.
    c.send(fe.bind('p1', 'fs', ['8']), fe.describe('P', 'p1'), fe.flush());
    t.same(describeAll(await c.take(2)), ['BindComplete', 'Fields:r,n'], 'Bind and portal Describe answered on Flush');
    c.send(fe.execute('p1'), fe.sync());
    t.same(describeAll(await c.untilReady(1)), [`Row:${where},8`, 'Complete:SELECT 1', 'Ready:I']);

    // Several Flush round trips within one batch, with a row limit (PortalSuspended).
    c.send(fe.parse('', 'SELECT pg_is_in_recovery() AS r, g AS n FROM generate_series(1, 3) g'), fe.bind('p2', ''), fe.execute('p2', 2), fe.flush());
    t.same(describeAll(await c.take(4)), ['ParseComplete', 'BindComplete', `Row:${where},1`, `Row:${where},2`]);
    t.same(describeAll(await c.take(1)), ['PortalSuspended'], 'PortalSuspended after two rows');
    c.send(fe.execute('p2', 2), fe.flush());
    t.same(describeAll(await c.take(2)), [`Row:${where},3`, 'Complete:SELECT 1']);
    c.send(fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['Ready:I']);
    t.same(describeAll(await c.drain(200)), []);

    // The session goes on normally.
    c.send(read(40), write(41));
    t.same(describeAll(await c.untilReady(2)), [...readOk(40, where), ...writeOk(41)]);
  });

  t.test(`unnamed statement reused in a later batch (${label})`, async (t) => {
    const c = await open(t, tagged);
    c.send(fe.parse('', 'SELECT pg_is_in_recovery() AS r, $1::int AS n'), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'Ready:I'], 'Parse alone');
    c.send(fe.bind('', '', ['1']), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', `Row:${where},1`, 'Complete:SELECT 1', 'Ready:I'], 'Bind of the unnamed statement in the next batch');

    // A write batch with named statements in between (it does not replace the unnamed statement).
    c.send(fe.parse('w1', WRITE), fe.bind('', 'w1', ['50', 'between']), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), writeOk(50));
    c.send(fe.bind('', '', ['2']), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', `Row:${where},2`, 'Complete:SELECT 1', 'Ready:I'], 'still there after a write elsewhere');

    // Inside a transaction (opened with extended-protocol BEGIN: a simple Query would drop the unnamed statement).
    c.send(fe.parse('b', 'BEGIN'), fe.bind('', 'b'), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'BindComplete', 'Complete:BEGIN', 'Ready:T']);
    c.send(fe.bind('', '', ['3']), fe.execute(), fe.sync());
    // A read-only transaction: on a replica in a tagged session (it starts there), the primary otherwise.
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', `Row:${where},3`, 'Complete:SELECT 1', 'Ready:T'], 'in the transaction it runs where the transaction is');
    c.send(fe.parse('c', 'COMMIT'), fe.bind('', 'c'), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'BindComplete', 'Complete:COMMIT', 'Ready:I']);
    c.send(fe.bind('', '', ['4']), fe.execute(), fe.sync(), fe.bind('', '', ['5']), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(2)), [
      'BindComplete', `Row:${where},4`, 'Complete:SELECT 1', 'Ready:I',
      'BindComplete', `Row:${where},5`, 'Complete:SELECT 1', 'Ready:I',
    ], 'after COMMIT it runs where the session reads');

    // Replacing the unnamed statement with a write: the next Bind runs the write, on the primary.
    c.send(fe.parse('', WRITE), fe.sync(), fe.bind('', '', ['51', `unnamed-${label}`]), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(2)), ['ParseComplete', 'Ready:I', 'BindComplete', 'Row:f,51', 'Complete:INSERT 0 1', 'Ready:I'],
      'a re-parsed unnamed write statement runs on the primary');
    t.same((await fx.cluster.primary.query(`SELECT count(*)::int AS c FROM pipe_t WHERE note = 'unnamed-${label}'`))[0], { c: 1 }, 'exactly once');
    t.same(describeAll(await c.drain(200)), []);
  });

  t.test(`Close and re-Parse of a named statement (${label})`, async (t) => {
    const c = await open(t, tagged);
    const exec = (name: string) => [fe.bind('', name), fe.execute(), fe.sync()];
    c.send(fe.parse('cs', 'SELECT pg_is_in_recovery() AS r, 1 AS v'), ...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'BindComplete', `Row:${where},1`, 'Complete:SELECT 1', 'Ready:I']);
    c.send(fe.close('S', 'cs'), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['CloseComplete', 'Ready:I'], 'Close + Sync');
    c.send(fe.bind('', 'cs'), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['Error:26000', 'Ready:I'], 'the closed statement is gone');

    c.send(fe.parse('cs', `INSERT INTO pipe_t (seq, note) VALUES (60, 'cs-${label}') RETURNING pg_is_in_recovery() AS r, seq`), ...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'BindComplete', 'Row:f,60', 'Complete:INSERT 0 1', 'Ready:I'], 're-Parse as a write: the primary');

    c.send(fe.close('S', 'cs'), fe.parse('cs', 'SELECT pg_is_in_recovery() AS r, 2 AS v'), ...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['CloseComplete', 'ParseComplete', 'BindComplete', `Row:${where},2`, 'Complete:SELECT 1', 'Ready:I'],
      'Close and re-Parse as a read in one batch');
    c.send(...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', `Row:${where},2`, 'Complete:SELECT 1', 'Ready:I'], 'the new text runs');

    // In a transaction on the primary (repeatable read: it starts there), which still has the old (INSERT)
    // text under that name in a tagged session.
    c.send(fe.query('BEGIN ISOLATION LEVEL REPEATABLE READ'));
    t.same(describeAll(await c.untilReady(1)), ['Complete:BEGIN', 'Ready:T']);
    c.send(...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', 'Row:f,2', 'Complete:SELECT 1', 'Ready:T'], 'the current text runs on the primary, not the old one');
    c.send(fe.close('S', 'cs'), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['CloseComplete', 'Ready:T'], 'Close on the primary inside the transaction');
    c.send(fe.query('COMMIT'));
    t.same(describeAll(await c.untilReady(1)), ['Complete:COMMIT', 'Ready:I']);

    // Re-Parse with different text where the session reads (a tagged session's replica still had the old one).
    c.send(fe.parse('cs', 'SELECT pg_is_in_recovery() AS r, 3 AS v, 33 AS w'), ...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'BindComplete', `Row:${where},3,33`, 'Complete:SELECT 1', 'Ready:I'],
      're-Parse of the closed name with different text on another server');
    c.send(fe.describe('S', 'cs'), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['Params:', 'Fields:r,v,w', 'Ready:I'], 'Describe shows the new statement');
    t.same((await fx.cluster.primary.query(`SELECT count(*)::int AS c FROM pipe_t WHERE note = 'cs-${label}'`))[0], { c: 1 }, 'the old INSERT ran exactly once');

    // Re-Parse without Close is an error, as on PostgreSQL.
    c.send(fe.parse('cs', 'SELECT 4'), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['Error:42P05', 'Ready:I'], 'duplicate prepared statement');
    c.send(...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', `Row:${where},3,33`, 'Complete:SELECT 1', 'Ready:I'], 'the existing one is unchanged');
    // ... wherever it runs next: the refused Parse must not replace the statement pgsplit re-prepares elsewhere.
    c.send(fe.query('BEGIN ISOLATION LEVEL REPEATABLE READ'), ...exec('cs'), fe.query('COMMIT'));
    t.same(describeAll(await c.untilReady(3)), [
      'Complete:BEGIN', 'Ready:T',
      'BindComplete', 'Row:f,3,33', 'Complete:SELECT 1', 'Ready:T',
      'Complete:COMMIT', 'Ready:I',
    ], 'after a refused duplicate Parse the statement keeps its text on the primary too');
    c.send(...exec('cs'));
    t.same(describeAll(await c.untilReady(1)), ['BindComplete', `Row:${where},3,33`, 'Complete:SELECT 1', 'Ready:I'], 'and where the session reads');
  });

  t.test(`error mid-batch (${label})`, async (t) => {
    const c = await open(t, tagged);
    c.send(fe.parse('', 'SELEC pg_is_in_recovery()'), fe.bind('', ''), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['Error:42601', 'Ready:I'], 'bad SQL: ErrorResponse then ReadyForQuery only');
    t.same(describeAll(await c.drain(200)), [], 'no BindComplete or anything else');
    c.send(read(1));
    t.same(describeAll(await c.untilReady(1)), readOk(1, where), 'the session is usable after');

    // (random() keeps the planner from folding 1/0 at Bind time: the error comes from Execute.)
    c.send(fe.parse('', 'SELECT 1 / ($1::int + floor(random())::int) AS q'), fe.bind('', '', ['0']), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'BindComplete', 'Error:22012', 'Ready:I'], 'execution error');
    c.send(fe.parse('', 'SELECT 1 / $1::int AS q'), fe.bind('', '', ['0']), fe.execute(), fe.sync());
    t.same(describeAll(await c.untilReady(1)), ['ParseComplete', 'Error:22012', 'Ready:I'], 'error at Bind (constant folded while planning)');

    // The error skips the rest of its batch only.
    c.send(
      read(2),
      fe.parse('', 'SELECT pg_is_in_recovery() AS r, 1 AS seq'), fe.bind('', ''), fe.execute(),
      fe.parse('', 'SELECT * FROM no_such_table'), fe.bind('', ''), fe.execute(),
      fe.parse('', 'SELECT 2'), fe.bind('', ''), fe.execute(), fe.sync(),
      write(70),
      fe.bind('', 'no_such_statement'), fe.execute(), fe.sync(),
      read(3),
    );
    t.same(describeAll(await c.untilReady(5)), [
      ...readOk(2, where),
      'ParseComplete', 'BindComplete', `Row:${where},1`, 'Complete:SELECT 1', 'Error:42P01', 'Ready:I',
      ...writeOk(70),
      'Error:26000', 'Ready:I',
      ...readOk(3, where),
    ], 'errors in one batch do not touch the batches around it');
    t.same(describeAll(await c.drain(200)), []);

    // An error inside a transaction: the batch fails, the transaction is aborted until ROLLBACK.
    c.send(fe.query('BEGIN'), fe.parse('', 'SELECT 1 / floor(random())::int'), fe.bind('', ''), fe.execute(), fe.sync(), read(4), fe.query('ROLLBACK'));
    t.same(describeAll(await c.untilReady(4)), [
      'Complete:BEGIN', 'Ready:T',
      'ParseComplete', 'BindComplete', 'Error:22012', 'Ready:E',
      'Error:25P02', 'Ready:E',
      'Complete:ROLLBACK', 'Ready:I',
    ], 'aborted transaction, then ROLLBACK');
    c.send(read(5));
    t.same(describeAll(await c.untilReady(1)), readOk(5, where), 'usable after ROLLBACK');
    t.same(describeAll(await c.drain(200)), []);
  });

  t.test(`simple Query pipelined after extended batches (${label})`, async (t) => {
    const c = await open(t, tagged);
    c.send(
      read(1),
      write(80),
      fe.query('SELECT pg_is_in_recovery() AS r, 2 AS seq'),
      fe.query("INSERT INTO pipe_t (seq, note) VALUES (81, 'simple') RETURNING pg_is_in_recovery() AS r, seq"),
      read(3),
      fe.query('SELECT pg_is_in_recovery() AS r, 4 AS seq; SELECT pg_is_in_recovery() AS r, 5 AS seq'),
    );
    t.same(describeAll(await c.untilReady(6)), [
      ...readOk(1, where),
      ...writeOk(80),
      'Fields:r,seq', `Row:${where},2`, 'Complete:SELECT 1', 'Ready:I',
      'Fields:r,seq', 'Row:f,81', 'Complete:INSERT 0 1', 'Ready:I',
      ...readOk(3, where),
      'Fields:r,seq', `Row:${where},4`, 'Complete:SELECT 1', 'Fields:r,seq', `Row:${where},5`, 'Complete:SELECT 1', 'Ready:I',
    ]);
    t.same(describeAll(await c.drain(200)), []);

    // An extended batch answered piecewise on Flush, then its Sync and a Query in one write.
    c.send(fe.parse('', 'SELECT pg_is_in_recovery() AS r, 6 AS seq'), fe.bind('', ''), fe.execute(), fe.flush());
    t.same(describeAll(await c.take(3)), ['ParseComplete', 'BindComplete', `Row:${where},6`]);
    t.same(describeAll(await c.take(1)), ['Complete:SELECT 1']);
    c.send(fe.sync(), fe.query('SELECT pg_is_in_recovery() AS r, 7 AS seq'));
    t.same(describeAll(await c.untilReady(2)), ['Ready:I', 'Fields:r,seq', `Row:${where},7`, 'Complete:SELECT 1', 'Ready:I']);
  });

  t.test(`several Queries in one write, alternating read and write (${label})`, async (t) => {
    const c = await open(t, tagged);
    const msgs: Buffer[] = [];
    const want: string[] = [];
    for (let i = 0; i < 8; i++) {
      if (i % 2 === 0) {
        msgs.push(fe.query(`SELECT pg_is_in_recovery() AS r, ${i} AS seq`));
        want.push('Fields:r,seq', `Row:${where},${i}`, 'Complete:SELECT 1', 'Ready:I');
      } else {
        msgs.push(fe.query(`INSERT INTO pipe_t (seq, note) VALUES (${90 + i}, 'q-${label}') RETURNING pg_is_in_recovery() AS r, seq`));
        want.push('Fields:r,seq', `Row:f,${90 + i}`, 'Complete:INSERT 0 1', 'Ready:I');
      }
    }
    const count = routeCounter(fx);
    c.send(...msgs);
    t.same(describeAll(await c.untilReady(8)), want, 'in order, each on its server');
    t.same(describeAll(await c.drain(200)), []);
    t.same(count(), tagged ? { primary: 4, replica: 4 } : { primary: 8, replica: 0 });
    t.same((await fx.cluster.primary.query(`SELECT count(*)::int AS c FROM pipe_t WHERE note = 'q-${label}'`))[0], { c: 4 },
      'the writes reached the primary once each');
  });
}

t.test('tagged: units pipelined right behind COMMIT/ROLLBACK are routed as outside a transaction', async (t) => {
  const c = await open(t, true);
  // A read-only transaction runs on a replica; a write pipelined behind its COMMIT must reach the primary.
  c.send(fe.query('BEGIN READ ONLY'), read(1), fe.query('COMMIT'), write(110));
  t.same(describeAll(await c.untilReady(4)), [
    'Complete:BEGIN', 'Ready:T',
    ...readOk(1, 't', 'T'),
    'Complete:COMMIT', 'Ready:I',
    ...writeOk(110),
  ], 'write pipelined behind COMMIT of a read-only (replica) transaction runs on the primary');
  c.send(fe.query('BEGIN READ ONLY'), read(2), fe.query('ROLLBACK'), fe.query("INSERT INTO pipe_t (seq, note) VALUES (111, 'behind-rollback') RETURNING pg_is_in_recovery() AS r, seq"));
  t.same(describeAll(await c.untilReady(4)), [
    'Complete:BEGIN', 'Ready:T',
    ...readOk(2, 't', 'T'),
    'Complete:ROLLBACK', 'Ready:I',
    'Fields:r,seq', 'Row:f,111', 'Complete:INSERT 0 1', 'Ready:I',
  ], 'write pipelined behind ROLLBACK of a read-only (replica) transaction runs on the primary');
  t.same(describeAll(await c.drain(200)), []);
  // A transaction that writes: its first read on a replica, then it moves to the primary for the write;
  // a read pipelined behind its COMMIT goes to a replica.
  c.send(fe.query('BEGIN'), read(3), write(112), fe.query('COMMIT'), read(4));
  t.same(describeAll(await c.untilReady(5)), [
    'Complete:BEGIN', 'Ready:T',
    ...readOk(3, 't', 'T'),
    ...writeOk(112, 'T'),
    'Complete:COMMIT', 'Ready:I',
    ...readOk(4, 't'),
  ], 'read pipelined behind COMMIT of a write transaction runs on a replica');
  c.send(fe.query('BEGIN'), read(5), write(113), fe.query('ROLLBACK'), read(6));
  t.same(describeAll(await c.untilReady(5)), [
    'Complete:BEGIN', 'Ready:T',
    ...readOk(5, 't', 'T'),
    ...writeOk(113, 'T'),
    'Complete:ROLLBACK', 'Ready:I',
    ...readOk(6, 't'),
  ], 'read pipelined behind ROLLBACK runs on a replica');
  t.same(describeAll(await c.drain(200)), []);
});
