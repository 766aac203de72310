/**
 * Config lifecycle of the pgsplit process: SIGHUP (and the admin console's RELOAD) re-reads --config.
 * A replica added gets reads, a replica removed drains (a statement and a transaction already on it
 * finish there, idle sessions move on at once) and then leaves SHOW NODES, while the same client
 * sessions stay open throughout; an invalid file is refused with its reason and the running
 * configuration stays; routing and limits changed by a reload apply to the next statement or connection.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startCluster } from './fixtures/proxy-fixture.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { spawnPgsplit } from './fixtures/pgsplit-process.js';

t.setTimeout(240_000);
const run = promisify(execFile);
const bin = path.resolve('bin/pgsplit.js');

async function psqlBin(): Promise<string> {
  return path.join((await run('pg_config', ['--bindir'])).stdout.trim(), 'psql');
}

/** Runs an admin console command with psql; rows split on |, and what psql wrote to stderr (NOTICEs, errors). */
async function admin(port: number, sql: string): Promise<{ rows: string[][]; stderr: string; ok: boolean }> {
  try {
    const { stdout, stderr } = await run(await psqlBin(), ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'pgsplit', '-At', '-F', '|',
      '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-c', sql], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
    return { rows: stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('|')), stderr, ok: true };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { rows: [], stderr: err.stderr ?? String(e), ok: false };
  }
}

async function nodes(port: number): Promise<Map<string, string[]>> {
  return new Map((await admin(port, 'SHOW NODES')).rows.map((r) => [r[0] as string, r]));
}

async function config(port: number): Promise<Map<string, string>> {
  return new Map((await admin(port, 'SHOW CONFIG')).rows.map((r) => [r[0] as string, r[1] ?? '']));
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function tagged(port: number, applicationName?: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', application_name: applicationName,
    options: applicationName === undefined ? '-c pgsplit.route=replica' : undefined });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const serverPort = async (c: pg.Client, sql = 'SELECT inet_server_port() AS port'): Promise<number> => Number((await c.query<{ port: number }>(sql)).rows[0]?.port);

