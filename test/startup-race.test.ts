/**
 * Clients that connect while pgsplit is still starting (the port is open, the monitor's first checks
 * still run) wait for it instead of being refused: 20 starts in a row of the pgsplit command with TLS,
 * SCRAM and two replicas, each with a client connecting the moment the port opens, give 20 sessions. A
 * start that takes longer than limits.startup_timeout refuses with 57P03 "starting up" (never "shutting
 * down"), logged with the client's address.
 */
import t from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { startCluster } from './fixtures/proxy-fixture.js';
import { makeTestCerts } from './fixtures/test-certs.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { resolveConfig } from '../src/config/load-config.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { errorFields, fe } from './fixtures/raw-pg-client.js';

t.setTimeout(600_000);

type PgError = Error & { code?: string };

/**
 * Connects as soon as something listens on `port`: retries while the connection is refused (nothing
 * listens yet), and returns the outcome of the first attempt that reached a listener.
 */
async function connectWhenOpen(config: pg.ClientConfig, alive: () => boolean): Promise<{ client: pg.Client | null; error: PgError | null; attempts: number }> {
  for (let attempts = 1; ; attempts++) {
    const c = new pg.Client(config);
    c.on('error', () => undefined);
    try {
      await c.connect();
      return { client: c, error: null, attempts };
    } catch (e) {
      await c.end().catch(() => undefined);
      const err = e as PgError;
      if (err.code !== 'ECONNREFUSED') return { client: null, error: err, attempts };
      if (!alive()) throw new Error('pgsplit exited before its port opened');
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

t.test('20 starts of pgsplit (TLS, SCRAM, 2 replicas), a client connecting the moment the port opens: 20 sessions', async (t) => {
  const certs = await makeTestCerts(t);
  const cluster = await startCluster(t, { replicas: 2 });
  const password = 'race-Pw-4410';
  const port = await claimFreePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-race-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pgsplit.yaml');
  fs.writeFileSync(file, [
    `listen: 127.0.0.1:${port}`,
    `primary: ${cluster.primary.url()}`,
    'replicas:',
    ...cluster.replicas.map((r) => `  - ${r.url()}`),
    'users:',
    `  - { name: app, password: "${password}" }`,
    'auth: { method: scram-sha-256 }',
    `tls: { mode: require, cert: ${certs.serverCert}, key: ${certs.serverKey} }`,
    'log: { level: info }',
  ].join('\n') + '\n');

  const outcomes: string[] = [];
  for (let run = 1; run <= 20; run++) {
    const child = spawn(process.execPath, [path.resolve('bin/pgsplit.js'), '--config', file],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PGSPLIT_LOG_FORMAT: 'json' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
    const { client, error, attempts } = await connectWhenOpen({
      host: '127.0.0.1', port, user: 'app', password, database: 'postgres', options: '-c pgsplit.route=replica',
      ssl: { ca: fs.readFileSync(certs.caCert, 'utf8'), servername: 'localhost' }, connectionTimeoutMillis: 20_000,
    }, () => child.exitCode === null);
    if (client !== null) {
      const r = await client.query<{ one: number }>('SELECT 1 AS one').then((x) => x.rows[0]?.one, (e: Error) => e.message);
      outcomes.push(r === 1 ? 'ok' : `run ${run}: connected, then SELECT 1 gave ${String(r)}`);
      await client.end();
    } else {
      outcomes.push(`run ${run}: ${error?.code ?? '?'} ${error?.message ?? ''} (after ${attempts} attempts)`);
    }
    child.kill('SIGTERM');
    await exited;
    const started = stderr.split('\n').find((l) => l.includes('pgsplit listening'));
    t.ok(started, `run ${run}: pgsplit started (first connection after ${attempts} attempt(s))`);
  }
  t.same(outcomes.filter((o) => o !== 'ok'), [], '20 of 20 connections succeeded');
  t.equal(outcomes.length, 20);
});

/** A server that accepts TCP and never says a word: the monitor's first check of it lasts monitor.timeout. */
async function silentServer(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const held = new Set<net.Socket>();
  const server = net.createServer((s) => {
    held.add(s);
    s.on('error', () => undefined);
    s.on('close', () => held.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of held) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** A pgsplit in this process whose warm-up takes about `monitorTimeout` (a silent replica), logging into `lines`. */
async function slowStart(t: Parameters<typeof silentServer>[0], primaryUrl: string, limits: Record<string, string>, lines: Array<Record<string, unknown>>) {
  const silent = await silentServer(t);
  const port = await claimFreePort();
  const config = resolveConfig({
    listen: `127.0.0.1:${port}`,
    primary: primaryUrl,
    replicas: [`postgres://postgres@127.0.0.1:${silent}/postgres`],
    monitor: { timeout: '2s' },
    limits,
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const proxy = new ProxyServer(config, pino({ level: 'info' }, sink));
  t.teardown(() => proxy.close());
  const listening = proxy.listen();
  return { proxy, port, listening };
}

t.test('a start longer than limits.startup_timeout: 57P03 "starting up", logged with the client address', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const lines: Array<Record<string, unknown>> = [];
  const { proxy, port, listening } = await slowStart(t, cluster.primary.url(), { startup_timeout: '300ms' }, lines);
  const { error } = await connectWhenOpen({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' }, () => true);
  t.equal(proxy.state, 'starting', 'pgsplit was still starting when the client gave up');
  t.equal(error?.code, '57P03', `refused with 57P03: ${error?.message}`);
  t.match(error?.message ?? '', /starting up/, 'the message says pgsplit is starting up');
  t.match(error?.message ?? '', /limits\.startup_timeout/, 'and names the key');
  t.notMatch(error?.message ?? '', /shutting down/, 'never "shutting down"');
  const refused = lines.find((l) => l.msg === 'client rejected during startup');
  t.match(refused, { code: '57P03', user: 'postgres', client: /^127\.0\.0\.1:\d+$/ }, 'the refusal is logged with the client address');
  await listening;
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await c.connect();
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'once started, clients get in');
  await c.end();
});

t.test('a start within limits.startup_timeout: the early client waits and gets its session', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const lines: Array<Record<string, unknown>> = [];
  const { proxy, port, listening } = await slowStart(t, cluster.primary.url(), { startup_timeout: '20s' }, lines);
  let ready = false;
  void listening.then(() => (ready = true));
  const { client, error } = await connectWhenOpen({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' }, () => true);
  t.equal(error, null, 'no refusal');
  t.ok(ready, 'the session started only once pgsplit was ready');
  t.equal(proxy.state, 'listening');
  t.equal((await client!.query('SELECT 1 AS one')).rows[0].one, 1, 'the early client has a working session');
  await client!.end();
  t.notOk(lines.some((l) => l.msg === 'client rejected during startup'), 'nothing was refused');
});

t.test('pgsplit closed while a client waits for its start: that client hears "shutting down"', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const lines: Array<Record<string, unknown>> = [];
  const { proxy, port, listening } = await slowStart(t, cluster.primary.url(), { startup_timeout: '20s' }, lines);
  const listenOutcome = listening.then(() => 'ready', (e: Error) => e.message);
  // A raw client: it sees AuthenticationOk (the handshake is done, it now waits for the start), then what follows.
  let sock: net.Socket | null = null;
  while (sock === null) {
    sock = await new Promise<net.Socket | null>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(null));
    });
    if (sock === null) await new Promise((r) => setTimeout(r, 1));
  }
  const socket = sock;
  let got = Buffer.alloc(0);
  const authOk = new Promise<void>((resolve) => socket.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
    if (got.length >= 9 && got[0] === 0x52) resolve();
  }));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(fe.startup({ user: 'postgres', database: 'postgres' }));
  await authOk;
  t.equal(proxy.state, 'starting', 'the client is through its handshake while pgsplit is still starting');
  await proxy.close();
  await closed;
  const rest = got.subarray(9);
  t.equal(String.fromCharCode(rest[0] ?? 0), 'E', 'then an ErrorResponse');
  const fields = errorFields(rest.subarray(5, 1 + rest.readInt32BE(1)));
  t.equal(fields.C, '57P01', `57P01: ${fields.M}`);
  t.match(fields.M, /shutting down/);
  t.equal(await listenOutcome, 'terminating connection because pgsplit is shutting down', 'listen() reports that it was closed before it was ready');
});
