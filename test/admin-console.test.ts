/**
 * The admin console (psql -d pgsplit): SHOW NODES reports a replica whose replay the cluster kit paused
 * as lagging, SHOW CLIENTS / SERVERS / STATS / CONFIG / VERSION / HELP describe the running proxy,
 * DISABLE / ENABLE take a replica out of rotation by hand, and only admin users get in.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(180_000);
const run = promisify(execFile);

async function psql(port: number, sql: string, user = 'postgres', password?: string): Promise<string[][]> {
  const bin = (await run('pg_config', ['--bindir'])).stdout.trim();
  const { stdout } = await run(path.join(bin, 'psql'), ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', 'pgsplit', '-At', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { env: { ...process.env, PGPASSWORD: password ?? '', PGCONNECT_TIMEOUT: '10' } });
  return stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
}

t.test('SHOW commands, a paused replica shown lagging, DISABLE / ENABLE', async (t) => {
  const fx = await startProxy(t, { replicas: 2, config: { monitor: { interval: '50ms' } } });
  await fx.cluster.primary.query('CREATE TABLE admin_ticks (id serial primary key, at timestamptz default now())');
  await fx.cluster.waitForReplication();
  const tagged = await fx.client({ options: '-c pgsplit.route=replica' });
  await tagged.query('SELECT 1');

  const help = await psql(fx.port, 'SHOW HELP');
  t.ok(help.some((r) => r[0] === 'SHOW NODES'), 'SHOW HELP lists the commands');
  t.match((await psql(fx.port, 'SHOW VERSION'))[0]?.[0], /^pgsplit \d+\.\d+\.\d+/);

  // Pause replica1's replay while the primary keeps writing: its lag must show.
  const replica1 = fx.cluster.replicas[0]!;
  await replica1.pauseReplay();
  t.teardown(() => replica1.resumeReplay().catch(() => undefined));
  const writer = await fx.client();
  const until = Date.now() + 1500;
  while (Date.now() < until) {
    await writer.query('INSERT INTO admin_ticks DEFAULT VALUES');
    await new Promise((r) => setTimeout(r, 20));
  }
  const nodes = await psql(fx.port, 'SHOW NODES');
  t.comment(nodes.map((r) => r.join(' ')).join('\n'));
  const byName = new Map(nodes.map((r) => [r[0], r]));
  t.same(nodes.map((r) => r[0]), ['primary', 'replica1', 'replica2'], 'one row per server');
  t.equal(byName.get('primary')?.[1], 'primary');
  t.equal(byName.get('replica1')?.[2], 'up', 'replica1 is up (paused replay is not a failure)');
  t.ok(Number(byName.get('replica1')?.[3]) >= 1, `replica1 shown lagging: ${byName.get('replica1')?.[3]} s`);
  t.ok(Number(byName.get('replica1')?.[4]) > 0, 'with WAL bytes behind');
  t.ok(Number(byName.get('replica2')?.[3]) < 1, `replica2 current: ${byName.get('replica2')?.[3]} s`);
  await replica1.resumeReplay();

  const clients = await psql(fx.port, 'SHOW CLIENTS');
  t.ok(clients.some((r) => r[0] === 'C' && r[2] === 'postgres' && r[7] === 't'), 'SHOW CLIENTS lists the tagged session');
  const servers = await psql(fx.port, 'SHOW SERVERS');
  t.ok(servers.some((r) => r[0] === 'S' && r[1]?.startsWith('replica')), 'SHOW SERVERS lists its replica connection');
  const stats = await psql(fx.port, 'SHOW STATS');
  t.ok(Number(stats.find((r) => r[0] === 'primary')?.[1]) >= 1, 'SHOW STATS counts statements on the primary');
  const config = await psql(fx.port, 'SHOW CONFIG');
  t.ok(config.some((r) => r[0] === 'routing.max_lag' && r[1] === '1000ms'), 'SHOW CONFIG shows the configuration in force');

  t.same(await psql(fx.port, 'DISABLE replica1'), [['DISABLE']], 'DISABLE replica1');
  t.equal(new Map((await psql(fx.port, 'SHOW NODES')).map((r) => [r[0], r[2]])).get('replica1'), 'disabled');
  const before = fx.proxy.stats.routedByNode.get('replica1') ?? 0;
  let onReplica = 0;
  for (let i = 0; i < 10; i++) {
    const c = await fx.client({ options: '-c pgsplit.route=replica' });
    if ((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r === true) onReplica++;
    await c.end();
  }
  t.ok(onReplica > 0, `tagged reads still reach a replica (${onReplica} of 10; replica2)`);
  t.equal(fx.proxy.stats.routedByNode.get('replica1') ?? 0, before, 'no read reached the disabled replica');
  await psql(fx.port, 'ENABLE replica1');
  t.notOk((await psql(fx.port, 'SHOW NODES')).some((r) => r[2] === 'disabled'), 'ENABLE puts it back');

  await t.rejects(psql(fx.port, 'DISABLE primary'), /only replicas can be disabled/);
  await t.rejects(psql(fx.port, 'DISABLE nosuch'), /no replica named "nosuch"/);
  await t.rejects(psql(fx.port, 'DROP TABLE admin_ticks'), /does not know/);
  const still = await fx.cluster.primary.query<{ present: boolean }>("SELECT to_regclass('admin_ticks') IS NOT NULL AS present");
  t.equal(still[0]?.present, true, 'the refused DROP TABLE never reached a server');
});

t.test('PAUSE holds new work (a transaction under way goes on), RESUME lets it go', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const inTx = await fx.client();
  await inTx.query('BEGIN');
  await inTx.query('SELECT 1');
  const other = await fx.client();
  t.same(await psql(fx.port, 'PAUSE'), [['PAUSE']]);
  let done = false;
  const waiting = other.query('SELECT 42 AS answer').then((r) => {
    done = true;
    return r;
  });
  t.equal((await inTx.query('SELECT 2 AS two')).rows[0].two, 2, 'the open transaction goes on');
  await inTx.query('COMMIT');
  await new Promise((r) => setTimeout(r, 500));
  t.notOk(done, 'a new statement outside a transaction waits while paused');
  t.same(await psql(fx.port, 'RESUME'), [['RESUME']]);
  t.equal((await waiting).rows[0].answer, 42, 'RESUME lets it run');
});

t.test('only admin users open the console when users are configured', async (t) => {
  const fx = await startProxy(t, {
    replicas: 1,
    config: { users: [{ name: 'ops', password: 'ops-pw' }, { name: 'app', password: 'app-pw' }], admin: { users: ['ops'] } },
  });
  t.match((await psql(fx.port, 'SHOW VERSION', 'ops', 'ops-pw'))[0]?.[0], /^pgsplit /, 'an admin user gets in');
  const config = (await psql(fx.port, 'SHOW CONFIG', 'ops', 'ops-pw')).map((r) => r.join('=')).join('\n');
  t.match(config, /users=ops,app/, 'SHOW CONFIG lists the users');
  t.notMatch(config, /ops-pw|app-pw/, 'but none of their passwords');
  await t.rejects(psql(fx.port, 'SHOW VERSION', 'app', 'app-pw'), /may not open the pgsplit admin console; list the user in admin.users/, 'another user is refused');
  await t.rejects(psql(fx.port, 'SHOW VERSION', 'ops', 'wrong'), /password authentication failed/, 'a wrong password is refused');
  const app = new pg.Client({ host: '127.0.0.1', port: fx.port, user: 'app', password: 'app-pw', database: 'postgres' });
  await app.connect();
  t.equal((await app.query('SELECT 1 AS one')).rows[0].one, 1, 'that user still reaches the servers');
  await app.end();
});

/** A pg.Client on the admin console: simple queries, so node-postgres parses each column by its declared type. */
async function consoleClient(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'pgsplit' });
  await c.connect();
  return c;
}

