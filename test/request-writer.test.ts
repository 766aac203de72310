/**
 * The writing half of a session (src/session/request-writer.ts) without a server: client units built from
 * real frontend messages (pg-protocol's serializer, cut by the FrameReader), written for links over a
 * stand-in connection. Asserted: the exact bytes each server gets (the client's messages, a statement
 * prepared again where the server lacks it or has an older text, a stale name closed, a probe, a Flush,
 * the settings replay, pgsplit's own ROLLBACK, probe + Sync, probe + empty Query) and the replies the
 * link then expects, in order; the statement registry and its undo for a unit that runs again.
 */
import t from 'tap';
import { serialize } from '../src/codec/frontend-messages.js';
import { FrameCoalescer } from '../src/codec/frame-coalescer.js';
import { FrameReader, type Frame } from '../src/codec/frame-reader.js';
import type { ServerConnection } from '../src/server/server-connection.js';
import type { NodeEntry } from '../src/server/server-nodes.js';
import { EMPTY_QUERY, FLUSH, PROBE_PARSE, ROLLBACK, RequestWriter, SYNC } from '../src/session/request-writer.js';
import { ServerLink } from '../src/session/server-link.js';
import { unit, type Unit, type UnitKind } from '../src/session/unit.js';

function link(name = 'primary'): ServerLink {
  const node = { endpoint: { name }, role: name === 'primary' ? 'primary' : 'replica' } as unknown as NodeEntry;
  return new ServerLink(node, { conn: { prepared: new Map<string, Buffer>() } as unknown as ServerConnection }, () => {});
}

/** Client messages as they arrive: one chunk, cut into frames. */
function frames(...msgs: Buffer[]): Frame[] {
  return new FrameReader({ maxMessageSize: 1 << 20 }).push(Buffer.concat(msgs));
}

function u(kind: UnitKind, fs: Frame[], complete = true): Unit {
  let bytes = 0;
  for (const f of fs) bytes += f.raw.length;
  return unit(kind, fs, complete, [], bytes);
}

/** Writes a unit's frames (as Session.send does after its own preamble) and returns the bytes. */
function write(w: RequestWriter, l: ServerLink, un: Unit, opts: { endsTx?: boolean; flush?: boolean } = {}): Buffer {
  const out = new FrameCoalescer();
  l.tracker.nextUnit(un.kind === 'simple');
  w.frames(un, l, opts.endsTx ?? false, opts.flush ?? false, out);
  return Buffer.concat(out.take());
}

/** What the link expects, as `kind[!]` (! = swallowed: the client never sees it). */
function expects(l: ServerLink): string[] {
  return l.tracker.queue.map((e) => `${e.kind}${e.swallow ? '!' : ''}`);
}

const parse = (name: string, text: string): Buffer => serialize.parse({ name, text, types: [] });
const bind = (statement: string): Buffer => serialize.bind({ statement, portal: '', values: [] });
const execute = (): Buffer => serialize.execute({ portal: '', rows: 0 });
const sync = (): Buffer => serialize.sync();

t.test('an extended batch goes as the client sent it, and the link expects its Parse and Sync', async (t) => {
  const w = new RequestWriter();
  const l = link();
  const msgs = [parse('s1', 'SELECT 1'), bind('s1'), serialize.describe({ type: 'P', name: '' }), execute(), sync()];
  const got = write(w, l, u('extended', frames(...msgs)));
  t.same(got, Buffer.concat(msgs));
  t.same(expects(l), ['parse', 'sync']);
  t.ok(w.statement('s1'), 'the client prepared s1');
  t.ok(l.prepared.has('s1'), 'and so did this server');
});

