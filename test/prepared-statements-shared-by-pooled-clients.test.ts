/**
 * Named prepared statements over pooled connections: one server-side name per statement (text and
 * parameter types) shared by every client, a Parse sent only where the connection lacks it, a Bind or
 * Describe on a connection that lacks it prepared on demand, a client's Close answered locally, and each
 * connection's statements bounded (least recently used closed, never one the current batch uses).
 * Byte-level checks of the renamed messages, then the same messages run on a real server.
 */
import t from 'tap';
import { serialize } from '../src/codec/frontend-messages.js';
import { readBind, readParse, readTarget } from '../src/codec/message-fields.js';
import { Backend, typeChar } from '../src/codec/message-types.js';
import { PreparedCache } from '../src/server/prepared-cache.js';
import { ServerConnection } from '../src/server/server-connection.js';
import { StatementRegistry, StatementSync, renameBindStatement, renameParse, renameTarget, type UseDecision } from '../src/session/statement-sync.js';
import { startCluster } from './fixtures/proxy-fixture.js';

t.setTimeout(180_000);

const parse = (name: string, text: string, types: number[] = []): Buffer => serialize.parse({ name, text, types });
const bind = (statement: string, values: string[] = [], portal = ''): Buffer => serialize.bind({ portal, statement, values });
const payload = (raw: Buffer): Buffer => raw.subarray(5);
const sent = (d: UseDecision): Buffer[] => (d.kind === 'send' ? [...d.before, d.frame] : []);

t.test('two clients preparing the same statement under their own names share one server-side statement', async (t) => {
  const registry = new StatementRegistry(100);
  const conn = new PreparedCache(10);
  const alice = new StatementSync(registry);
  const bob = new StatementSync(registry);
  const a = alice.parse(parse('q1', 'SELECT $1::int'), conn);
  t.equal(a.kind, 'send');
  if (a.kind !== 'send') return;
  t.same(a.before, [], 'nothing to evict');
  t.same(readParse(payload(a.frame)), { name: 'pgsplit_1', query: 'SELECT $1::int' }, 'sent under the server-side name');
  t.equal(a.frame.readInt32BE(1), a.frame.length - 1, 'length fixed');
  t.equal(bob.parse(parse('S_1', 'SELECT $1::int'), conn).kind, 'local', 'the connection has it: ParseComplete from pgsplit');
  t.equal(bob.serverName('S_1'), 'pgsplit_1');
  const other = bob.parse(parse('S_2', 'SELECT $1::int', [20]), conn);
  t.equal(other.kind === 'send' && readParse(payload(other.frame))?.name, 'pgsplit_2', 'other parameter types: another statement');
});

t.test('a Bind on a connection without the statement sends the Parse first; the Bind keeps its portal and values', async (t) => {
  const registry = new StatementRegistry(100);
  const first = new PreparedCache(10);
  const second = new PreparedCache(10);
  const c = new StatementSync(registry);
  c.parse(parse('q', 'SELECT $1::text'), first);
  c.sync();
  const onFirst = c.bind(bind('q', ['x'], 'p1'), first);
  t.equal(onFirst.kind === 'send' && onFirst.before.length, 0, 'the connection that prepared it: Bind alone');
  const d = c.bind(bind('q', ["it's"], 'p1'), second);
  if (d.kind !== 'send') return t.fail('expected send');
  t.equal(d.before.length, 1);
  t.same(readParse(payload(d.before[0]!)), { name: 'pgsplit_1', query: 'SELECT $1::text' }, 'prepared on demand');
  t.same(readBind(payload(d.frame)), { portal: 'p1', statement: 'pgsplit_1' });
  t.same(d.frame.subarray(d.frame.length - 12), bind('pgsplit_1', ["it's"], 'p1').subarray(-12), 'the values are untouched');
  t.same(d.frame, bind('pgsplit_1', ["it's"], 'p1'), 'byte for byte what the client would have sent under that name');
  t.ok(second.has('pgsplit_1'), 'the second connection has it now');
  t.equal(c.bind(bind('unknown'), second).kind, 'pass', 'a name pgsplit never renamed goes as it is (SQL PREPARE, or the server says it does not exist)');
  t.equal(c.bind(bind(''), second).kind, 'pass', 'the unnamed statement too');
});

t.test('Describe of a statement is renamed and prepared on demand; of a portal it passes', async (t) => {
  const c = new StatementSync(new StatementRegistry(100));
  c.parse(parse('q', 'SELECT 1'), new PreparedCache(10));
  const d = c.describe(serialize.describe({ type: 'S', name: 'q' }), new PreparedCache(10));
  if (d.kind !== 'send') return t.fail('expected send');
  t.same(readTarget(payload(d.frame)), { kind: 'S', name: 'pgsplit_1' });
  t.equal(d.before.length, 1);
  t.equal(c.describe(serialize.describe({ type: 'P', name: 'q' }), new PreparedCache(10)).kind, 'pass');
});

