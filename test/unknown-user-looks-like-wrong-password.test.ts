/**
 * Authentication hardening: over SCRAM, a user that does not exist gets exactly what a real user with a
 * wrong password gets: the same SQLSTATE and message, a salt that stays the same across attempts, the
 * same iteration count, and about the same time to the refusal (no key derivation at login in either
 * case). node-postgres shows the same error text for both.
 */
import t from 'tap';
import crypto from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { startProxy } from './fixtures/proxy-fixture.js';
import { errorFields, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(120_000);

interface Attempt {
  salt: string;
  iterations: string;
  code: string;
  message: string;
  ms: number;
}

/** One SCRAM exchange with a made-up proof, by hand: what the server shows and how it refuses. */
async function probe(port: number, user: string): Promise<Attempt> {
  const s = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  let buf = Buffer.alloc(0);
  const waiting: Array<(m: { type: string; payload: Buffer }) => void> = [];
  const queue: Array<{ type: string; payload: Buffer }> = [];
  s.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
      const len = buf.readInt32BE(1);
      const m = { type: String.fromCharCode(buf[0] as number), payload: buf.subarray(5, 1 + len) };
      buf = buf.subarray(1 + len);
      const w = waiting.shift();
      if (w) w(m);
      else queue.push(m);
    }
  });
  const next = (): Promise<{ type: string; payload: Buffer }> =>
    new Promise((resolve) => {
      const m = queue.shift();
      if (m) resolve(m);
      else waiting.push(resolve);
    });
  const typed = (type: string, body: Buffer): Buffer => {
    const h = Buffer.alloc(5);
    h.write(type, 0, 'latin1');
    h.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([h, body]);
  };
  s.write(fe.startup({ user, database: 'postgres' }));
  const sasl = await next();
  if (sasl.type !== 'R' || sasl.payload.readInt32BE(0) !== 10) throw new Error(`expected AuthenticationSASL, got ${sasl.type}`);
  const nonce = crypto.randomBytes(18).toString('base64');
  const first = Buffer.from(`n,,n=,r=${nonce}`);
  const len = Buffer.alloc(4);
  len.writeInt32BE(first.length);
  const started = performance.now();
  s.write(typed('p', Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), len, first])));
  const cont = await next();
  const serverFirst = cont.payload.subarray(4).toString('utf8');
  const attrs = new Map(serverFirst.split(',').map((a) => [a.slice(0, 1), a.slice(2)]));
  const proof = crypto.randomBytes(32).toString('base64');
  s.write(typed('p', Buffer.from(`c=biws,r=${attrs.get('r') ?? ''},p=${proof}`)));
  const err = await next();
  const ms = performance.now() - started;
  s.destroy();
  if (err.type !== 'E') throw new Error(`expected ErrorResponse, got ${err.type}`);
  const f = errorFields(err.payload);
  return { salt: attrs.get('s') ?? '', iterations: attrs.get('i') ?? '', code: f.C ?? '', message: f.M ?? '', ms };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

t.test('an unknown user is refused exactly like a wrong password', async (t) => {
  const fx = await startProxy(t, { replicas: 0, config: { users: [{ name: 'app', password: 'Right-Pass-1' }] } });
  const real: Attempt[] = [];
  const ghost: Attempt[] = [];
  // Interleaved, after a warm-up, so that both see the same machine.
  await probe(fx.port, 'app');
  await probe(fx.port, 'nobody');
  for (let i = 0; i < 40; i++) {
    real.push(await probe(fx.port, 'app'));
    ghost.push(await probe(fx.port, 'nobody'));
  }
  const r0 = real[0] as Attempt;
  const g0 = ghost[0] as Attempt;
  t.equal(r0.code, '28P01');
  t.equal(g0.code, r0.code, 'the same SQLSTATE');
  t.equal(g0.message.replace('"nobody"', '"app"'), r0.message, `the same message: ${g0.message}`);
  t.equal(new Set(real.map((a) => a.salt)).size, 1, "a real user's salt is the same at every attempt");
  t.equal(new Set(ghost.map((a) => a.salt)).size, 1, "so is an unknown user's (it does not change per attempt)");
  t.not(g0.salt, r0.salt, 'and it is its own');
  t.equal(Buffer.from(g0.salt, 'base64').length, Buffer.from(r0.salt, 'base64').length, 'of the same length');
  t.equal(g0.iterations, r0.iterations, 'the same iteration count');
  const mr = median(real.map((a) => a.ms));
  const mg = median(ghost.map((a) => a.ms));
  t.comment(`median time from SASLInitialResponse to the refusal: wrong password ${mr.toFixed(3)} ms, unknown user ${mg.toFixed(3)} ms`);
  // A PBKDF2 of 4096 rounds at login (what made the difference before) takes several ms here.
  t.ok(Math.abs(mr - mg) < Math.max(2, 0.5 * Math.max(mr, mg)), 'about the same time to the refusal');

  // What real clients show.
  const msg = async (user: string): Promise<string> => {
    const c = new pg.Client({ host: '127.0.0.1', port: fx.port, user, password: 'Wrong-1', database: 'postgres' });
    return c.connect().then(() => 'connected', (e: Error) => e.message);
  };
  t.equal(await msg('nobody'), 'password authentication failed for user "nobody"');
  t.equal(await msg('app'), 'password authentication failed for user "app"');
});