t.test('a Bind of a statement prepared on another server: the Parse goes first, swallowed', async (t) => {
  const w = new RequestWriter();
  const a = link('primary');
  const b = link('replica1');
  write(w, a, u('extended', frames(parse('s1', 'SELECT $1::int'), sync())));
  const msgs = [bind('s1'), execute(), sync()];
  const got = write(w, b, u('extended', frames(...msgs)));
  t.same(got, Buffer.concat([parse('s1', 'SELECT $1::int'), ...msgs]));
  t.same(expects(b), ['parse!', 'sync']);
  // Prepared there now: a second Bind goes alone.
  const again = write(w, b, u('extended', frames(bind('s1'), execute(), sync())));
  t.same(again, Buffer.concat([bind('s1'), execute(), sync()]));
});

t.test('a server with an older text of the name: Close, then the client\'s Parse, before the Describe', async (t) => {
  const w = new RequestWriter();
  const a = link('primary');
  const b = link('replica1');
  write(w, a, u('extended', frames(parse('s', 'SELECT 1'), sync())));
  write(w, b, u('extended', frames(bind('s'), execute(), sync())));
  // The client closes s on a, prepares it again with another text there.
  write(w, a, u('extended', frames(serialize.close({ type: 'S', name: 's' }), parse('s', 'SELECT 2'), sync())));
  const describe = serialize.describe({ type: 'S', name: 's' });
  const got = write(w, b, u('extended', frames(describe, sync())));
  t.same(got, Buffer.concat([serialize.close({ type: 'S', name: 's' }), parse('s', 'SELECT 2'), describe, sync()]));
});

t.test('a Parse of a name the client closed on another server: the stale one is closed here first', async (t) => {
  const w = new RequestWriter();
  const a = link('primary');
  const b = link('replica1');
  write(w, a, u('extended', frames(parse('s', 'SELECT 1'), sync())));
  write(w, b, u('extended', frames(bind('s'), execute(), sync())));
  write(w, a, u('extended', frames(serialize.close({ type: 'S', name: 's' }), sync())));
  t.equal(w.statement('s'), undefined);
  const got = write(w, b, u('extended', frames(parse('s', 'SELECT 3'), sync())));
  t.same(got, Buffer.concat([serialize.close({ type: 'S', name: 's' }), parse('s', 'SELECT 3'), sync()]));
  t.same(expects(b).slice(-3), ['close!', 'parse', 'sync']);
});

t.test('a Parse of a name the client still has (its error, 42P05): this server gets the existing one first', async (t) => {
  const w = new RequestWriter();
  const a = link('primary');
  const b = link('replica1');
  write(w, a, u('extended', frames(parse('s', 'SELECT 1'), sync())));
  const got = write(w, b, u('extended', frames(parse('s', 'SELECT 9'), sync())));
  t.same(got, Buffer.concat([parse('s', 'SELECT 1'), parse('s', 'SELECT 9'), sync()]));
});

t.test('a simple Query forgets the unnamed statement, for the client and the server', async (t) => {
  const w = new RequestWriter();
  const l = link();
  write(w, l, u('extended', frames(parse('', 'SELECT 1'), sync())));
  t.ok(l.prepared.has(''));
  const q = serialize.query('SELECT 2');
  t.same(write(w, l, u('simple', frames(q)), { endsTx: true }), q);
  t.notOk(l.prepared.has(''));
  t.equal(w.statement(''), undefined);
  const head = l.tracker.queue[l.tracker.queue.length - 1];
  t.equal(head?.endsTx, true);
  t.equal(head?.extended, false);
});

t.test('registryUndo restores what a unit changed in the statement registry (a re-run elsewhere)', async (t) => {
  const w = new RequestWriter();
  const a = link('primary');
  write(w, a, u('extended', frames(parse('s', 'SELECT 1'), sync())));
  const b = link('replica1');
  const un = u('extended', frames(serialize.close({ type: 'S', name: 's' }), parse('t', 'SELECT 2'), sync()));
  write(w, b, un);
  t.equal(w.statement('s'), undefined);
  t.ok(w.statement('t'));
  // The relay runs them in reverse, as the unit's changes are undone newest first.
  for (const undo of [...(un.registryUndo ?? [])].reverse()) undo();
  t.ok(w.statement('s'));
  t.equal(w.statement('t'), undefined);
  w.forgetStatements();
  t.equal(w.statement('s'), undefined, 'DISCARD ALL forgets every statement');
});