t.test("a client's Close is local: the server-side statement stays for others; Parse again under the name works", async (t) => {
  const registry = new StatementRegistry(100);
  const conn = new PreparedCache(10);
  const c = new StatementSync(registry);
  c.parse(parse('q', 'SELECT 1'), conn);
  t.equal(c.close(serialize.close({ type: 'S', name: 'q' })).kind, 'local');
  t.ok(conn.has('pgsplit_1'), 'still on the connection');
  t.equal(c.serverName('q'), undefined);
  t.equal(c.close(serialize.close({ type: 'S', name: 'q' })).kind, 'pass', 'closing it again: the server answers (CloseComplete for a missing name)');
  t.equal(c.close(serialize.close({ type: 'P', name: 'q' })).kind, 'pass', 'portals are the server\'s');
  t.equal(c.parse(parse('q', 'SELECT 1'), conn).kind, 'local', 'prepared again: the connection still has it');
  const skipped = c.close(serialize.close({ type: 'S', name: 'q' }));
  t.equal(skipped.kind, 'local');
  if (skipped.kind === 'local') skipped.undo();
  t.equal(c.serverName('q'), 'pgsplit_1', 'a Close the batch skipped (an earlier error) leaves the statement, as the server would');
});

t.test('preparing a name twice is the client\'s error, 42P05, as PostgreSQL says it', async (t) => {
  const c = new StatementSync(new StatementRegistry(100));
  c.parse(parse('q', 'SELECT 1'), new PreparedCache(10));
  const d = c.parse(parse('q', 'SELECT 2'), new PreparedCache(10));
  t.equal(d.kind, 'error');
  if (d.kind === 'error') {
    t.equal(d.error.sqlState, '42P05');
    t.equal(d.error.message, 'prepared statement "q" already exists');
  }
});

t.test('each connection keeps at most pool.prepared_statements, closing the least recently used, never one the batch uses', async (t) => {
  const conn = new PreparedCache(2);
  const c = new StatementSync(new StatementRegistry(100));
  c.parse(parse('a', 'SELECT 1'), conn);
  c.parse(parse('b', 'SELECT 2'), conn);
  c.sync();
  // One batch from here to the next Sync: a Bind of a, then Parses of c and d.
  c.bind(bind('a'), conn);
  const third = c.parse(parse('c', 'SELECT 3'), conn);
  if (third.kind !== 'send') return t.fail('expected send');
  t.same(third.before.map((f) => readTarget(payload(f))), [{ kind: 'S', name: 'pgsplit_2' }], 'b was used least recently: a Close for it');
  t.same(conn.list(), ['pgsplit_1', 'pgsplit_3']);
  // a and c are in use until the Sync, so preparing d cannot evict them.
  const d = c.parse(parse('d', 'SELECT 4'), conn);
  t.same(d.kind === 'send' && d.before, [], 'over capacity rather than closing a statement whose portal may still run');
  t.equal(conn.size, 3);
  c.sync();
  const back = c.bind(bind('b'), conn);
  t.same(back.kind === 'send' && back.before.map((f) => typeChar(f[0]!) + (readTarget(payload(f))?.name ?? readParse(payload(f))?.name)),
    ['Cpgsplit_1', 'Cpgsplit_3', 'Ppgsplit_2'], 'after the Sync: back to 2, oldest first, then b prepared again');
});

t.test('an eviction Close the batch skipped: the statement goes back in the cache, least recently used', async (t) => {
  const conn = new PreparedCache(1);
  const c = new StatementSync(new StatementRegistry(100));
  c.parse(parse('a', 'SELECT 1'), conn);
  c.sync();
  const b = c.parse(parse('b', 'SELECT 2'), conn);
  if (b.kind !== 'send') return t.fail('expected send');
  t.same(b.evicted, ['pgsplit_1']);
  c.closeSkipped(conn, 'pgsplit_1');
  t.same(conn.list(), ['pgsplit_1', 'pgsplit_2'], 'both on the server; the restored one goes first at the next eviction');
  c.sync();
  const a = c.bind(bind('a'), conn);
  t.same(a.kind === 'send' && a.before, [], 'a is still there: no second Parse of it (which the server would refuse)');
  const third = c.parse(parse('c', 'SELECT 3'), conn);
  t.same(third.kind === 'send' && third.evicted, ['pgsplit_2'], 'the next add brings the cache back towards its bound');
});

t.test('the registry is bounded; an evicted statement gets a new name, never an old one', async (t) => {
  const registry = new StatementRegistry(2);
  const body = (q: string): Buffer => parse('', q).subarray(6);
  t.equal(registry.nameFor(body('SELECT 1')), 'pgsplit_1');
  t.equal(registry.nameFor(body('SELECT 2')), 'pgsplit_2');
  t.equal(registry.nameFor(body('SELECT 1')), 'pgsplit_1', 'used again: most recent');
  t.equal(registry.nameFor(body('SELECT 3')), 'pgsplit_3');
  t.equal(registry.size, 2);
  t.equal(registry.nameFor(body('SELECT 2')), 'pgsplit_4', 'SELECT 2 was evicted');
});

