/**
 * The reading half of a session (src/session/client-reader.ts) without a server: client bytes (built with
 * pg-protocol's serializer, or by hand where they must be malformed) fed whole, byte by byte, or cut
 * anywhere. Asserted: the units they make (kind, frames, completeness, bytes), pgsplit's own statements
 * split out of a batch, what a malformed or unknown message does, dropping up to the client's Sync after
 * an error, and backpressure: reading paused past limits.max_pending_bytes and again below a quarter of
 * it, and while a server has not taken what was written to it.
 */
import { EventEmitter } from 'node:events';
import t from 'tap';
import { serialize } from '../src/codec/frontend-messages.js';
import type { PgsplitError } from '../src/errors.js';
import { ClientReader, type ClientInput } from '../src/session/client-reader.js';
import type { Unit } from '../src/session/unit.js';

class Client implements ClientInput {
  paused = false;
  pauses = 0;
  resumes = 0;
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
    this.resumes++;
  }
}

interface Rig {
  client: Client;
  reader: ClientReader;
  fatal: PgsplitError[];
  limits: { maxMessageSize: number; maxPendingBytes: number };
  live: { ready: boolean };
  /** Every unit queued, oldest first (taken off the queue). */
  drain(): Unit[];
}

function rig(maxPendingBytes = 1 << 20, maxMessageSize = 1 << 20): Rig {
  const client = new Client();
  const fatal: PgsplitError[] = [];
  const limits = { maxMessageSize, maxPendingBytes };
  const live = { ready: true };
  const reader = new ClientReader(client, limits, {
    fatal: (e) => fatal.push(e),
    get serving() {
      return live.ready;
    },
  });
  return {
    client, reader, fatal, limits, live,
    drain() {
      const out: Unit[] = [];
      for (let u = reader.head; u !== undefined; u = reader.head) {
        out.push(u);
        reader.shift();
      }
      return out;
    },
  };
}

/** A unit as `kind[+]` (+ = complete) with its frames' type letters. */
function shape(u: Unit): string {
  return `${u.kind}${u.complete ? '+' : ''}:${u.frames.map((f) => String.fromCharCode(f.type)).join('')}`;
}

const parse = (text: string, name = ''): Buffer => serialize.parse({ name, text, types: [] });
const bind = (): Buffer => serialize.bind({ statement: '', portal: '', values: [] });
const execute = (): Buffer => serialize.execute({ portal: '', rows: 0 });
const sync = (): Buffer => serialize.sync();
const flush = (): Buffer => serialize.flush();

t.test('a Query is a unit of its own; an extended batch is one unit up to its Sync, however the bytes are cut', async (t) => {
  const bytes = Buffer.concat([serialize.query('SELECT 1'), parse('SELECT $1'), bind(), execute(), sync()]);
  for (const step of [bytes.length, 1, 3, 7]) {
    const r = rig();
    for (let i = 0; i < bytes.length; i += step) t.ok(r.reader.read(bytes.subarray(i, i + step)));
    const units = r.drain();
    t.same(units.map(shape), ['simple+:Q', 'extended+:PBES'], `chunks of ${step}`);
    t.same(units[0]?.queries, ['SELECT 1']);
    t.same(Buffer.concat(units.flatMap((u) => u.frames.map((f) => f.raw))), bytes, 'the frames are the client\'s bytes');
    t.same(units.map((u) => u.bytes), [serialize.query('SELECT 1').length, bytes.length - serialize.query('SELECT 1').length]);
  }
});

t.test('Flush ends a piece of the batch that is not complete; a Query or COPY data inside a batch ends it first', async (t) => {
  const r = rig();
  r.reader.read(Buffer.concat([parse('SELECT 1'), flush(), bind(), execute(), sync()]));
  t.same(r.drain().map(shape), ['extended:PH', 'extended+:BES']);
  r.reader.read(Buffer.concat([parse('SELECT 1'), bind(), serialize.query('SELECT 2')]));
  t.same(r.drain().map(shape), ['extended:PB', 'simple+:Q']);
  r.reader.read(Buffer.concat([parse('COPY t FROM STDIN'), bind(), execute(), serialize.copyData(Buffer.from('1\n')), serialize.copyDone(), sync()]));
  t.same(r.drain().map(shape), ['extended:PBE', 'copy:d', 'copy:c', 'extended+:S']);
});

