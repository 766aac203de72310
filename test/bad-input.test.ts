/**
 * Bad input from clients: garbage instead of a startup packet, unsupported protocol versions, SSL and
 * GSS encryption requests, wrong passwords, oversized and malformed messages, unknown message types and
 * clients that vanish half-way. Every bad client gets a FATAL ErrorResponse (where the protocol allows
 * one) and its socket closed, while well-behaved clients of the same pgsplit keep running queries the
 * whole time and never notice.
 */
import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import { resolveConfig } from '../src/config/load-config.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { silentLogger } from '../src/log/logger.js';

t.setTimeout(300_000);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLOSE_WITHIN_MS = 2000;
const PROTOCOL_3_0 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const USER = 'app';
const PASSWORD = 'secret';

// -------------------------------------------------------------------------------------------------------
// A raw frontend: bytes in, bytes out, nothing hidden
// -------------------------------------------------------------------------------------------------------

interface BackendMessage {
  type: string;
  payload: Buffer;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
}

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

function startupPacket(params: Record<string, string>, version = PROTOCOL_3_0): Buffer {
  const body = Buffer.concat([int32(version), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0])]);
  return Buffer.concat([int32(body.length + 4), body]);
}

function requestPacket(code: number): Buffer {
  return Buffer.concat([int32(8), int32(code)]);
}

function typed(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(body.length + 4), body]);
}

function queryMessage(sql: string): Buffer {
  return typed('Q', cstr(sql));
}

function md5hex(s: string | Buffer): string {
  return crypto.createHash('md5').update(s).digest('hex');
}

/** ErrorResponse / NoticeResponse fields by their one-letter codes. */
function errorFields(payload: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < payload.length && payload[off] !== 0) {
    const code = String.fromCharCode(payload[off] as number);
    const end = payload.indexOf(0, off + 1);
    if (end < 0) break;
    out[code] = payload.toString('utf8', off + 1, end);
    off = end + 1;
  }
  return out;
}