t.test('a local Parse the batch skipped (an earlier error): the client forgets the name, the connection keeps the statement', async (t) => {
  const conn = new PreparedCache(10);
  const c = new StatementSync(new StatementRegistry(100));
  c.parse(parse('a', 'SELECT 1'), conn);
  const again = c.parse(parse('b', 'SELECT 1'), conn);
  if (again.kind !== 'local') return t.fail('expected local');
  again.undo();
  t.equal(c.serverName('b'), undefined);
  t.equal(c.serverName('a'), 'pgsplit_1');
  t.ok(conn.has('pgsplit_1'), 'still prepared on the server, so never prepared there twice');
});

t.test('a failed Parse leaves neither the connection nor the client with the statement', async (t) => {
  const conn = new PreparedCache(10);
  const c = new StatementSync(new StatementRegistry(100));
  c.parse(parse('q', 'SELEC 1'), conn);
  c.parseFailed(conn, 'pgsplit_1', 'q');
  t.notOk(conn.has('pgsplit_1'));
  t.equal(c.serverName('q'), undefined);
});

t.test('rename helpers handle names of any length and multibyte names', async (t) => {
  t.same(renameParse(parse('ä_long_client_name', 'SELECT 1', [23]), 'x'), parse('x', 'SELECT 1', [23]));
  t.same(renameBindStatement(bind('s', ['1', '2'], 'pörtal'), 'pgsplit_99999'), bind('pgsplit_99999', ['1', '2'], 'pörtal'));
  t.same(renameTarget(serialize.close({ type: 'S', name: '' }), 'é'), serialize.close({ type: 'S', name: 'é' }));
});

t.test('on a real server: two clients, one connection, prepare on demand on a second connection, eviction', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const connect = (): Promise<ServerConnection> =>
    ServerConnection.connect({ name: 'primary', host: '127.0.0.1', port: cluster.primary.port }, { user: 'postgres', database: 'postgres' }, 5000);
  const conns = [await connect(), await connect()];
  t.teardown(() => conns.forEach((c) => c.close()));
  /** Writes the frames and a Sync; resolves with the reply types and the DataRow texts up to ReadyForQuery. */
  const run = (conn: ServerConnection, frames: Buffer[]): Promise<string[]> => new Promise((resolve) => {
    const out: string[] = [];
    conn.onData = (chunk) => {
      for (const f of conn.reader.push(chunk)) {
        if (f.type === Backend.DataRow) out.push(`D:${f.payload.toString('utf8', 6)}`);
        else if (f.type === Backend.ErrorResponse) out.push(`E:${/M([^\0]*)/.exec(f.payload.toString('utf8'))?.[1] ?? ''}`);
        else out.push(typeChar(f.type));
        if (f.type === Backend.ReadyForQuery) resolve(out);
      }
    };
    conn.socket.write(Buffer.concat([...frames, serialize.sync()]));
  });
  const registry = new StatementRegistry(100);
  const caches = [new PreparedCache(1), new PreparedCache(1)];
  const alice = new StatementSync(registry);
  const bob = new StatementSync(registry);
  const p = alice.parse(parse('mine', 'SELECT $1::text || \'!\''), caches[0]!);
  if (p.kind !== 'send') return t.fail('expected send');
  const b1 = sent(alice.bind(bind('mine', ['hi']), caches[0]!));
  t.same(await run(conns[0]!, [p.frame, ...b1, serialize.execute({ portal: '' })]), ['1', '2', 'D:hi!', 'C', 'Z']);
  alice.sync();
  t.equal(bob.parse(parse('theirs', 'SELECT $1::text || \'!\''), caches[0]!).kind, 'local');
  const b2 = sent(bob.bind(bind('theirs', ['yo']), caches[0]!));
  t.same(await run(conns[0]!, [...b2, serialize.execute({ portal: '' })]), ['2', 'D:yo!', 'C', 'Z'], "bob's Bind runs alice's statement");
  bob.sync();
  const b3 = sent(bob.bind(bind('theirs', ['there']), caches[1]!));
  t.same(await run(conns[1]!, [...b3, serialize.execute({ portal: '' })]), ['1', '2', 'D:there!', 'C', 'Z'], 'the other connection: Parse first (its ParseComplete is pgsplit\'s)');
  bob.sync();
  const other = bob.parse(parse('two', 'SELECT 2'), caches[1]!);
  if (other.kind !== 'send') return t.fail('expected send');
  t.same(await run(conns[1]!, [...other.before, other.frame]), ['3', '1', 'Z'], 'capacity 1: pgsplit_1 closed first');
  t.same(await run(conns[1]!, [bind('pgsplit_1'), serialize.execute({ portal: '' })]), ['E:prepared statement "pgsplit_1" does not exist', 'Z'], 'and it is gone from the server');
});
