/**
 * FrameReader: any split of a message stream into chunks gives back the same messages, through both
 * ways of reading (push and the feed/next cursor); a large message arriving in small pieces is gathered
 * without holding more than it received (twice at most), and lengths over the limit are refused at once.
 */
import t from 'tap';
import fc from 'fast-check';
import { FrameReader } from '../src/codec/frame-reader.js';

const msg = (type: number, body: Buffer): Buffer => {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
};

/** Cuts `data` at the given fractions into chunks (copies, as sockets deliver them). */
function cut(data: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * data.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...at, data.length]) {
    if (p > prev) out.push(Buffer.from(data.subarray(prev, p)));
    prev = p;
  }
  return out;
}

const messages = fc.array(fc.record({ type: fc.integer({ min: 0x41, max: 0x7a }), body: fc.uint8Array({ maxLength: 3000 }) }), { maxLength: 30 });
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 60 });

t.test('push: every split gives the same messages', async (t) => {
  fc.assert(fc.property(messages, cuts, (ms, cs) => {
    const wire = Buffer.concat(ms.map((m) => msg(m.type, Buffer.from(m.body))));
    const r = new FrameReader({ maxMessageSize: 1 << 20 });
    const got: string[] = [];
    for (const c of cut(wire, cs)) for (const f of r.push(c)) got.push(`${f.type}:${f.payload.toString('hex')}:${f.raw.length}`);
    const want = ms.map((m) => `${m.type}:${Buffer.from(m.body).toString('hex')}:${m.body.length + 5}`);
    return JSON.stringify(got) === JSON.stringify(want) && r.bufferedBytes === 0;
  }), { numRuns: 300 });
  t.pass('300 random streams and splits');
});

t.test('cursor: every split gives the same messages by position', async (t) => {
  fc.assert(fc.property(messages, cuts, (ms, cs) => {
    const wire = Buffer.concat(ms.map((m) => msg(m.type, Buffer.from(m.body))));
    const r = new FrameReader({ maxMessageSize: 1 << 20 });
    const got: Buffer[] = [];
    for (const c of cut(wire, cs)) {
      r.feed(c);
      for (let ty = r.next(); ty >= 0; ty = r.next()) got.push(Buffer.from(r.buf.subarray(r.start, r.end)));
    }
    return Buffer.concat(got).equals(wire);
  }), { numRuns: 300 });
  t.pass('300 random streams and splits');
});

t.test('a large message in small pieces: held bytes track what arrived', async (t) => {
  const body = Buffer.alloc(8 * 1024 * 1024, 7);
  const wire = Buffer.concat([msg(0x51, body), msg(0x53, Buffer.alloc(0))]);
  const r = new FrameReader({ maxMessageSize: 64 * 1024 * 1024 });
  const frames: number[] = [];
  let maxHeld = 0;
  let mismatches = 0;
  for (let off = 0; off < wire.length; off += 1000) {
    for (const f of r.push(wire.subarray(off, Math.min(wire.length, off + 1000)))) frames.push(f.payload.length);
    maxHeld = Math.max(maxHeld, r.bufferedBytes);
    if (frames.length === 0 && r.bufferedBytes !== Math.min(wire.length, off + 1000)) mismatches++;
  }
  t.equal(mismatches, 0, 'while incomplete, exactly the bytes received are held');
  t.same(frames, [body.length, 0], 'the 8 MB message and the one after it');
  t.ok(maxHeld <= body.length + 5, 'never more than the message');
});

t.test('a declared length over the limit is refused before its body arrives', async (t) => {
  const r = new FrameReader({ maxMessageSize: 1024 });
  const h = Buffer.alloc(5);
  h[0] = 0x51;
  h.writeInt32BE(1 << 30, 1);
  t.throws(() => r.push(h), /over the limit of 1024 bytes/);
});

t.test('drain gives back a partly received message', async (t) => {
  const r = new FrameReader({ maxMessageSize: 1 << 20 });
  const m = msg(0x51, Buffer.alloc(100_000, 1));
  t.same(r.push(m.subarray(0, 70_000)), []);
  const rest = r.drain();
  t.ok(rest?.equals(m.subarray(0, 70_000)), 'the bytes so far, in order');
  t.equal(r.bufferedBytes, 0);
});