t.test('FunctionCall, Terminate, and pgsplit\'s own statements', async (t) => {
  const r = rig();
  const fn = Buffer.from([0x46, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
  r.reader.read(Buffer.concat([fn, serialize.query('SET pgsplit.route = replica'), serialize.end()]));
  const units = r.drain();
  t.same(units.map(shape), ['function+:F', 'local+:', 'terminate+:']);
  t.same(units[1]?.local, { kind: 'set', name: 'route', value: 'replica' });
  // In the extended protocol: what comes before goes on unsynced, the run about pgsplit's statement is answered here.
  r.reader.read(Buffer.concat([parse('SELECT 1'), bind(), execute(), parse('SHOW pgsplit.route'), bind(), execute(), sync()]));
  const ext = r.drain();
  t.same(ext.map(shape), ['extended:PBE', 'local+:']);
  t.equal(ext[1]?.local?.kind, 'extended');
  t.equal(ext[1]?.local?.kind === 'extended' && ext[1].local.sync, true);
});

t.test('a malformed Query, an unknown message type, or a message over max_message_size end the session', async (t) => {
  const r = rig();
  // A Query whose text lacks its terminator.
  t.notOk(r.reader.read(Buffer.from([0x51, 0, 0, 0, 6, 0x41, 0x42])));
  t.equal(r.fatal[0]?.sqlState, '08P01');
  t.match(r.fatal[0]?.message ?? '', /malformed/);
  const u = rig();
  t.notOk(u.reader.read(Buffer.concat([serialize.query('SELECT 1'), Buffer.from([0x7a, 0, 0, 0, 4])])));
  t.equal(u.fatal[0]?.sqlState, '08P01');
  t.match(u.fatal[0]?.message ?? '', /invalid frontend message type/);
  const big = rig(1 << 20, 64);
  t.notOk(big.reader.read(serialize.query('x'.repeat(100))));
  t.equal(big.fatal.length, 1);
});

t.test('after an error in a batch: queued units are dropped up to the client\'s Sync, or what comes later is', async (t) => {
  const r = rig();
  r.reader.read(Buffer.concat([parse('SELECT 1'), flush(), bind(), execute(), sync(), serialize.query('SELECT 2')]));
  t.ok(r.reader.skipToSync(), 'the Sync was queued');
  t.same(r.drain().map(shape), ['simple+:Q']);

  r.reader.read(Buffer.concat([parse('SELECT 1'), flush(), bind()]));
  t.notOk(r.reader.skipToSync(), 'no Sync yet');
  t.equal(r.reader.length, 0);
  // The rest of the batch is dropped, its Sync becomes pgsplit's ReadyForQuery.
  r.reader.read(Buffer.concat([execute(), serialize.query('SELECT 3'), sync(), serialize.query('SELECT 4')]));
  const after = r.drain();
  t.same(after.map(shape), ['local+:', 'simple+:Q']);
  t.same(after[0]?.local, { kind: 'ready' });
  t.same(after[1]?.queries, ['SELECT 4']);

  r.reader.discardUntilSync();
  r.reader.read(Buffer.concat([bind(), execute(), sync()]));
  t.same(r.drain().map((u) => u.local?.kind), ['ready']);
});

t.test('after an error in a batch: a Terminate is never dropped, queued or still to come', async (t) => {
  const r = rig();
  r.reader.read(Buffer.concat([bind(), serialize.query('SELEC 1'), execute(), serialize.end(), sync(), serialize.query('SELECT 2')]));
  r.reader.shift();
  t.notOk(r.reader.skipToSync(), 'the Sync behind the Terminate is not reached');
  t.same(r.drain().map(shape), ['terminate+:', 'extended+:S', 'simple+:Q'], 'the Terminate is first in line');

  r.reader.read(Buffer.concat([parse('SELECT 1'), flush(), bind()]));
  t.notOk(r.reader.skipToSync(), 'no Sync yet');
  r.reader.read(Buffer.concat([execute(), serialize.query('SELECT 3'), serialize.end(), sync()]));
  t.same(r.drain().map(shape).slice(0, 1), ['terminate+:'], 'a Terminate among the messages dropped is kept');

  r.reader.discardUntilSync();
  r.reader.read(Buffer.concat([execute(), serialize.end()]));
  t.same(r.drain().map(shape), ['terminate+:'], 'and after an unsynced batch that could not be sent');
});

t.test('backpressure: reading stops past max_pending_bytes and resumes below a quarter of it', async (t) => {
  const q = serialize.query('SELECT 1'); // 14 bytes
  const r = rig(40);
  r.reader.read(Buffer.concat([q, q, q]));
  t.ok(r.client.paused, '3 x 14 = 42 bytes queued, over 40');
  t.equal(r.client.pauses, 1);
  t.ok(r.reader.full);
  r.reader.shift();
  r.reader.shift();
  t.equal(r.client.resumes, 0, '14 bytes left: not below 10');
  r.reader.shift();
  t.equal(r.client.resumes, 1);
  t.notOk(r.reader.full);
  // A requeued unit counts again.
  r.reader.read(Buffer.concat([q, q]));
  const head = r.reader.head as Unit;
  r.reader.shift();
  r.reader.requeue(head);
  r.reader.read(q);
  t.equal(r.client.pauses, 2, 'the requeued bytes count: 3 x 14 again');
  // A reload lowers the limit for running sessions too.
  const s = rig(1000);
  s.reader.read(Buffer.concat([q, q]));
  t.equal(s.client.pauses, 0);
  s.limits.maxPendingBytes = 20;
  s.reader.read(q);
  t.equal(s.client.pauses, 1);
});

t.test('backpressure: a server that has not drained keeps the client paused, even when the queue empties', async (t) => {
  const q = serialize.query('SELECT 1');
  const r = rig(20);
  const server = new EventEmitter();
  r.reader.serverFull(server);
  t.equal(r.client.pauses, 1);
  r.reader.read(Buffer.concat([q, q]));
  r.reader.shift();
  r.reader.shift();
  t.equal(r.client.resumes, 0, 'the queue drained, the server has not');
  server.emit('drain');
  t.equal(r.client.resumes, 1);
  // Two servers full: both must drain.
  const a = new EventEmitter();
  const b = new EventEmitter();
  r.reader.serverFull(a);
  r.reader.serverFull(b);
  a.emit('drain');
  t.equal(r.client.resumes, 1);
  b.emit('drain');
  t.equal(r.client.resumes, 2);
  // A session that no longer serves the client does not read it again.
  r.live.ready = false;
  r.reader.serverFull(a);
  a.emit('drain');
  t.equal(r.client.resumes, 2);
});
