/**
 * Each user logs in to the servers as itself: with server URLs that name no user, a client configured in
 * users: reaches the primary and the replicas as its own role, with its own password (plaintext), the
 * md5 hash in users: (md5 roles), or SCRAM pass-through (the role's verifier copied into users:); a
 * user with server_user reaches them as that role; databases: maps the database; monitor.user is the
 * monitor's login. A URL that names a user still forces that role (as PgBouncer's user=). Secrets never
 * reach the log.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { connectErrorPg, connectPg, startCluster, type PgConnectError } from './fixtures/proxy-fixture.js';
import { resolveConfig } from '../src/config/load-config.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { md5StoredHash } from '../src/auth/md5.js';
import { makeScramVerifier } from '../src/auth/scram.js';

t.setTimeout(240_000);

type PgError = PgConnectError;
const TAGGED = '-c pgsplit.route=replica';
const ALICE = { name: 'alice', password: 'Alice-pw-1', method: 'scram-sha-256' } as const;
const BOB = { name: 'bob', password: 'Bob-pw-2', method: 'scram-sha-256' } as const;
const CAROL = { name: 'carol', password: 'Carol-pw-3', method: 'md5' } as const;
const ERIN = { name: 'erin', password: 'Erin-pw-5', method: 'scram-sha-256' } as const;
const FRANK = { name: 'frank', password: 'Frank-pw-6', method: 'scram-sha-256' } as const;
const WATCHER = { name: 'watcher', password: 'Watcher-pw-7', method: 'scram-sha-256' } as const;
const DAVE_PW = 'Dave-pw-4';

const cluster = await startCluster(t, { replicas: 1, users: [ALICE, BOB, CAROL, ERIN, FRANK, WATCHER] });
await cluster.primary.query('CREATE DATABASE nova_prod');
const stored = new Map((await cluster.primary.query<{ rolname: string; rolpassword: string }>(
  "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('bob', 'carol')",
)).map((r) => [r.rolname, r.rolpassword]));
const bobVerifier = stored.get('bob') ?? '';
const carolHash = stored.get('carol') ?? '';
const replica = cluster.replicas[0] ?? cluster.primary;
/** A server URL without credentials: the login is the user's. */
const bare = (port: number): string => `postgres://127.0.0.1:${port}/postgres`;

const SECRETS: string[] = [...[ALICE, BOB, CAROL, ERIN, FRANK, WATCHER].map((u) => u.password), DAVE_PW];

async function proxyWith(t: Parameters<typeof startCluster>[0], raw: Record<string, unknown>): Promise<{ port: number; log: string[]; proxy: ProxyServer }> {
  const log: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      log.push(chunk.toString());
      cb();
    },
  });
  const proxy = new ProxyServer(resolveConfig({ listen: '127.0.0.1:0', ...raw }), pino({ level: 'debug' }, sink));
  t.teardown(() => proxy.close());
  return { port: (await proxy.listen()).port, log, proxy };
}

function connect(port: number, user: string, password: string, opts: { database?: string; options?: string } = {}): Promise<pg.Client> {
  return connectPg({ host: '127.0.0.1', port, user, password, database: opts.database ?? 'postgres', options: opts.options });
}

function connectError(port: number, user: string, password: string, opts: { database?: string; options?: string } = {}): Promise<PgError | undefined> {
  return connectErrorPg({ host: '127.0.0.1', port, user, password, database: opts.database ?? 'postgres', options: opts.options });
}

interface Who { who: string; rec: boolean; db: string }
async function whoAmI(c: pg.Client): Promise<Who> {
  const r = await c.query<Who>('SELECT current_user AS who, pg_is_in_recovery() AS rec, current_database() AS db');
  return r.rows[0] as Who;
}

const USERS = [
  { name: ALICE.name, password: ALICE.password }, // plaintext
  { name: BOB.name, password: bobVerifier }, // the server's own SCRAM verifier: pass-through
  { name: CAROL.name, password: carolHash }, // the server's md5 hash
  { name: 'dave', password: DAVE_PW, server_user: ALICE.name, server_password: ALICE.password }, // mapped
  // A verifier of the right password with another salt than the server's: pass-through cannot work.
  { name: ERIN.name, password: makeScramVerifier(ERIN.password) },
  // An md5 hash for a role the server checks with SCRAM: it cannot answer.
  { name: FRANK.name, password: md5StoredHash(FRANK.name, FRANK.password) },
];