class RawClient {
  readonly socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private wakers: Array<() => void> = [];
  closed = false;
  /** Bytes received so far. */
  received = 0;
  /** Errors the socket reported (EPIPE / ECONNRESET when pgsplit hangs up while we write). */
  readonly socketErrors: Error[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.received += d.length;
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('error', (e) => this.socketErrors.push(e));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  /** Waits until `take` yields something, the socket closes, or the timeout passes. */
  private async waitFor<T>(take: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = take();
      if (v !== undefined) return v;
      if (this.closed) throw new Error(`connection closed while waiting for ${what} (${this.buf.length} bytes unread)`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wakers.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** One untyped byte (the answer to SSLRequest / GSSENCRequest). */
  readByte(timeoutMs = 5000): Promise<string> {
    return this.waitFor(() => {
      if (this.buf.length < 1) return undefined;
      const c = String.fromCharCode(this.buf[0] as number);
      this.buf = this.buf.subarray(1);
      return c;
    }, timeoutMs, 'a single-byte answer');
  }

  readMessage(timeoutMs = 5000): Promise<BackendMessage> {
    return this.waitFor(() => {
      if (this.buf.length < 5) return undefined;
      const len = this.buf.readInt32BE(1);
      if (this.buf.length < 1 + len) return undefined;
      const m = { type: String.fromCharCode(this.buf[0] as number), payload: Buffer.from(this.buf.subarray(5, 1 + len)) };
      this.buf = this.buf.subarray(1 + len);
      return m;
    }, timeoutMs, 'a backend message');
  }

  /** Messages up to and including the first of type `type`. */
  async readUntil(type: string, timeoutMs = 10_000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.readMessage(Math.max(1, deadline - Date.now()));
      out.push(m);
      if (m.type === type) return out;
    }
  }

  /** Resolves with the ms it took for the socket to close; rejects if it stays open. */
  async waitClosed(timeoutMs = CLOSE_WITHIN_MS): Promise<number> {
    const start = Date.now();
    if (this.closed) return 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket still open ${timeoutMs} ms later`)), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return Date.now() - start;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Startup and authentication (trust, md5 or cleartext) up to ReadyForQuery.
 * Throws with the server's fields if pgsplit answers with an ErrorResponse.
 */
async function login(raw: RawClient, user = USER, password = PASSWORD, extra: Record<string, string> = {}): Promise<BackendMessage[]> {
  raw.write(startupPacket({ user, database: 'postgres', ...extra }));
  const seen: BackendMessage[] = [];
  for (;;) {
    const m = await raw.readMessage(10_000);
    seen.push(m);
    if (m.type === 'E') throw Object.assign(new Error(`login refused: ${JSON.stringify(errorFields(m.payload))}`), { fields: errorFields(m.payload) });
    if (m.type === 'R') {
      const code = m.payload.readInt32BE(0);
      if (code === 5) {
        const salt = m.payload.subarray(4, 8);
        raw.write(typed('p', cstr('md5' + md5hex(Buffer.concat([Buffer.from(md5hex(password + user)), salt])))));
      } else if (code === 3) {
        raw.write(typed('p', cstr(password)));
      } else if (code !== 0) {
        throw new Error(`raw client cannot do authentication method ${code}`);
      }
    }
    if (m.type === 'Z') return seen;
  }
}

/** Runs a simple query on a raw connection; returns its DataRow values (text) and the command tag. */
async function rawQuery(raw: RawClient, sql: string): Promise<{ rows: string[][]; tag: string | undefined; error: Record<string, string> | undefined }> {
  raw.write(queryMessage(sql));
  const rows: string[][] = [];
  let tag: string | undefined;
  let error: Record<string, string> | undefined;
  for (const m of await raw.readUntil('Z')) {
    if (m.type === 'D') {
      const n = m.payload.readInt16BE(0);
      let off = 2;
      const row: string[] = [];
      for (let i = 0; i < n; i++) {
        const len = m.payload.readInt32BE(off);
        off += 4;
        row.push(len < 0 ? '\\N' : m.payload.toString('utf8', off, off + len));
        if (len > 0) off += len;
      }
      rows.push(row);
    } else if (m.type === 'C') tag = m.payload.toString('utf8', 0, m.payload.length - 1);
    else if (m.type === 'E') error = errorFields(m.payload);
  }
  return { rows, tag, error };
}

/**
 * Expects pgsplit to answer with exactly one FATAL ErrorResponse with SQLSTATE `code` (one of `code` when
 * a list) and then close the connection within CLOSE_WITHIN_MS. Returns the error fields.
 */
async function expectFatal(t: Test, raw: RawClient, code: string | string[], what: string): Promise<Record<string, string>> {
  let fields: Record<string, string> = {};
  try {
    const m = await raw.readMessage(5000);
    t.equal(m.type, 'E', `${what}: pgsplit answers with an ErrorResponse`);
    fields = errorFields(m.payload);
  } catch (e) {
    t.fail(`${what}: no ErrorResponse: ${(e as Error).message}`);
  }
  t.equal(fields.S, 'FATAL', `${what}: severity FATAL`);
  t.equal(fields.V, 'FATAL', `${what}: non-localized severity FATAL`);
  if (Array.isArray(code)) t.ok(code.includes(fields.C ?? ''), `${what}: SQLSTATE ${fields.C} is one of ${code.join(', ')}`);
  else t.equal(fields.C, code, `${what}: SQLSTATE ${code}`);
  t.ok(fields.M && fields.M.length > 0, `${what}: with a message (${fields.M})`);
  try {
    const ms = await raw.waitClosed();
    t.pass(`${what}: socket closed ${ms} ms after the error`);
  } catch (e) {
    t.fail(`${what}: ${(e as Error).message}`);
    raw.destroy();
  }
  return fields;
}

// -------------------------------------------------------------------------------------------------------
// Well-behaved clients running the whole time
// -------------------------------------------------------------------------------------------------------

interface Background {
  label: string;
  iterations: number;
  wrong: string[];
  errors: string[];
  stop(): Promise<void>;
}

/** A pg.Client looping over a query whose answer it can check, until stopped. */
function runBackground(label: string, client: pg.Client, expectRecovery: boolean): Background {
  let stopping = false;
  const bg: Background = {
    label,
    iterations: 0,
    wrong: [],
    errors: [],
    stop: async () => {
      stopping = true;
      await loop;
    },
  };
  client.on('error', (e) => bg.errors.push(`client error event: ${e.message}`));
  const loop = (async () => {
    while (!stopping) {
      const i = bg.iterations;
      try {
        const r = await client.query<{ doubled: number; h: string; rec: boolean; s: string }>(
          "SELECT $1::int * 2 AS doubled, md5($1::text) AS h, pg_is_in_recovery() AS rec, repeat('ab', $1::int % 50) AS s",
          [i],
        );
        const row = r.rows[0];
        if (r.rows.length !== 1 || !row || row.doubled !== i * 2 || row.h !== md5hex(String(i)) || row.rec !== expectRecovery || row.s !== 'ab'.repeat(i % 50)) {
          bg.wrong.push(`iteration ${i}: ${JSON.stringify(r.rows)}`);
        }
      } catch (e) {
        bg.errors.push(`iteration ${i}: ${(e as Error).message}`);
        return;
      }
      bg.iterations++;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  return bg;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

// -------------------------------------------------------------------------------------------------------
// The proxies under test
// -------------------------------------------------------------------------------------------------------

const limits = { max_message_size: '1MB' };
// md5: the raw client here can log in with a few lines of code.
const md5Fx: ProxyFixture = await startProxy(t, {
  replicas: 1,
  config: { users: [{ name: USER, password: PASSWORD }], auth: { method: 'md5' }, limits },
});
const scramFx: ProxyFixture = await startProxy(t, {
  reuseCluster: md5Fx.cluster,
  config: { users: [{ name: USER, password: PASSWORD }], auth: { method: 'scram-sha-256' }, limits },
});

const background: Background[] = [
  runBackground('md5 proxy, untagged (primary)', await md5Fx.client({ user: USER, password: PASSWORD }), false),
  runBackground('md5 proxy, tagged (replica)', await md5Fx.client({ user: USER, password: PASSWORD, options: '-c pgsplit.route=replica' }), true),
  runBackground('scram proxy, untagged (primary)', await scramFx.client({ user: USER, password: PASSWORD }), false),
];
const port = md5Fx.port;

// -------------------------------------------------------------------------------------------------------

t.test('garbage before startup gets a FATAL 08P01 and the socket is closed', async (t) => {
  {
    const raw = await RawClient.connect(port);
    raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    const f = await expectFatal(t, raw, '08P01', 'HTTP request');
    t.match(f.M, /startup packet/, 'the message says what was expected');
  }
  {
    // Random bytes whose first byte is not zero: the length field is negative or far over 10000.
    const junk = crypto.randomBytes(512);
    junk[0] = (junk[0] as number) | 0x01;
    const raw = await RawClient.connect(port);
    raw.write(junk);
    await expectFatal(t, raw, '08P01', `random bytes (${junk.subarray(0, 4).toString('hex')}...)`);
  }
  {
    // A plausible length with a random body: the "protocol version" is nonsense (major >= 0x4000).
    const body = crypto.randomBytes(96);
    body[0] = ((body[0] as number) | 0x40) & 0x7f;
    const raw = await RawClient.connect(port);
    raw.write(Buffer.concat([int32(100), body]));
    await expectFatal(t, raw, ['08P01', '0A000'], 'valid length, random body');
  }
  for (const len of [0, 4, 7, -1, 10001, 0x7fffffff]) {
    const raw = await RawClient.connect(port);
    raw.write(Buffer.concat([int32(len), Buffer.alloc(8)]));
    await expectFatal(t, raw, '08P01', `startup length ${len}`);
  }
  {
    // A TLS ClientHello sent straight away (a client configured for direct TLS).
    const hello = Buffer.from('16030100a5010000a10303', 'hex');
    const raw = await RawClient.connect(port);
    raw.write(Buffer.concat([hello, crypto.randomBytes(160)]));
    await expectFatal(t, raw, '08P01', 'TLS ClientHello');
  }
});

t.test('unsupported protocol versions are refused', async (t) => {
  {
    const raw = await RawClient.connect(port);
    raw.write(startupPacket({ user: USER, database: 'postgres' }, 0x00020000));
    const f = await expectFatal(t, raw, '0A000', 'protocol 2.0');
    t.match(f.M, /2\.0/, 'the message names the version');
  }
  {
    const raw = await RawClient.connect(port);
    raw.write(startupPacket({ user: USER, database: 'postgres' }, 0x00010000));
    await expectFatal(t, raw, '0A000', 'protocol 1.0');
  }
  {
    // PostgreSQL answers 0A000 "unsupported frontend protocol 1234.5678"; pgsplit may also call it not PostgreSQL.
    const raw = await RawClient.connect(port);
    raw.write(startupPacket({ user: USER, database: 'postgres' }, (1234 << 16) | 5678));
    const f = await expectFatal(t, raw, ['0A000', '08P01'], 'protocol 1234.5678');
    t.comment(`protocol 1234.5678 -> ${f.C}: ${f.M}`);
  }
  {
    const raw = await RawClient.connect(port);
    raw.write(startupPacket({ user: USER, database: 'postgres' }, 4 << 16));
    const f = await expectFatal(t, raw, ['0A000', '08P01'], 'protocol 4.0');
    t.comment(`protocol 4.0 -> ${f.C}: ${f.M}`);
  }
});

t.test('protocol 3.2 is negotiated down to 3.0', async (t) => {
  const raw = await RawClient.connect(port);
  raw.write(startupPacket({ user: USER, database: 'postgres', '_pq_.unknown_option': 'x' }, (3 << 16) | 2));
  const first = await raw.readMessage();
  t.equal(first.type, 'v', 'NegotiateProtocolVersion first');
  t.equal(first.payload.readInt32BE(0), PROTOCOL_3_0, 'offering 3.0');
  t.equal(first.payload.readInt32BE(4), 1, 'one unrecognized option');
  t.equal(first.payload.toString('utf8', 8, first.payload.length - 1), '_pq_.unknown_option');
  // Continue the md5 login by hand.
  const auth = await raw.readMessage();
  t.equal(auth.type, 'R');
  t.equal(auth.payload.readInt32BE(0), 5, 'md5 requested');
  const salt = auth.payload.subarray(4, 8);
  raw.write(typed('p', cstr('md5' + md5hex(Buffer.concat([Buffer.from(md5hex(PASSWORD + USER)), salt])))));
  const rest = await raw.readUntil('Z');
  t.notOk(rest.some((m) => m.type === 'E'), 'login succeeds');
  const r = await rawQuery(raw, 'SELECT 41 + 1');
  t.same(r.rows, [['42']]);
  raw.destroy();
});

t.test('SSLRequest and GSSENCRequest are answered N, then a normal startup works', async (t) => {
  for (const [name, code] of [['SSLRequest', SSL_REQUEST], ['GSSENCRequest', GSSENC_REQUEST]] as const) {
    const raw = await RawClient.connect(port);
    raw.write(requestPacket(code));
    t.equal(await raw.readByte(), 'N', `${name} answered 'N'`);
    await login(raw);
    const r = await rawQuery(raw, 'SELECT 6 * 7');
    t.same(r.rows, [['42']], `queries work after ${name}`);
    raw.destroy();
  }
  {
    // libpq with gssencmode=prefer and sslmode=prefer sends GSSENCRequest, then SSLRequest, then startup.
    const raw = await RawClient.connect(port);
    raw.write(requestPacket(GSSENC_REQUEST));
    t.equal(await raw.readByte(), 'N', 'GSSENCRequest: N');
    raw.write(requestPacket(SSL_REQUEST));
    t.equal(await raw.readByte(), 'N', 'then SSLRequest: N');
    await login(raw);
    t.same((await rawQuery(raw, 'SELECT 1')).rows, [['1']], 'then the session works');
    raw.destroy();
  }
  {
    // SSLRequest and StartupMessage in one write (a pipelining client): both handled in order.
    const raw = await RawClient.connect(port);
    raw.write(Buffer.concat([requestPacket(SSL_REQUEST), startupPacket({ user: USER, database: 'postgres' })]));
    t.equal(await raw.readByte(), 'N', 'SSLRequest answered N');
    const auth = await raw.readMessage();
    t.equal(auth.type, 'R', 'and the StartupMessage behind it is answered');
    raw.destroy();
  }
  {
    // A malformed SSLRequest (length 12 with the SSL code) is a protocol violation.
    const raw = await RawClient.connect(port);
    raw.write(Buffer.concat([int32(12), int32(SSL_REQUEST), int32(0)]));
    await expectFatal(t, raw, '08P01', 'SSLRequest with a bad length');
  }
});

for (const [method, fx] of [['md5', () => md5Fx], ['scram-sha-256', () => scramFx]] as const) {
  t.test(`auth.method ${method}: wrong password and unknown user get 28P01, the right password works`, async (t) => {
    const f = fx();
    const connect = async (user: string, password: string) => {
      const c = new pg.Client({ host: '127.0.0.1', port: f.port, user, password, database: 'postgres' });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return c;
      } catch (e) {
        await c.end().catch(() => undefined);
        throw e;
      }
    };
    const ok = await connect(USER, PASSWORD);
    t.equal((await ok.query('SELECT 1 AS one')).rows[0].one, 1, 'right password works');
    await ok.end();

    let wrong: (Error & { code?: string; severity?: string }) | undefined;
    await connect(USER, 'not-the-password').then(
      async (c) => {
        await c.end();
        t.fail('wrong password accepted');
      },
      (e: Error & { code?: string; severity?: string }) => {
        wrong = e;
      },
    );
    t.equal(wrong?.code, '28P01', 'wrong password: SQLSTATE 28P01');
    t.equal(wrong?.severity, 'FATAL', 'wrong password: FATAL');
    t.equal(wrong?.message, `password authentication failed for user "${USER}"`);

    let unknown: (Error & { code?: string; severity?: string }) | undefined;
    await connect('nosuchuser', 'whatever').then(
      async (c) => {
        await c.end();
        t.fail('unknown user accepted');
      },
      (e: Error & { code?: string; severity?: string }) => {
        unknown = e;
      },
    );
    t.equal(unknown?.code, '28P01', 'unknown user: SQLSTATE 28P01');
    t.equal(unknown?.severity, 'FATAL', 'unknown user: FATAL');
    t.equal(
      unknown?.message.replace('"nosuchuser"', '"U"'),
      wrong?.message.replace(`"${USER}"`, '"U"'),
      'an unknown user gets the same message shape as a wrong password',
    );

    // An unknown user is asked for the same kind of password as a real one: nothing tells them apart.
    const askFor = async (user: string): Promise<number> => {
      const raw = await RawClient.connect(f.port);
      raw.write(startupPacket({ user, database: 'postgres' }));
      const m = await raw.readMessage();
      raw.destroy();
      return m.type === 'R' ? m.payload.readInt32BE(0) : -1;
    };
    const known = await askFor(USER);
    t.equal(known, method === 'md5' ? 5 : 10, `a known user is asked for ${method}`);
    t.equal(await askFor('nosuchuser'), known, 'an unknown user is asked the same way');

    // The handshake is bounded: a client that never answers the password request is cut off, the
    // others are not (covered by the background clients). Here: an empty password message.
    {
      const raw = await RawClient.connect(f.port);
      raw.write(startupPacket({ user: USER, database: 'postgres' }));
      await raw.readMessage();
      raw.write(typed('p', method === 'md5' ? cstr('') : Buffer.alloc(0)));
      const fields = await expectFatal(t, raw, method === 'md5' ? '28P01' : ['28P01', '08P01'], 'empty password message');
      t.comment(`empty password message -> ${fields.C}: ${fields.M}`);
    }
    {
      // Something other than a password message during authentication.
      const raw = await RawClient.connect(f.port);
      raw.write(startupPacket({ user: USER, database: 'postgres' }));
      await raw.readMessage();
      raw.write(queryMessage('SELECT 1'));
      await expectFatal(t, raw, '08P01', 'a Query instead of a password');
    }

    const env = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(f.port), PGUSER: USER, PGDATABASE: 'postgres', PGCONNECT_TIMEOUT: '10' };
    const bad = await run('psql', ['-X', '-w', '-Atc', 'SELECT 1'], { ...env, PGPASSWORD: 'wrong' });
    t.equal(bad.code, 2, 'psql with a wrong PGPASSWORD exits with code 2');
    t.match(bad.stderr, /password authentication failed/, 'and says password authentication failed');
    t.comment(`psql stderr: ${bad.stderr.trim()}`);
    const good = await run('psql', ['-X', '-w', '-Atc', 'SELECT 1'], { ...env, PGPASSWORD: PASSWORD });
    t.equal(good.code, 0, `psql with the right password works (${good.stderr.trim()})`);
    t.equal(good.stdout.trim(), '1');
  });
}

t.test('messages over limits.max_message_size get 54000 and a close; impossible lengths get 08P01', async (t) => {
  {
    // Just under the limit works: a 900 kB statement.
    const raw = await RawClient.connect(port);
    await login(raw);
    const r = await rawQuery(raw, `SELECT length('${'y'.repeat(900_000)}')`);
    t.same(r.rows, [['900000']], 'a 900 kB Query under the 1 MB limit runs');
    raw.destroy();
  }
  {
    // Only the header of a 2 MB Query: the length alone must be enough to refuse it.
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(Buffer.concat([Buffer.from('Q'), int32(2 * 1024 * 1024 + 4)]));
    const f = await expectFatal(t, raw, '54000', '2 MB Query (header only)');
    t.match(f.M, /limits\.max_message_size/, 'the message names limits.max_message_size');
    t.comment(`54000 message: ${f.M}`);
  }
  {
    // The whole 2 MB Query, sent in one go.
    const raw = await RawClient.connect(port);
    await login(raw);
    const sql = `SELECT length('${'z'.repeat(2 * 1024 * 1024)}')`;
    raw.write(queryMessage(sql));
    const f = await expectFatal(t, raw, '54000', '2 MB Query (whole message)');
    t.match(f.M, /limits\.max_message_size/, 'the message names limits.max_message_size');
  }
  {
    // A 2 MB Parse in the extended protocol is refused the same way.
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(Buffer.concat([Buffer.from('P'), int32(2 * 1024 * 1024 + 4), Buffer.alloc(1000)]));
    await expectFatal(t, raw, '54000', '2 MB Parse');
  }
  for (const len of [3, 0, -5]) {
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(Buffer.concat([Buffer.from('Q'), int32(len), Buffer.alloc(16)]));
    const f = await expectFatal(t, raw, '08P01', `Query with length ${len}`);
    t.match(f.M, /length/, 'the message mentions the length');
  }
});

t.test('an unknown message type after startup gets 08P01 and a close', async (t) => {
  for (const type of ['z', '!', '\x00', 'Y']) {
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(typed(type, Buffer.from('hello\0')));
    await expectFatal(t, raw, '08P01', `message type ${JSON.stringify(type)}`);
  }
  {
    // A backend-only message type sent by a client ('T' RowDescription).
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(typed('T', Buffer.alloc(2)));
    await expectFatal(t, raw, '08P01', "backend message type 'T' from a client");
  }
  {
    // A Query without its terminating NUL.
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(typed('Q', Buffer.from('SELECT 1')));
    await expectFatal(t, raw, '08P01', 'Query with no NUL terminator');
  }
});

t.test('clients that vanish mid-result or mid-message do not disturb pgsplit', async (t) => {
  const before = md5Fx.proxy.sessionCount;
  const tag = crypto.randomBytes(4).toString('hex');
  const pausedMarker = `vanish_paused_${tag}`;
  const readingMarker = `vanish_reading_${tag}`;
  const waitReceived = async (raw: RawClient, bytes: number) => {
    const deadline = Date.now() + 20_000;
    while (raw.received < bytes && !raw.closed && Date.now() < deadline) await sleep(10);
  };
  {
    // Start a ~5 GB result, read 2 MB of it, stop reading (backpressure), then disconnect.
    const raw = await RawClient.connect(port);
    await login(raw);
    const start = raw.received;
    raw.write(queryMessage(`SELECT repeat('x', 1000) AS ${pausedMarker} FROM generate_series(1, 5000000)`));
    await waitReceived(raw, start + 2 * 1024 * 1024);
    t.ok(raw.received >= start + 2 * 1024 * 1024, 'the result is streaming');
    raw.socket.pause();
    await sleep(500);
    raw.destroy();
    t.pass('client disconnected in the middle of the result, after it stopped reading');
  }
  {
    // Same, but the client is reading at full speed when it disconnects.
    const raw = await RawClient.connect(port);
    await login(raw);
    const start = raw.received;
    raw.write(queryMessage(`SELECT repeat('x', 1000) AS ${readingMarker} FROM generate_series(1, 5000000)`));
    await waitReceived(raw, start + 2 * 1024 * 1024);
    raw.destroy();
    t.pass('client disconnected in the middle of the result, while reading');
  }
  {
    // Half a message, then gone.
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(Buffer.concat([Buffer.from('Q'), int32(100), Buffer.from('SELECT')]));
    await sleep(100);
    raw.destroy();
  }
  {
    // Half a header, then gone.
    const raw = await RawClient.connect(port);
    await login(raw);
    raw.write(Buffer.from([0x51, 0x00]));
    await sleep(100);
    raw.destroy();
  }
  {
    // Half a startup packet, then gone.
    const raw = await RawClient.connect(port);
    raw.write(startupPacket({ user: USER, database: 'postgres' }).subarray(0, 10));
    await sleep(100);
    raw.destroy();
  }
  {
    // Gone right after the password request.
    const raw = await RawClient.connect(port);
    raw.write(startupPacket({ user: USER, database: 'postgres' }));
    await raw.readMessage();
    raw.destroy();
  }

  // pgsplit drops the sessions and lets the server backends go.
  const deadline = Date.now() + 10_000;
  let sessions = md5Fx.proxy.sessionCount;
  while (sessions > before && Date.now() < deadline) {
    await sleep(100);
    sessions = md5Fx.proxy.sessionCount;
  }
  t.equal(sessions, before, 'the vanished clients no longer hold sessions');
  // PostgreSQL itself aborts a query whose client has gone; through pgsplit the server must not be left
  // producing (or blocked sending) a result nobody will read.
  type Backend = { pid: number; state: string; wait_event: string | null; query: string };
  let leftover: Backend[] = [];
  for (;;) {
    leftover = await md5Fx.cluster.primary.query<Backend>(
      "SELECT pid, state, wait_event, substring(query from 'AS (\\w+)') AS query FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
      [`%AS vanish_%_${tag}%`],
    );
    if (leftover.length === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  t.same(leftover.filter((b) => b.query === pausedMarker), [], 'no server backend is left with the query of the client that stopped reading (within 10 s)');
  t.same(leftover.filter((b) => b.query === readingMarker), [], 'no server backend is left with the query of the client that was reading (within 10 s)');

  const raw = await RawClient.connect(port);
  await login(raw);
  t.same((await rawQuery(raw, 'SELECT 2 + 2')).rows, [['4']], 'a new client is served');
  raw.destroy();
});

t.test('development mode (no users) is refused on a non-loopback address', async (t) => {
  const primary = 'postgres://x@127.0.0.1:1/x';
  for (const listen of ['0.0.0.0:0', '[::]:0', '192.168.1.10:6432']) {
    t.throws(() => resolveConfig({ listen, primary }), /users[\s\S]*loopback|loopback[\s\S]*users/, `resolveConfig refuses listen ${listen} without users`);
  }
  t.doesNotThrow(() => resolveConfig({ listen: '0.0.0.0:0', primary, users: [{ name: 'a', password: 'b' }] }), 'with users, 0.0.0.0 is allowed');
  for (const listen of ['127.0.0.1:0', 'localhost:0', '[::1]:0']) {
    t.doesNotThrow(() => resolveConfig({ listen, primary }), `development mode on ${listen} is allowed`);
  }

  // ProxyServer checks too, for a config that did not come through resolveConfig.
  const base = resolveConfig({ listen: '127.0.0.1:0', primary });
  const config = { ...base, listen: { host: '0.0.0.0', port: 0 } };
  t.throws(() => new ProxyServer(config, silentLogger), /users[\s\S]*loopback|loopback[\s\S]*users/, 'new ProxyServer refuses 0.0.0.0 without users');

  const cli = await run(process.execPath, [path.join(ROOT, 'bin/pgsplit.js'), '--listen', '0.0.0.0:0', '--primary', primary], process.env, 20_000);
  t.not(cli.code, 0, `the CLI exits non-zero (code ${cli.code})`);
  t.not(cli.code, null, 'the CLI exits by itself instead of listening');
  t.match(cli.stderr, /users/, 'stderr mentions users');
  t.match(cli.stderr, /loopback/, 'stderr mentions loopback');
  t.comment(`CLI: exit ${cli.code}: ${cli.stderr.trim()}`);
});

t.test('the well-behaved clients saw no error and only right answers', async (t) => {
  await sleep(200);
  for (const bg of background) await bg.stop();
  for (const bg of background) {
    t.same(bg.errors, [], `${bg.label}: no errors`);
    t.same(bg.wrong, [], `${bg.label}: no wrong results`);
    t.ok(bg.iterations > 50, `${bg.label}: ran ${bg.iterations} queries during the test`);
  }
});
