/**
 * End-to-end check of the local cluster kit against real PostgreSQL servers: replication, replay
 * pause, freezing, restarts, password authentication, and that stop() leaves nothing behind.
 */
import fs from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import t from 'tap';
import { LocalCluster } from '../src/cluster/local-cluster.js';

const users = [
  // Quotes and backslashes in names and passwords exercise the SQL escaping.
  { name: 'md5 user', password: "md5 pa'ss\\word", method: 'md5' as const },
  { name: "scram'user", password: 'scr"am pass', method: 'scram-sha-256' as const },
];

function portAcceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function connectAndQuery(config: pg.ClientConfig, sql = 'SELECT current_user AS who'): Promise<Record<string, unknown>[]> {
  const client = new pg.Client(config);
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await client.end().catch(() => {});
  }
}

function processState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  const state = processState(pid);
  // A zombie has exited; it only waits for init to collect its exit status.
  return state !== undefined && state !== 'Z';
}

const startedAt = Date.now();
const cluster = await LocalCluster.start({ replicas: 2, users, log: (msg) => t.comment(msg) });
t.comment(`LocalCluster.start took ${Date.now() - startedAt} ms`);
t.teardown(() => cluster.stop());

const { primary } = cluster;
const [replica1, replica2] = cluster.replicas;
if (!replica1 || !replica2) throw new Error('expected two replicas');

t.test('topology', async (t) => {
  t.equal(cluster.superuser, 'postgres');
  t.same(cluster.nodes.map((n) => n.name), ['primary', 'replica1', 'replica2']);
  t.same(cluster.nodes.map((n) => n.role), ['primary', 'replica', 'replica']);
  t.equal(new Set(cluster.nodes.map((n) => n.port)).size, 3, 'every node has its own port');
  t.ok(cluster.nodes.every((n) => n.running && !n.frozen), 'all running, none frozen');
  t.equal(fs.statSync(primary.dataDir).mode & 0o777, 0o700, 'data dir is private');
  t.match(primary.url(), /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
  t.equal(primary.pids()[0], Number(fs.readFileSync(`${primary.dataDir}/postmaster.pid`, 'utf8').split('\n')[0]), 'postmaster first');
  t.ok(primary.pids().length > 1, 'pids() includes the auxiliary processes');

  const [p] = await primary.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  t.equal(p?.r, false, 'primary is not in recovery');
  for (const replica of cluster.replicas) {
    const [r] = await replica.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    t.equal(r?.r, true, `${replica.name} is in recovery`);
  }
  const streaming = await primary.query<{ application_name: string }>(
    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1",
  );
  t.same(streaming.map((r) => r.application_name), ['replica1', 'replica2']);
});

t.test('rows written on the primary reach both replicas', async (t) => {
  await primary.query('CREATE TABLE kit (id int PRIMARY KEY, note text)');
  await primary.query('INSERT INTO kit VALUES ($1, $2)', [1, 'one']);
  await cluster.waitForReplication();
  for (const replica of cluster.replicas) {
    t.same(await replica.query('SELECT id, note FROM kit'), [{ id: 1, note: 'one' }], replica.name);
  }
});

t.test('paused replay hides new rows until resumed', async (t) => {
  await replica1.pauseReplay();
  t.ok(replica1.replayPaused);
  const [state] = await replica1.query<{ s: string }>('SELECT pg_get_wal_replay_pause_state() AS s');
  t.equal(state?.s, 'paused');

  await primary.query("INSERT INTO kit VALUES (2, 'two')");
  await cluster.waitForReplication();
  t.same(await replica2.query('SELECT id FROM kit WHERE id = 2'), [{ id: 2 }], 'replica2 sees the row');
  t.same(await replica1.query('SELECT id FROM kit WHERE id = 2'), [], 'paused replica1 does not');

  await replica1.resumeReplay();
  t.notOk(replica1.replayPaused);
  await cluster.waitForReplication();
  t.same(await replica1.query('SELECT id FROM kit WHERE id = 2'), [{ id: 2 }], 'replica1 sees it after resume');
});

t.test('a frozen replica accepts no sessions until thawed', async (t) => {
  const config = { host: replica2.host, port: replica2.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 };
  await replica2.freeze();
  t.ok(replica2.frozen);
  const pids = replica2.pids();
  t.ok(pids.length > 1, 'replica2 has child processes');
  // A backend that was ending as the freeze came (the previous test's connection) stays a zombie ('Z')
  // until the stopped postmaster reaps it: dead, so it runs nothing either.
  const states = pids.map((pid) => `${pid}:${processState(pid) ?? 'gone'}`);
  t.ok(states.every((s) => s.endsWith(':T') || s.endsWith(':Z')), `every server process is stopped or dead (${states.join(' ')})`);
  await t.rejects(connectAndQuery(config), 'connect times out');

  await replica2.thaw();
  t.notOk(replica2.frozen);
  t.ok(pids.every((pid) => processState(pid) !== 'T'), 'every server process resumed');
  t.same(await connectAndQuery({ ...config, connectionTimeoutMillis: 10_000 }, 'SELECT 1 AS one'), [{ one: 1 }]);
});

t.test('a replica can be stopped and started again', async (t) => {
  const port = replica2.port;
  await replica2.stop();
  t.notOk(replica2.running);
  t.same(replica2.pids(), []);
  t.notOk(await portAcceptsConnections(port), 'port closed while stopped');
  await cluster.waitForReplication(); // skips the stopped replica

  await replica2.start();
  t.ok(replica2.running);
  t.equal(replica2.port, port, 'same port after restart');
  await primary.query("INSERT INTO kit VALUES (3, 'three')");
  await cluster.waitForReplication(20_000);
  t.same(await replica2.query('SELECT id FROM kit ORDER BY id'), [{ id: 1 }, { id: 2 }, { id: 3 }]);
});

t.test('password users authenticate with their method', async (t) => {
  const stored = await primary.query<{ rolname: string; rolpassword: string }>(
    'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1) ORDER BY rolname',
    [users.map((u) => u.name)],
  );
  t.match(stored.find((r) => r.rolname === 'md5 user')?.rolpassword, /^md5/, 'md5 user stored as md5');
  t.match(stored.find((r) => r.rolname === "scram'user")?.rolpassword, /^SCRAM-SHA-256\$/, 'scram user stored as SCRAM');

  for (const user of users) {
    for (const node of [primary, replica1]) {
      const rows = await connectAndQuery({ connectionString: node.url({ user: user.name, password: user.password }) });
      t.same(rows, [{ who: user.name }], `${user.name} logs in to ${node.name} via url()`);
      const err = await connectAndQuery({ host: node.host, port: node.port, user: user.name, password: 'wrong', database: 'postgres' }).then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      t.equal(err?.code, '28P01', `${user.name} with a wrong password is rejected on ${node.name}`);
    }
  }
});

t.test('stop removes everything', async (t) => {
  const ports = cluster.nodes.map((n) => n.port);
  const pids = cluster.nodes.flatMap((n) => n.pids());
  t.ok(pids.length >= 3, 'collected the server pids');
  await cluster.stop();
  t.notOk(fs.existsSync(cluster.baseDir), 'baseDir removed');
  t.ok(cluster.nodes.every((n) => !n.running), 'no node running');
  for (const port of ports) t.notOk(await portAcceptsConnections(port), `port ${port} closed`);
  t.notOk(pids.some(processAlive), 'no server process left');
  await cluster.stop(); // idempotent
  t.pass('second stop() is a no-op');
});