t.test('SIGHUP adds and removes replicas under open sessions; invalid files are refused; RELOAD', async (t) => {
  const cluster = await startCluster(t, { replicas: 2 });
  const [r1, r2] = cluster.replicas as [typeof cluster.replicas[0], typeof cluster.replicas[0]];
  const port = await claimFreePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-reload-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pgsplit.yaml');
  // A generous read_your_writes_timeout: a session moving to another replica raises its floor first and
  // waits for that replica to replay it; on a loaded machine 200 ms could send the read to the primary.
  const write = (replicas: Array<{ name: string; url: string }>, routing = '', extra = ''): void => {
    fs.writeFileSync(file, [
      `listen: 127.0.0.1:${port}`,
      `primary: ${cluster.primary.url()}`,
      'replicas:',
      ...replicas.map((r) => `  - { name: ${r.name}, url: "${r.url}" }`),
      'monitor: { interval: 50ms }',
      `routing: { read_your_writes_timeout: 5s${routing ? `, ${routing}` : ''} }`,
      extra,
    ].join('\n') + '\n');
  };
  write([{ name: 'east', url: r1.url() }]);
  const px = await spawnPgsplit(t, ['--config', file], port);

  const before = await nodes(port);
  t.same([...before.keys()], ['primary', 'east'], 'at start: the primary and east');

  // Three tagged sessions on east: one idle, one inside a transaction, one running a statement.
  const idle = await tagged(port);
  const inTx = await tagged(port);
  const running = await tagged(port);
  t.teardown(() => Promise.all([idle, inTx, running].map((c) => c.end().catch(() => undefined))));
  t.equal(await serverPort(idle), r1.port, 'the idle session reads on east');
  await inTx.query('BEGIN READ ONLY');
  t.equal(await serverPort(inTx), r1.port, 'the transaction runs on east');
  // Long enough to outlast the reload and the checks below on a loaded machine (1.5 s did not, once).
  const slow = serverPort(running, 'SELECT inet_server_port() AS port, pg_sleep(5)').catch((e: Error) => e);
  await until('the slow statement running on east', async () => (await nodes(port)).get('east')?.[5] === '1');

  // Reload: east removed, west added, a routing bound changed.
  write([{ name: 'west', url: r2.url() }], 'max_lag: 5s');
  px.child.kill('SIGHUP');
  await until('west up', async () => (await nodes(port)).get('west')?.[2] === 'up');
  const during = await nodes(port);
  t.equal(during.get('east')?.[2], 'draining', 'east is shown draining while sessions still use it');
  const reloaded = px.logs.find((l) => l.msg === 'configuration reloaded');
  t.ok(reloaded, 'the reload is logged');
  t.same(reloaded?.added, ['west'], 'logged: west added');
  t.same(reloaded?.removed, ['east'], 'logged: east removed');
  t.match(reloaded?.changed, ['routing.max_lag', 'replicas'], 'logged: the changed keys');
  t.equal((await config(port)).get('routing.max_lag'), '5000ms', 'SHOW CONFIG shows the new routing.max_lag');

  t.equal(await serverPort(idle), r2.port, 'the idle session, still open, now reads on west');
  t.equal((await nodes(port)).get('east')?.[5], '1', 'the slow statement was still running on east after the reload');
  t.equal(await slow, r1.port, 'the statement running on east during the reload finished there, no error');
  t.equal(await serverPort(inTx), r1.port, 'the open transaction stays on east');
  t.equal((await nodes(port)).get('east')?.[2], 'draining', 'east still draining: a transaction holds it');
  await inTx.query('COMMIT');
  t.equal(await serverPort(inTx), r2.port, 'after COMMIT that session reads on west');
  t.equal(await serverPort(running), r2.port, 'and so does the one whose statement finished on east');
  await until('east gone from SHOW NODES', async () => !(await nodes(port)).has('east'));
  t.same([...(await nodes(port)).keys()], ['primary', 'west'], 'east drained and left the list');
  t.ok(px.logs.some((l) => l.msg === 'removed replica drained: no session uses it any more' && l.node === 'east'), 'the drain is logged');
  const onEast = async (): Promise<number> => Number((await r1.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"))[0]?.n);
  // A backend ends a moment after its connection closes.
  await until('east backends gone', async () => (await onEast()) === 0, 5000).catch(() => undefined);
  t.equal(await onEast(), 0, 'east has no connection from pgsplit left (sessions and monitor let go)');

  // The same name, another server: the old west drains, the new west (east's server) takes over.
  write([{ name: 'west', url: r1.url() }], 'max_lag: 5s');
  px.child.kill('SIGHUP');
  await until('west replaced', async () => {
    const w = (await admin(port, 'SHOW NODES')).rows.filter((row) => row[0] === 'west');
    return w.length === 1 && w[0]?.[2] === 'up' && (await serverPort(idle)) === r1.port;
  });
  t.pass('a replica replaced under the same name: the session reads on the new server, the old one drained');

  // An invalid file: refused with the reason, the configuration in force stays.
  write([{ name: 'west', url: r1.url() }], 'max_lag: banana');
  const logged = px.logs.length;
  px.child.kill('SIGHUP');
  await until('the refusal logged', async () => px.logs.slice(logged).some((l) => l.msg === 'reload refused: the configuration in force is unchanged'));
  const refusal = px.logs.slice(logged).find((l) => l.msg === 'reload refused: the configuration in force is unchanged');
  t.match(String(refusal?.reason), /routing\.max_lag.*banana/, `the log says why: ${String(refusal?.reason)}`);
  t.equal((await config(port)).get('routing.max_lag'), '5000ms', 'routing.max_lag unchanged');
  t.same([...(await nodes(port)).keys()], ['primary', 'west'], 'replicas unchanged');
  t.equal(await serverPort(idle), r1.port, 'sessions go on as before');

  const viaAdmin = await admin(port, 'RELOAD');
  t.notOk(viaAdmin.ok, 'RELOAD of the invalid file fails');
  t.match(viaAdmin.stderr, /F0000/, 'with SQLSTATE F0000 (config_file_error)');
  t.match(viaAdmin.stderr, /reload refused: config routing\.max_lag/, 'naming the key');
  t.match(viaAdmin.stderr, /configuration in force is unchanged/, 'and saying nothing changed');

  const check = await run(process.execPath, [bin, 'check-config', file]).then(() => null, (e: { code?: number; stderr?: string }) => e);
  t.equal(check?.code, 2, 'check-config rejects the same file (exit 2)');
  t.match(check?.stderr, /routing\.max_lag/, 'and names the key');

  // RELOAD of a fixed file: east back, routing by application_name and a connection limit changed.
  write([{ name: 'west', url: r1.url() }, { name: 'east', url: r2.url() }],
    'max_lag: 5s, application_names: ["audit-*"]', 'limits: { max_client_connections: 6 }\nlog: { level: warn }');
  const ok = await admin(port, 'RELOAD');
  // The reload's own line is the last one at the old level; everything before it has arrived once it has.
  await until('the third reload logged', async () => px.logs.filter((l) => l.msg === 'configuration reloaded').length === 3);
  const afterLevel = px.logs.length;
  t.ok(ok.ok, 'RELOAD of a valid file succeeds');
  t.match(ok.stderr, /replicas added: east/, `RELOAD says what it did: ${ok.stderr.trim().replace(/\n/g, ' | ')}`);
  t.match(ok.stderr, /routing\.application_names/, 'including the changed keys');
  await until('east up again', async () => (await nodes(port)).get('east')?.[2] === 'up');
  const audit = await tagged(port, 'audit-7');
  t.teardown(() => audit.end().catch(() => undefined));
  const auditPort = await serverPort(audit);
  t.ok(auditPort === r1.port || auditPort === r2.port, 'a new session matching the new routing.application_names reads on a replica');
  const cfg = await config(port);
  t.equal(cfg.get('limits.max_client_connections'), '6');
  t.equal(cfg.get('log.level'), 'warn');
  // Open now: idle, inTx, running, audit (4); two more fit, then 53300. An admin psql connection that has
  // not quite closed yet counts too, so a refusal on the way to six is retried.
  const extra: pg.Client[] = [];
  t.teardown(() => Promise.all(extra.map((c) => c.end().catch(() => undefined))));
  await until('six sessions open', async () => {
    const c = await tagged(port).catch(() => null);
    if (c) extra.push(c);
    return extra.length === 2;
  });
  const refused = await tagged(port).then(() => null, (e: Error & { code?: string }) => e);
  t.equal(refused?.code, '53300', 'the new limits.max_client_connections applies to the next connection');
  t.notOk(px.logs.slice(afterLevel).some((l) => l.level === 30), 'log.level warn is in force: no info lines after the reload (admin logins are info)');

  t.equal(await serverPort(idle) > 0, true, 'the first session is still open after three reloads');
  px.child.kill('SIGTERM');
  t.equal(await px.exited, 0, 'pgsplit exits 0');
});
