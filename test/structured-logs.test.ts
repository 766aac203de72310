/**
 * Logs: JSON lines when stderr is not a terminal, a session id on every session line, routing decisions
 * at debug level, and never a password, a query text or a query parameter, at any level.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { startCluster } from './fixtures/proxy-fixture.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { prettyLine } from '../src/log/logger.js';

t.setTimeout(120_000);

t.test('prettyLine renders a pino line for a terminal', async (t) => {
  t.equal(prettyLine('{"level":40,"time":0,"app":"pgsplit","session":3,"node":"replica1","msg":"routed"}'), '00:00:00.000 WARN  routed  session=3 node=replica1\n');
  t.equal(prettyLine('not json'), 'not json', 'a line that is not JSON passes as is');
});

t.test('debug logs of real traffic: JSON, session ids, no secrets', async (t) => {
  const password = 'Pw-never-logged-7781';
  const cluster = await startCluster(t, { replicas: 1, users: [{ name: 'app', password, method: 'scram-sha-256' }] });
  const port = await claimFreePort();
  const child = spawn(process.execPath, [path.resolve('bin/pgsplit.js'), '--listen', `127.0.0.1:${port}`,
    '--primary', cluster.primary.url({ user: 'app', password }), '--replica', cluster.replicas[0]!.url({ user: 'app', password }), '--log-level', 'debug'],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PGSPLIT_LOG_FORMAT: '' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
  let c: pg.Client | undefined;
  for (let i = 0; i < 100 && !c; i++) {
    const x = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', options: '-c pgsplit.route=replica' });
    try {
      await x.connect();
      c = x;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  t.ok(c, 'connected through pgsplit');
  const secretParam = 'param-value-never-logged-5512';
  await c!.query('SELECT $1::text AS v, 4471 AS marker_literal', [secretParam]);
  await c!.query('CREATE TEMP TABLE IF NOT EXISTS x_never_logged (id int)');
  await c!.end();
  child.kill('SIGTERM');
  await exited;

  const lines = stderr.split('\n').filter((l) => l.length > 0);
  t.ok(lines.length >= 4, `pgsplit logged ${lines.length} lines`);
  const parsed = lines.map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return null;
    }
  });
  t.equal(parsed.filter((p) => p === null).length, 0, 'every line is JSON (stderr is not a terminal)');
  const routed = parsed.filter((p) => p?.msg === 'routed');
  t.ok(routed.length >= 2, 'routing decisions at debug level');
  t.ok(routed.every((p) => typeof p?.session === 'number' && typeof p?.node === 'string' && typeof p?.reason === 'string'), 'each with the session id, node and reason');
  for (const secret of [password, secretParam, 'marker_literal', 'x_never_logged']) {
    t.notOk(stderr.includes(secret), `the logs never contain ${secret}`);
  }
});

t.test('PGSPLIT_LOG_FORMAT=pretty: readable lines off a terminal too; a rejected client is logged with its address', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const port = await claimFreePort();
  const child = spawn(process.execPath, [path.resolve('bin/pgsplit.js'), '--listen', `127.0.0.1:${port}`, '--primary', cluster.primary.url()],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PGSPLIT_LOG_FORMAT: 'pretty' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
  for (let i = 0; i < 100 && !stderr.includes('pgsplit listening'); i++) await new Promise((r) => setTimeout(r, 100));
  // A client that is not speaking PostgreSQL: refused during startup.
  const { default: net } = await import('node:net');
  const local = await new Promise<number>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      const p = s.localPort ?? 0;
      s.end(Buffer.from('GET / HTTP/1.0\r\n\r\n'));
      s.resume();
      s.on('close', () => resolve(p));
    });
    s.on('error', reject);
  });
  for (let i = 0; i < 50 && !stderr.includes('client rejected during startup'); i++) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGTERM');
  await exited;
  const lines = stderr.split('\n').filter((l) => l.length > 0);
  t.ok(lines.length >= 2, `${lines.length} lines`);
  t.ok(lines.every((l) => /^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) /.test(l)), 'every line is in the pretty format, not JSON');
  const rejected = lines.find((l) => l.includes('client rejected during startup'));
  t.match(rejected, new RegExp(`client=127\\.0\\.0\\.1:${local}\\b`), `the rejection names the client address: ${rejected}`);
  t.match(rejected, /code=08P01/, 'and the SQLSTATE');
});
