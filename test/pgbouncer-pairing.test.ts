/**
 * The README's recipe for pairing pgsplit with PgBouncer (Limitations): one PgBouncer in session pooling
 * mode in front of each server, pgsplit's URLs pointing at them. The test takes the recipe's ini and YAML
 * blocks from README.md itself (only hosts, ports and file paths replaced), runs Debian's pgbouncer for a
 * primary and a replica, the pgsplit command in front of them, and checks what the recipe promises:
 * tagged reads on the replica and writes on the primary, through both PgBouncers; server connections
 * reused from one client session to the next, reset in between; sessions over max_db_connections waiting
 * instead of failing; cancel requests forwarded.
 */
import t from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import pg from 'pg';
import { startCluster } from './fixtures/proxy-fixture.js';
import { spawnPgsplit } from './fixtures/pgsplit-process.js';
import { claimFreePort, runningAsRoot, POSTGRES_OS_USER } from '../src/cluster/local-node.js';

t.setTimeout(240_000);

const PGBOUNCER = '/usr/sbin/pgbouncer';
const PASSWORD = 'secret';

/** The fenced block of `lang` in README's PgBouncer pairing bullet. */
function recipeBlock(lang: 'ini' | 'yaml'): string {
  const readme = fs.readFileSync(path.resolve('README.md'), 'utf8');
  const start = readme.indexOf('**Pairing with PgBouncer');
  if (start < 0) throw new Error('README has no "Pairing with PgBouncer" recipe');
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n\\s*```').exec(readme.slice(start));
  if (m?.[1] === undefined) throw new Error(`README's PgBouncer recipe has no ${lang} block`);
  return m[1].split('\n').map((l) => l.replace(/^ {2}/, '')).join('\n');
}

/** `text` with `from` replaced by `to`; throws when `from` is not there, so the README and the test cannot drift apart silently. */
function replaced(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  if (out === text) throw new Error(`the recipe no longer contains ${String(from)}:\n${text}`);
  return out;
}

/** The recipe's pgbouncer.ini, pointed at `serverPort`, listening on `port`, with files under `dir`. */
function pgbouncerIni(serverPort: number, port: number, dir: string, maxDbConnections: number): string {
  let ini = recipeBlock('ini');
  ini = replaced(ini, /host=\S+ port=\d+/, `host=127.0.0.1 port=${serverPort}`);
  ini = replaced(ini, /listen_port = \d+/, `listen_port = ${port}`);
  ini = replaced(ini, /auth_file = \S+/, `auth_file = ${path.join(dir, 'userlist.txt')}`);
  // Small enough to see the cap at work with two client sessions (pgsplit's own connections count too).
  ini = replaced(ini, /max_db_connections = \d+/, `max_db_connections = ${maxDbConnections}`);
  // Only what a test needs on top: no Unix socket in /var/run, a log in the temp folder, an admin for SHOW POOLS.
  return `${ini}\nunix_socket_dir =\nlogfile = ${path.join(dir, 'pgbouncer.log')}\nadmin_users = nova\n`;
}

interface Bouncer {
  port: number;
  log(): string;
}

async function startPgBouncer(t: { teardown(fn: () => unknown): void }, serverPort: number, verifier: string, maxDbConnections: number): Promise<Bouncer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-pgbouncer-pairing-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await claimFreePort();
  fs.writeFileSync(path.join(dir, 'userlist.txt'), `"nova" "${verifier}"\n`);
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(ini, pgbouncerIni(serverPort, port, dir, maxDbConnections));
  // PgBouncer refuses to run as root: as the postgres OS user then, spawned directly so the pid is its own.
  let identity: { uid?: number; gid?: number } = {};
  if (runningAsRoot()) {
    execFileSync('chown', ['-R', POSTGRES_OS_USER, dir]);
    const id = (flag: string) => Number(execFileSync('id', [flag, POSTGRES_OS_USER]).toString().trim());
    identity = { uid: id('-u'), gid: id('-g') };
  }
  const child = spawn(PGBOUNCER, [ini], { stdio: ['ignore', 'ignore', 'pipe'], ...identity });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      await exited;
    }
  });
  const log = () => {
    try {
      return stderr + fs.readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8');
    } catch {
      return stderr;
    }
  };
  await untilConnects({ host: '127.0.0.1', port, user: 'nova', password: PASSWORD, database: 'pgbouncer' }, () => child.exitCode === null, log);
  return { port, log };
}