t.test('typed columns; SHOW CLIENTS with application_name, tag and times; SHOW SERVERS with the backend pid; KILL', async (t) => {
  const fx = await startProxy(t, { replicas: 1 });
  const before = Date.now();
  const tagged = await fx.client({ options: '-c pgsplit.route=replica', applicationName: 'console-probe' });
  // pool.mode transaction: a session holds a server connection while a transaction is open (or a statement runs).
  await tagged.query('BEGIN');
  const pid = (await tagged.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
  const admin = await consoleClient(fx.port);
  t.teardown(() => admin.end());

  const clients = await admin.query('SHOW CLIENTS');
  const types = Object.fromEntries(clients.fields.map((f) => [f.name, f.dataTypeID]));
  t.match(types, { id: 20, port: 23, tagged: 16, connect_time: 1184, last_activity: 1184, application_name: 25, tag: 25, addr: 25 },
    'SHOW CLIENTS: int8 id, int4 port, bool tagged, timestamptz times');
  const mine = clients.rows.find((r: Record<string, unknown>) => r.application_name === 'console-probe') as Record<string, unknown> | undefined;
  t.ok(mine, 'the session is listed with its application_name');
  t.equal(mine?.tag, 'startup-option', 'and why it is tagged');
  t.equal(mine?.tagged, true);
  t.equal(mine?.addr, '127.0.0.1');
  t.equal(mine?.port, (tagged as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort, "the port is the client's own");
  const connectedAt = mine?.connect_time as Date;
  const lastActive = mine?.last_activity as Date;
  t.ok(connectedAt instanceof Date && lastActive instanceof Date, 'times arrive as timestamps');
  t.ok(connectedAt.getTime() >= before - 1000 && connectedAt.getTime() <= Date.now(), `connect_time ${connectedAt.toISOString()} is when it connected`);
  t.ok(lastActive.getTime() >= connectedAt.getTime(), 'last_activity is not before connect_time');

  const servers = await admin.query('SHOW SERVERS');
  t.match(Object.fromEntries(servers.fields.map((f) => [f.name, f.dataTypeID])), { client: 20, backend_pid: 23 }, 'SHOW SERVERS: int8 client, int4 backend_pid');
  const link = servers.rows.find((r: Record<string, unknown>) => String(r.client) === String(mine?.id));
  t.equal(link?.backend_pid, pid, 'backend_pid is the pid the server reports for that session (pg_stat_activity.pid)');
  t.equal(link?.node, 'replica1');

  const nodes = await admin.query('SHOW NODES');
  t.match(Object.fromEntries(nodes.fields.map((f) => [f.name, f.dataTypeID])), { lag_seconds: 701, lag_bytes: 20, in_flight: 20, connections: 20 }, 'SHOW NODES: numbers typed');
  const stats = await admin.query('SHOW STATS');
  t.match(Object.fromEntries(stats.fields.map((f) => [f.name, f.dataTypeID])), { total_query_count: 20, total_query_time: 20, avg_query_time: 20 }, 'SHOW STATS: int8 counts');
  t.ok((await admin.query('SHOW HELP')).rows.some((r: Record<string, unknown>) => String(r.command).startsWith('KILL')), 'SHOW HELP lists KILL');

  // KILL: that client gets FATAL 57P01 and its session is gone; others are untouched.
  const other = await fx.client();
  const fatal = new Promise<Error & { code?: string }>((resolve) => tagged.once('error', resolve));
  t.equal((await admin.query(`KILL ${String(mine?.id)}`)).command, 'KILL');
  const err = await fatal;
  t.equal(err.code, '57P01', `the killed client hears 57P01: ${err.message}`);
  t.match(err.message, /administrator command: KILL/);
  const after = await admin.query('SHOW CLIENTS');
  t.notOk(after.rows.some((r: Record<string, unknown>) => String(r.id) === String(mine?.id)), 'it is gone from SHOW CLIENTS');
  t.equal((await other.query('SELECT 1 AS one')).rows[0].one, 1, 'another session goes on');
  await t.rejects(admin.query('KILL 999999'), { message: /no client with id 999999/, code: '42704' });
  await t.rejects(admin.query('KILL everyone'), { message: /KILL takes a client id/ });
});

t.test('check-config refuses admin.users naming a user not in users:', async (t) => {
  const { resolveConfig } = await import('../src/config/load-config.js');
  const base = { primary: 'postgres://u@db:5432/app' };
  t.throws(() => resolveConfig({ ...base, users: [{ name: 'app', password: 'x' }], admin: { users: ['app', 'opz'] } }),
    /config admin\.users\[1\]: names "opz", who is not in users:/, 'a name that is not a user');
  t.throws(() => resolveConfig({ ...base, admin: { users: ['ops'] } }), /config admin\.users\[0\]: names "ops", but no users: are configured/, 'admin users without users:');
  t.same(resolveConfig({ ...base, users: [{ name: 'ops', password: 'x' }], admin: { users: ['ops'] } }).admin.users, ['ops'], 'a configured user is accepted');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-admin-users-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pgsplit.yaml');
  fs.writeFileSync(file, 'primary: postgres://u@db:5432/app\nusers: [{name: app, password: x}]\nadmin: {users: [ops]}\n');
  const out = await run(process.execPath, [path.resolve('bin/pgsplit.js'), 'check-config', file]).then(() => null, (e: { code?: number; stderr?: string }) => e);
  t.equal(out?.code, 2, 'pgsplit check-config exits 2');
  t.match(out?.stderr, /admin\.users\[0\]: names "ops", who is not in users:/, 'and says why');
});