t.test('the cluster stores bob as SCRAM and carol as md5', async (t) => {
  t.match(bobVerifier, /^SCRAM-SHA-256\$/);
  t.match(carolHash, /^md5[0-9a-f]{32}$/);
});

t.test('users log in to the primary and the replica as themselves', async (t) => {
  // auth.method md5: carol's md5 hash can check her login; bob (a verifier) still logs in with SCRAM.
  const { port, log } = await proxyWith(t, {
    primary: bare(cluster.primary.port), replicas: [bare(replica.port)], users: USERS, auth: { method: 'md5' },
    databases: { app: { dbname: 'nova_prod' }, reports: 'nova_prod' },
    monitor: { user: WATCHER.name, password: WATCHER.password },
  });
  const logins: Array<[string, string, string]> = [
    [ALICE.name, ALICE.password, ALICE.name], [BOB.name, BOB.password, BOB.name], [CAROL.name, CAROL.password, CAROL.name], ['dave', DAVE_PW, ALICE.name],
  ];
  for (const [user, password, role] of logins) {
    const untagged = await connect(port, user, password);
    t.same(await whoAmI(untagged), { who: role, rec: false, db: 'postgres' }, `${user}: on the primary as "${role}"`);
    const tagged = await connect(port, user, password, { options: TAGGED });
    t.same(await whoAmI(tagged), { who: role, rec: true, db: 'postgres' }, `${user}: tagged reads on the replica as "${role}"`);
    // A write of the tagged session opens its primary connection with the same login.
    const w = await tagged.query<{ who: string; rec: boolean }>('SELECT current_user AS who, pg_is_in_recovery() AS rec FROM pg_advisory_xact_lock(7)');
    t.same(w.rows[0], { who: role, rec: false }, `${user}: the tagged session's write runs on the primary as "${role}"`);
    await Promise.all([untagged.end(), tagged.end()]);
  }

  // Two users at once, each itself.
  const [a, b] = await Promise.all([connect(port, ALICE.name, ALICE.password, { options: TAGGED }), connect(port, BOB.name, BOB.password, { options: TAGGED })]);
  const [wa, wb] = await Promise.all([whoAmI(a as pg.Client), whoAmI(b as pg.Client)]);
  t.same([wa.who, wb.who, wa.rec, wb.rec], [ALICE.name, BOB.name, true, true], 'two sessions side by side on the replica, each its own role');
  await Promise.all([a?.end(), b?.end()]);

  // databases: the client asks for "app" (or "reports"), the servers are asked for nova_prod.
  for (const db of ['app', 'reports']) {
    const c = await connect(port, ALICE.name, ALICE.password, { database: db, options: TAGGED });
    t.same(await whoAmI(c), { who: ALICE.name, rec: true, db: 'nova_prod' }, `database ${db}: nova_prod on the replica`);
    await c.query('SELECT pg_advisory_xact_lock(8)');
    t.equal((await c.query<{ db: string }>('SELECT current_database() AS db FROM pg_advisory_xact_lock(9)')).rows[0]?.db, 'nova_prod', `database ${db}: nova_prod on the primary`);
    await c.end();
  }
  const plain = await connect(port, ALICE.name, ALICE.password, { database: 'nova_prod' });
  t.equal((await whoAmI(plain)).db, 'nova_prod', 'a database not listed is passed on as is');
  await plain.end();

  // monitor.user: the monitor's connections are the watcher's.
  const monitors = await cluster.primary.query<{ usename: string }>("SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'pgsplit-monitor'");
  t.same(monitors.map((r) => r.usename), [WATCHER.name], 'the monitor logs in to the primary as monitor.user');
  const onReplica = await replica.query<{ usename: string }>("SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'pgsplit-monitor'");
  t.same(onReplica.map((r) => r.usename), [WATCHER.name], 'and to the replica');

  // A wrong password is refused by pgsplit as before: 28P01, whatever kind of secret users: holds.
  for (const user of [ALICE.name, BOB.name, CAROL.name, 'dave']) {
    const e = await connectError(port, user, 'not-the-password');
    t.equal(e?.code, '28P01', `${user}: a wrong password is refused (${e?.message})`);
  }

  // A verifier with another salt than the server's: the client's login passes, the server login cannot.
  const erin = await connectError(port, ERIN.name, ERIN.password);
  t.equal(erin?.code, '08001', `erin: pgsplit's login failed, not the client's (${erin?.message})`);
  t.match(erin?.message, /log in to server primary as "erin": the server's SCRAM verifier .* another salt or iteration count than users\[4\]\.password/);
  t.match(erin?.hint, /SELECT rolpassword FROM pg_authid WHERE rolname = 'erin'/, 'the hint says where the right verifier is');
  // An md5 hash for a role the server checks with SCRAM.
  const frank = await connectError(port, FRANK.name, FRANK.password);
  t.equal(frank?.code, '08001', `frank: pgsplit's login failed (${frank?.message})`);
  t.match(frank?.message, /server asks for SCRAM-SHA-256, which users\[5\]\.password \(an md5 hash\) cannot answer/);

  const text = log.join('');
  for (const s of [...SECRETS, bobVerifier, carolHash]) t.notOk(text.includes(s), 'no password, hash or verifier in the log');
});

t.test("a users: password that is not the server's: 08001 naming the key, not the client's 28P01", async (t) => {
  const { port } = await proxyWith(t, {
    primary: bare(cluster.primary.port), replicas: [bare(replica.port)],
    users: [{ name: ALICE.name, password: 'not-alices-server-password' }, { name: 'nobody_here', password: 'x-pw' }],
  });
  const e = await connectError(port, ALICE.name, 'not-alices-server-password');
  t.equal(e?.code, '08001', `${e?.message}`);
  t.match(e?.message, /could not log in to server primary as "alice" with users\[0\]\.password of the pgsplit config: the server said: password authentication failed/);
  t.match(e?.hint, /make users\[0\]\.password the role's password on the servers .* users\[0\]\.server_user/);
  const missing = await connectError(port, 'nobody_here', 'x-pw');
  t.equal(missing?.code, '08001', `a role missing on the servers is the configuration's problem too (${missing?.message})`);
  t.match(missing?.message, /role "nobody_here" does not exist/);
});

t.test('a URL that names a user forces that role (PgBouncer user=); server_user still wins', async (t) => {
  const { port } = await proxyWith(t, {
    primary: cluster.primary.url(), replicas: [replica.url()],
    users: [{ name: ALICE.name, password: ALICE.password }, { name: 'dave', password: DAVE_PW, server_user: BOB.name, server_password: BOB.password }],
  });
  const forced = await connect(port, ALICE.name, ALICE.password, { options: TAGGED });
  t.same(await whoAmI(forced), { who: 'postgres', rec: true, db: 'postgres' }, "alice reaches the replica as the URL's user");
  const mapped = await connect(port, 'dave', DAVE_PW, { options: TAGGED });
  t.same(await whoAmI(mapped), { who: BOB.name, rec: true, db: 'postgres' }, 'dave reaches it as his server_user');
  await Promise.all([forced.end(), mapped.end()]);
});

t.test('a reload applies databases: and monitor.user to what connects next; open sessions keep their login', async (t) => {
  const raw = { listen: '127.0.0.1:0', primary: bare(cluster.primary.port), replicas: [bare(replica.port)], users: [{ name: ALICE.name, password: ALICE.password }] };
  const { port, proxy } = await proxyWith(t, { ...raw, databases: { app: 'postgres' } });
  const before = await connect(port, ALICE.name, ALICE.password, { database: 'app', options: TAGGED });
  t.equal((await whoAmI(before)).db, 'postgres', 'before the reload: app is postgres');
  const monitorUsers = async (): Promise<string[]> => (await cluster.primary.query<{ usename: string }>(
    "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'pgsplit-monitor' ORDER BY 1",
  )).map((r) => r.usename);
  t.notOk((await monitorUsers()).includes(WATCHER.name), 'the monitor is not the watcher yet');

  const result = proxy.reload(resolveConfig({ ...raw, databases: { app: 'nova_prod' }, monitor: { user: WATCHER.name, password: WATCHER.password } }));
  t.match(result, { changed: ['databases', 'monitor.user', 'monitor.password'] }, 'the reload reports the keys');
  await proxy.monitor.checkNow();
  t.ok((await monitorUsers()).includes(WATCHER.name), 'after the next check the monitor is logged in as monitor.user');

  const after = await connect(port, ALICE.name, ALICE.password, { database: 'app', options: TAGGED });
  t.equal((await whoAmI(after)).db, 'nova_prod', 'a new session: app is nova_prod');
  const w = await before.query<{ db: string }>('SELECT current_database() AS db FROM pg_advisory_xact_lock(10)');
  t.equal(w.rows[0]?.db, 'postgres', 'the session opened before keeps its database when it attaches the primary');
  await Promise.all([before.end(), after.end()]);
});