/** Retries connecting until it works; throws if `alive()` turns false. */
async function untilConnects(config: pg.ClientConfig, alive: () => boolean, output: () => string): Promise<void> {
  for (;;) {
    const c = new pg.Client(config);
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      return;
    } catch (e) {
      await c.end().catch(() => undefined);
      if (!alive()) throw new Error(`exited before accepting connections (${String(e)}):\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

t.test('the README recipe: pgsplit in front of one PgBouncer (session pooling) per server', { skip: fs.existsSync(PGBOUNCER) ? false : `${PGBOUNCER} not installed (apt-get install pgbouncer)` }, async (t) => {
  const cluster = await startCluster(t, { replicas: 1, users: [{ name: 'nova', password: PASSWORD, method: 'scram-sha-256' }] });
  const replica = cluster.replicas[0];
  if (replica === undefined) throw new Error('no replica');
  const admin = new pg.Client({ connectionString: cluster.primary.url() });
  await admin.connect();
  await admin.query('CREATE DATABASE nova OWNER nova');
  const verifier = (await admin.query<{ v: string }>("SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'nova'")).rows[0]?.v ?? '';
  await admin.end();
  t.match(verifier, /^SCRAM-SHA-256\$/, 'userlist.txt holds the role\'s SCRAM secret, as pg_authid has it');
  const owner = new pg.Client({ connectionString: cluster.primary.url({ user: 'nova', password: PASSWORD, database: 'nova' }) });
  await owner.connect();
  await owner.query('CREATE TABLE items (id int PRIMARY KEY, note text)');
  const lsn = (await owner.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]?.l;
  await owner.end();
  // The replica has the database and the table before pgsplit starts.
  const onReplica = new pg.Client({ connectionString: replica.url({ database: 'postgres' }) });
  await onReplica.connect();
  while (!(await onReplica.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn])).rows[0]?.ok) await new Promise((r) => setTimeout(r, 50));
  await onReplica.end();

  // pgsplit holds two connections to the primary (the monitor's check, its WAL-position query) and one to
  // each replica: room for one client session on each.
  const primaryBouncer = await startPgBouncer(t, cluster.primary.port, verifier, 3);
  const replicaBouncer = await startPgBouncer(t, replica.port, verifier, 2);

  let yaml = recipeBlock('yaml');
  yaml = replaced(yaml, /(primary: postgres:\/\/[^@]+@127\.0\.0\.1:)\d+/, `$1${primaryBouncer.port}`);
  yaml = replaced(yaml, /(replicas: \[postgres:\/\/[^@]+@127\.0\.0\.1:)\d+/, `$1${replicaBouncer.port}`);
  const port = await claimFreePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-pgbouncer-pairing-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const configFile = path.join(dir, 'pgsplit.yaml');
  fs.writeFileSync(configFile, `${yaml}\nlisten: 127.0.0.1:${port}\n`);
  const url = (tagged: boolean) => ({ host: '127.0.0.1', port, user: 'nova', database: 'nova', ...(tagged ? { options: '-c pgsplit.route=replica' } : {}) });
  await spawnPgsplit(t, ['--config', configFile], port, {}, { user: 'nova', database: 'nova' });

  await t.test('tagged reads on the replica, writes on the primary, read-your-writes, through the PgBouncers', async (t) => {
    const tagged = new pg.Client(url(true));
    await tagged.connect();
    const read = await tagged.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    t.equal(read.rows[0]?.r, true, 'a tagged read runs on the replica');
    const write = await tagged.query<{ r: boolean }>("INSERT INTO items VALUES (1, 'written') RETURNING pg_is_in_recovery() AS r");
    t.equal(write.rows[0]?.r, false, 'a write of a tagged session runs on the primary');
    const back = await tagged.query<{ note: string; r: boolean }>('SELECT note, pg_is_in_recovery() AS r FROM items WHERE id = 1');
    t.same(back.rows, [{ note: 'written', r: true }], 'the next read, on the replica, sees the write (read-your-writes)');

    // The primary's last server connection under max_db_connections is the tagged session's since its
    // write, until it ends.
    const untagged = new pg.Client(url(false));
    await untagged.connect();
    t.teardown(() => untagged.end());
    await tagged.end();
    const r = await untagged.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    t.equal(r.rows[0]?.r, false, 'an untagged read runs on the primary');
  });

  await t.test('server connections reused from one client session to the next, reset in between', async (t) => {
    const first = new pg.Client(url(false));
    await first.connect();
    await first.query("SET work_mem = '7MB'");
    const pid1 = (await first.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    await first.end();
    const second = new pg.Client(url(false));
    await second.connect();
    t.teardown(() => second.end());
    const row = (await second.query<{ pid: number; wm: string }>("SELECT pg_backend_pid() AS pid, current_setting('work_mem') AS wm")).rows[0];
    t.equal(row?.pid, pid1, 'the next client session gets the same primary backend (no backend start per client)');
    t.equal(row?.wm, '4MB', 'without the settings of the session before (server_reset_query = DISCARD ALL)');
  });

  await t.test('a session over max_db_connections waits in PgBouncer, then runs', async (t) => {
    // One client session at a time on the primary (see max_db_connections above).
    const holder = new pg.Client(url(false));
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1');
    const waiter = new pg.Client(url(false));
    await waiter.connect();
    t.teardown(() => waiter.end());
    const waiting = waiter.query<{ n: number }>('SELECT count(*)::int AS n FROM items');
    let settled = false;
    void waiting.then(() => (settled = true), () => (settled = true));
    const bouncerAdmin = new pg.Client({ host: '127.0.0.1', port: primaryBouncer.port, user: 'nova', password: PASSWORD, database: 'pgbouncer' });
    await bouncerAdmin.connect();
    t.teardown(() => bouncerAdmin.end());
    let clWaiting = 0;
    while (clWaiting === 0 && !settled) {
      const pools = await bouncerAdmin.query<{ database: string; cl_waiting: string | number }>('SHOW POOLS');
      clWaiting = Number(pools.rows.find((p) => p.database === 'nova')?.cl_waiting ?? 0);
      if (clWaiting === 0) await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(clWaiting, 1, 'the second session\'s statement waits in PgBouncer for a server connection');
    t.equal(settled, false, 'and has not been answered while the first session holds the last one');
    await holder.query('COMMIT');
    await holder.end();
    const r = await waiting;
    t.equal(r.rows[0]?.n, 1, 'once the first session ends, it runs (it did not fail)');
  });

  await t.test('cancel requests reach the server through PgBouncer', async (t) => {
    const tagged = new pg.Client(url(true));
    await tagged.connect();
    t.teardown(() => tagged.end());
    const sleeping = tagged.query('SELECT pg_sleep(20)').then(() => null, (e: Error & { code?: string }) => e);
    // Cancel once the statement runs on the replica.
    const watch = new pg.Client({ connectionString: replica.url({ database: 'postgres' }) });
    await watch.connect();
    t.teardown(() => watch.end());
    while (Number((await watch.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'")).rows[0]?.n) === 0) await new Promise((r) => setTimeout(r, 50));
    // A CancelRequest with the key pgsplit gave the client; pgsplit sends PgBouncer's key to PgBouncer.
    const keyed = tagged as unknown as { processID: number; secretKey: number };
    const request = Buffer.alloc(16);
    request.writeInt32BE(16, 0);
    request.writeInt32BE(80877102, 4);
    request.writeInt32BE(keyed.processID, 8);
    request.writeInt32BE(keyed.secretKey, 12);
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => s.end(request));
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    const err = await sleeping;
    t.equal(err?.code, '57014', 'the statement is cancelled on the replica (57014)');
  });

  t.notMatch(primaryBouncer.log() + replicaBouncer.log(), /unsupported startup parameter/, 'PgBouncer accepted every startup parameter pgsplit sent');

  await t.test('server settings in the startup options: PgBouncer refuses them, as the README says; SET works', async (t) => {
    const c = new pg.Client({ ...url(false), options: '-c pgsplit.route=replica -c statement_timeout=5s' });
    c.on('error', () => undefined);
    const err = await c.connect().then(() => null, (e: Error & { code?: string }) => e);
    await c.end().catch(() => undefined);
    t.equal(err?.code, '08P01', 'refused with 08P01');
    t.match(err?.message ?? '', /unsupported startup parameter: options/, 'naming the startup parameter');
    const tagged = new pg.Client({ ...url(false), options: '-c pgsplit.route=replica' });
    await tagged.connect();
    t.teardown(() => tagged.end());
    await tagged.query("SET statement_timeout = '5s'");
    const row = (await tagged.query<{ s: string; r: boolean }>("SELECT current_setting('statement_timeout') AS s, pg_is_in_recovery() AS r")).rows[0];
    t.same(row, { s: '5s', r: true }, 'pgsplit.route alone in the options is fine (pgsplit takes it); the setting made with SET holds on the replica');
  });
});