t.test('an unsynced piece with a Flush: the Flush goes after it', async (t) => {
  const w = new RequestWriter();
  const l = link();
  const msgs = [parse('', 'COPY t FROM STDIN'), bind(''), execute()];
  const got = write(w, l, u('extended', frames(...msgs), false), { flush: true });
  t.same(got, Buffer.concat([...msgs, FLUSH]));
  t.ok(l.tracker.needsSync, 'extended messages without a Sync');
});

t.test('a probe before a Query behind unsynced messages', async (t) => {
  const w = new RequestWriter();
  const l = link();
  write(w, l, u('extended', frames(parse('', 'SELECT 1'), bind(''), execute(), serialize.flush()), false));
  const out = new FrameCoalescer();
  l.tracker.nextUnit(true);
  w.probe(l, out);
  w.frames(u('simple', frames(serialize.query('SELECT 2'))), l, false, false, out);
  t.same(Buffer.concat(out.take()), Buffer.concat([PROBE_PARSE, serialize.query('SELECT 2')]));
  t.same(PROBE_PARSE, serialize.parse({ name: '', text: '', types: [] }), 'the probe is an empty unnamed Parse');
  t.notOk(l.prepared.has(''), 'the probe replaced the unnamed statement');
});

t.test('the settings replay and the queries opening a transaction: each swallowed', async (t) => {
  const w = new RequestWriter();
  const l = link();
  write(w, l, u('extended', frames(parse('', 'SELECT 1'), sync())));
  const out = new FrameCoalescer();
  l.tracker.nextUnit(true);
  w.replay(l, ['RESET ALL', "SET work_mem = '8MB'"], 7, out);
  w.swallowedQueries(l, ['BEGIN', 'SAVEPOINT a'], out);
  t.same(Buffer.concat(out.take()), Buffer.concat(['RESET ALL', "SET work_mem = '8MB'", 'BEGIN', 'SAVEPOINT a'].map((q) => serialize.query(q))));
  t.equal(l.settingsVersion, 7);
  t.notOk(l.prepared.has(''));
  t.same(expects(l).slice(-4), ['sync!', 'sync!', 'sync!', 'sync!']);
  t.same(l.tracker.queue.slice(-4).map((e) => e.replay === true), [true, true, false, false]);
});

t.test('pgsplit\'s own messages: ROLLBACK, probe + Sync, probe + empty Query, an internal query, COPY data', async (t) => {
  const w = new RequestWriter();
  const l = link('replica1');
  t.same(Buffer.concat(w.rollback(l)), serialize.query('ROLLBACK'));
  t.same(ROLLBACK, serialize.query('ROLLBACK'));
  t.same(Buffer.concat(w.endBatch(l)), Buffer.concat([PROBE_PARSE, serialize.sync()]));
  t.same(SYNC.raw, serialize.sync());
  t.same(Buffer.concat(w.localProbe(l, { kind: 'ready' })), Buffer.concat([PROBE_PARSE, serialize.query('')]));
  t.same(EMPTY_QUERY, serialize.query(''));
  const rows: Array<Array<string | null> | null> = [];
  t.same(Buffer.concat(w.internalQuery(l, 'SELECT 1', (r) => rows.push(r))), serialize.query('SELECT 1'));
  t.same(expects(l), ['sync!', 'parse!', 'sync!', 'parse!', 'sync!', 'sync!']);
  const q = l.tracker.queue;
  t.equal(q[2]?.endsReplicaBatch, true);
  t.same(q[4]?.local, { kind: 'ready' });
  t.equal(typeof q[5]?.capture, 'function');
  const data = [serialize.copyData(Buffer.from('1\n')), serialize.copyDone()];
  t.same(Buffer.concat(w.copy(l, u('copy', frames(...data), false))), Buffer.concat(data));
});
