/**
 * FrameCoalescer joins bytes that lie next to each other in memory into one buffer (one write), whether
 * they are given as ranges of the same view (the relay's chunk) or as separate views of one chunk (a
 * client's frames), never joins anything else, and forgets what it held on reset.
 */
import t from 'tap';
import { FrameCoalescer } from '../src/codec/frame-coalescer.js';
import { ChunkFrame, FrameReader } from '../src/codec/frame-reader.js';

const msg = (type: string, body: string): Buffer => {
  const b = Buffer.from(body);
  const out = Buffer.alloc(5 + b.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
};

t.test('ranges of one view: a whole chunk forwarded whole is the chunk itself', (t) => {
  const chunk = Buffer.concat([msg('D', 'one'), msg('D', 'two'), msg('C', 'SELECT 2')]);
  const c = new FrameCoalescer();
  c.addRange(chunk, 0, 8);
  c.addRange(chunk, 8, 16);
  c.addRange(chunk, 16, chunk.length);
  const parts = c.take();
  t.equal(parts.length, 1);
  t.equal(parts[0], chunk, 'no copy, no new view');
  t.same(c.take(), [], 'taken: empty');
  t.end();
});

t.test('a gap splits the run; a part of a view is a view of the same memory', (t) => {
  const chunk = Buffer.concat([msg('1', ''), msg('2', ''), msg('D', 'row'), msg('Z', 'I')]);
  const c = new FrameCoalescer();
  c.addRange(chunk, 0, 5); // ParseComplete
  c.addRange(chunk, 10, chunk.length); // BindComplete left out
  const parts = c.take();
  t.same(parts.map((p) => p.toString('latin1')), [chunk.subarray(0, 5).toString('latin1'), chunk.subarray(10).toString('latin1')]);
  t.equal(parts[1]?.buffer, chunk.buffer, 'a view, not a copy');
  t.end();
});

t.test("a client chunk's frames, each its own view, join into one buffer by their offsets", (t) => {
  const chunk = Buffer.concat([msg('P', '\0SELECT 1\0\0\0'), msg('B', '\0\0\0\0\0\0\0\0'), msg('E', '\0\0\0\0\0'), msg('S', '')]);
  const frames = new FrameReader({ maxMessageSize: 1 << 20 }).push(chunk);
  t.equal(frames.length, 4);
  const viaRaw = new FrameCoalescer();
  for (const f of frames) viaRaw.add(f.raw);
  const raw = viaRaw.take();
  t.equal(raw.length, 1, 'separate views of adjacent memory: one buffer');
  t.same(raw[0], chunk);
  const viaChunk = new FrameCoalescer();
  for (const f of frames) {
    t.ok(f instanceof ChunkFrame);
    const cf = f as ChunkFrame;
    viaChunk.addRange(cf.chunk, cf.start, cf.start + cf.raw.length);
  }
  const joined = viaChunk.take();
  t.equal(joined.length, 1);
  t.equal(joined[0], chunk, 'by offsets in the chunk: the chunk itself');
  t.end();
});

t.test('separate memory is never joined, even when offsets line up', (t) => {
  const a = msg('D', 'aaaa'); // Buffer.alloc: memory of its own (not the shared pool), offsets [0, 9)
  // Another allocation, viewed from offset 9: where `a` ends, in other memory.
  const other = Buffer.alloc(32);
  msg('D', 'bbbb').copy(other, 9);
  const b = other.subarray(9, 18);
  t.equal(b.byteOffset, a.byteOffset + a.length, 'offsets line up');
  const c = new FrameCoalescer();
  c.add(a);
  c.add(b);
  const parts = c.take();
  t.equal(parts.length, 2);
  t.same(Buffer.concat(parts), Buffer.concat([a, b]));
  t.end();
});

t.test('reset forgets what was not taken', (t) => {
  const chunk = msg('D', 'secret');
  const c = new FrameCoalescer();
  c.add(chunk);
  c.reset();
  const other = msg('C', 'SELECT 1');
  c.add(other);
  t.same(c.take(), [other], "only what came after the reset: nothing of another use's bytes");
  t.end();
});
