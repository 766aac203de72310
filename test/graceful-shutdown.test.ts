/**
 * Shutdown of the pgsplit process: SIGTERM stops accepting, lets a statement already running finish (its
 * client gets the answer), closes idle sessions at once with FATAL 57P01, and exits 0; SIGINT does the
 * same without waiting (the running statement's client gets 57P01 at once).
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { startCluster } from './fixtures/proxy-fixture.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { spawnPgsplit, type PgsplitProcess } from './fixtures/pgsplit-process.js';

t.setTimeout(120_000);
const run = promisify(execFile);

async function startPgsplit(t: { teardown(fn: () => unknown): void }, primaryUrl: string): Promise<PgsplitProcess> {
  const port = await claimFreePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-shutdown-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'pgsplit.yaml');
  fs.writeFileSync(config, 'limits: { shutdown_grace: 10s }\n');
  return spawnPgsplit(t, ['--config', config, '--listen', `127.0.0.1:${port}`, '--primary', primaryUrl, '--log-level', 'warn'], port);
}

async function connect(port: number): Promise<{ client: pg.Client; fatal: Promise<{ code?: string; message: string }> }> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  const fatal = new Promise<{ code?: string; message: string }>((resolve) => client.on('error', (e: Error & { code?: string }) => resolve({ code: e.code, message: e.message })));
  await client.connect();
  return { client, fatal };
}

t.test('SIGTERM: the running statement finishes, idle sessions get 57P01, exit 0', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const { child, port, exited } = await startPgsplit(t, cluster.primary.url());
  const busy = await connect(port);
  const idle = await connect(port);
  await idle.client.query('SELECT 1');
  const started = Date.now();
  // A large answer: the drain must let the client take all of it before the socket goes.
  const running = busy.client.query("SELECT pg_sleep(1.5), 42 AS answer, repeat('x', 8000000) AS big");
  await new Promise((r) => setTimeout(r, 300));
  child.kill('SIGTERM');

  const idleErr = await idle.fatal;
  t.equal(idleErr.code, '57P01', 'the idle session is closed with 57P01');
  t.match(idleErr.message, /pgsplit is shutting down/);
  t.ok(Date.now() - started < 1450, 'at once, not after the running statement (1.5 s)');

  const refused = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
  await t.rejects(refused.connect(), 'no new connections are accepted');

  const r = await running;
  t.equal(r.rows[0]?.answer, 42, 'the statement already running finished and its answer arrived');
  t.equal(String(r.rows[0]?.big).length, 8_000_000, 'all 8 MB of it');
  t.ok(Date.now() - started >= 1400, 'after its full 1.5 s');
  const busyErr = await busy.fatal;
  t.equal(busyErr.code, '57P01', 'then that session is closed with 57P01 too');
  t.equal(await exited, 0, 'pgsplit exits 0');
  t.ok(Date.now() - started < 5000, 'without waiting for the whole grace period');
});

t.test('SIGINT: closes at once, exit 0', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const { child, port, exited } = await startPgsplit(t, cluster.primary.url());
  const busy = await connect(port);
  const running = busy.client.query('SELECT pg_sleep(5)').then(() => null, (e: Error & { code?: string }) => e);
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  child.kill('SIGINT');
  const err = await running;
  t.equal(err?.code, '57P01', 'the running statement does not complete: its client gets 57P01');
  await busy.fatal;
  t.equal(await exited, 0, 'pgsplit exits 0');
  t.ok(Date.now() - started < 4000, 'before the statement would have ended (5 s)');
  // The server-side statement was stopped too (the connection was dropped, the backend cancelled).
  let left = 1;
  for (let i = 0; i < 40 && left > 0; i++) {
    const rows = await cluster.primary.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'");
    left = Number(rows[0]?.n);
    if (left > 0) await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(left, 0, 'no pg_sleep left running on the server');
  t.ok(Date.now() - started < 4500, 'and it stopped before its 5 s were up');
});

t.test('SIGTERM during COPY FROM STDIN: the data still sent goes through and the COPY completes', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  await cluster.primary.query('CREATE TABLE copy_drain (n int)');
  const px = await startPgsplit(t, cluster.primary.url());
  const bin = path.join((await run('pg_config', ['--bindir'])).stdout.trim(), 'psql');
  const psql = spawn(bin, ['-X', '-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', '-d', 'postgres', '-c', '\\copy copy_drain from stdin'],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  let out = '';
  psql.stdout.on('data', (d: Buffer) => (out += d.toString()));
  psql.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number | null>((resolve) => psql.once('exit', (code) => resolve(code)));
  for (let i = 0; i < 500; i++) psql.stdin.write(`${i}\n`);
  // Wait until the COPY is running on the server, then stop pgsplit while more rows are still to come.
  for (let i = 0; i < 100; i++) {
    const rows = await cluster.primary.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'COPY%' AND state = 'active'");
    if (Number(rows[0]?.n) > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  px.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 500; i < 1000; i++) psql.stdin.write(`${i}\n`);
  psql.stdin.end();
  t.equal(await done, 0, `psql finished the COPY: ${out.trim()}`);
  t.match(out, /COPY 1000/, 'all 1000 rows');
  const rows = await cluster.primary.query<{ n: string }>('SELECT count(*) AS n FROM copy_drain');
  t.equal(Number(rows[0]?.n), 1000, 'and they are on the primary');
  t.equal(await px.exited, 0, 'pgsplit then exits 0');
});
