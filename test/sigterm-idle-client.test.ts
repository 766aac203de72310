/**
 * SIGTERM closes idle sessions at once, even those whose client does not read or never closes its side:
 * pgsplit writes FATAL 57P01, ends the socket and lets it go without waiting for the client to close it.
 * limits.shutdown_grace is set to an hour, so a pgsplit that kept any of these sockets until a timer or
 * the grace ran out would not exit within the test's timeout.
 */
import t from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startCluster } from './fixtures/proxy-fixture.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { spawnPgsplit } from './fixtures/pgsplit-process.js';
import { errorFields, fe, type BackendMessage } from './fixtures/raw-pg-client.js';

t.setTimeout(120_000);

/** Splits complete backend messages off the front of `buf`; returns them and the incomplete rest. */
function parse(buf: Buffer): { messages: BackendMessage[]; rest: Buffer } {
  const messages: BackendMessage[] = [];
  let i = 0;
  while (i + 5 <= buf.length) {
    const len = buf.readInt32BE(i + 1);
    if (i + 1 + len > buf.length) break;
    messages.push({ type: String.fromCharCode(buf[i] ?? 0), payload: buf.subarray(i + 5, i + 1 + len) });
    i += 1 + len;
  }
  return { messages, rest: buf.subarray(i) };
}

/**
 * A client on a raw socket: the startup exchange, then `sql` (if any) as one simple Query, answered up to
 * its ReadyForQuery. What it receives afterwards is kept in `after`; `ended` resolves at end of stream.
 */
class IdleClient {
  after: Buffer = Buffer.alloc(0);
  readonly ended: Promise<void>;
  private buf: Buffer = Buffer.alloc(0);
  private readyCount = 0;
  private waiting: { count: number; resolve: () => void } | null = null;

  private constructor(readonly socket: net.Socket, readonly name: string) {
    socket.on('error', () => undefined);
    socket.on('data', (c: Buffer) => this.onData(c));
    this.ended = new Promise((resolve) => socket.once('end', () => resolve()));
  }

  static async connect(port: number, name: string, opts: { allowHalfOpen: boolean; sql?: string }): Promise<IdleClient> {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: opts.allowHalfOpen });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const c = new IdleClient(socket, name);
    socket.write(fe.startup({ user: 'postgres', database: 'postgres', application_name: name }));
    await c.readyFor(1);
    if (opts.sql !== undefined) {
      socket.write(fe.query(opts.sql));
      await c.readyFor(2);
    }
    return c;
  }

  private onData(chunk: Buffer): void {
    if (this.waiting === null) {
      this.after = Buffer.concat([this.after, chunk]);
      return;
    }
    const { messages, rest } = parse(Buffer.concat([this.buf, chunk]));
    this.buf = rest;
    for (const m of messages) {
      if (m.type === 'Z') this.readyCount++;
      if (m.type === 'E') throw new Error(`${this.name}: unexpected error during setup: ${JSON.stringify(errorFields(m.payload))}`);
    }
    if (this.readyCount >= this.waiting.count) {
      const w = this.waiting;
      this.waiting = null;
      this.after = Buffer.concat([this.after, this.buf]);
      w.resolve();
    }
  }

  private readyFor(count: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiting = { count, resolve };
    });
  }

  /** The ErrorResponse fields of what arrived after setup. */
  errors(): Array<Record<string, string>> {
    return parse(this.after).messages.filter((m) => m.type === 'E').map((m) => errorFields(m.payload));
  }
}

t.test('SIGTERM with idle clients that do not read or never close: each gets 57P01, pgsplit exits without waiting', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const port = await claimFreePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-sigterm-idle-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'pgsplit.yaml');
  fs.writeFileSync(config, 'limits: { shutdown_grace: 1h }\n');
  const proc = await spawnPgsplit(t, ['--config', config, '--listen', `127.0.0.1:${port}`, '--primary', cluster.primary.url(), '--log-level', 'info'], port);

  // Idle after ReadyForQuery, then stops reading (its socket paused: the FATAL and the end wait in its kernel buffer).
  const paused = await IdleClient.connect(port, 'paused', { allowHalfOpen: false });
  paused.socket.pause();
  // Idle inside a transaction, not reading either.
  const pausedInTx = await IdleClient.connect(port, 'paused-in-tx', { allowHalfOpen: false, sql: 'BEGIN; SELECT 1' });
  pausedInTx.socket.pause();
  // Reads, but keeps its own side open after pgsplit's end (half-open).
  const halfOpen = await IdleClient.connect(port, 'half-open', { allowHalfOpen: true });
  t.teardown(() => {
    for (const c of [paused, pausedInTx, halfOpen]) c.socket.destroy();
  });

  proc.child.kill('SIGTERM');
  t.equal(await proc.exited, 0, 'pgsplit exits 0 with limits.shutdown_grace at 1 h: it waited for none of these clients');

  await halfOpen.ended;
  t.equal(halfOpen.socket.writable, true, 'the half-open client had not closed its side when pgsplit exited');
  for (const c of [paused, pausedInTx]) {
    c.socket.resume();
    await c.ended;
  }
  for (const c of [paused, pausedInTx, halfOpen]) {
    const errs = c.errors();
    t.equal(errs.length, 1, `${c.name}: one ErrorResponse, then the end of the stream`);
    t.equal(errs[0]?.C, '57P01', `${c.name}: SQLSTATE 57P01`);
    t.equal(errs[0]?.S, 'FATAL', `${c.name}: FATAL`);
    t.match(errs[0]?.M ?? '', /pgsplit is shutting down/, `${c.name}: says why`);
  }
  const drained = proc.logs.find((l) => l.msg === 'draining: no new clients, in-flight statements may finish');
  t.equal(drained?.sessions, 3, 'the drain saw the three sessions');
});
