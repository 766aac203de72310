/**
 * pgsplit logging in to its servers with the credentials in each server URL (md5, SCRAM-SHA-256, trust),
 * and relaying a server's refusal to the client; and clients logging in to pgsplit against users stored
 * as a SCRAM verifier or an md5 hash rather than a plaintext password.
 */
import t from 'tap';
import crypto from 'node:crypto';
import pg from 'pg';
import { connectErrorPg, connectPg, startCluster, startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import { makeScramVerifier } from '../src/auth/scram.js';
import type { LocalCluster } from '../src/cluster/local-cluster.js';

t.setTimeout(300_000);

const MD5_ROLE = { name: 'md5user', password: 'pw', method: 'md5' } as const;
const SCRAM_ROLE = { name: 'scramuser', password: 'pw2', method: 'scram-sha-256' } as const;
const TAGGED = '-c pgsplit.route=replica';

type PgError = Error & { code?: string; severity?: string };

function serverUrl(port: number, user?: string, password?: string): string {
  const auth = user === undefined ? '' : `${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@`;
  return `postgres://${auth}127.0.0.1:${port}/postgres`;
}

function connectTo(fx: ProxyFixture, opts: { user?: string; password?: string; options?: string } = {}): Promise<pg.Client> {
  return connectPg({ host: '127.0.0.1', port: fx.port, user: opts.user ?? 'postgres', password: opts.password, database: 'postgres', options: opts.options });
}

/** The error a connection attempt fails with (or undefined if it succeeds, after closing it). */
function connectError(fx: ProxyFixture, opts: { user?: string; password?: string; options?: string } = {}): Promise<PgError | undefined> {
  return connectErrorPg({ host: '127.0.0.1', port: fx.port, user: opts.user ?? 'postgres', password: opts.password, database: 'postgres', options: opts.options });
}

const cluster: LocalCluster = await startCluster(t, { replicas: 1, users: [MD5_ROLE, SCRAM_ROLE] });
const primaryPort = cluster.primary.port;
const replicaPort = (cluster.replicas[0] ?? cluster.primary).port;

t.test('the cluster really demands passwords from the md5 and scram roles', async (t) => {
  for (const role of [MD5_ROLE, SCRAM_ROLE]) {
    const bad = new pg.Client({ host: '127.0.0.1', port: primaryPort, user: role.name, password: 'nope', database: 'postgres' });
    bad.on('error', () => undefined);
    await t.rejects(bad.connect(), { code: '28P01' }, `${role.name}: a wrong password is refused by the server itself`);
    await bad.end().catch(() => undefined);
  }
  const stored = await cluster.primary.query<{ rolname: string; kind: string }>(
    "SELECT rolname, left(rolpassword, 3) AS kind FROM pg_authid WHERE rolname IN ('md5user', 'scramuser') ORDER BY rolname",
  );
  t.same(stored, [{ rolname: 'md5user', kind: 'md5' }, { rolname: 'scramuser', kind: 'SCR' }], 'one role stored as md5, one as SCRAM');
});

for (const role of [MD5_ROLE, SCRAM_ROLE]) {
  t.test(`server URLs with ${role.method} credentials (${role.name})`, async (t) => {
    const fx = await startProxy(t, {
      reuseCluster: cluster,
      config: {
        primary: serverUrl(primaryPort, role.name, role.password),
        replicas: [serverUrl(replicaPort, role.name, role.password)],
      },
    });
    // Development mode: the client's user is not checked and is replaced by the URL's user on the servers.
    const untagged = await connectTo(fx);
    const r1 = await untagged.query<{ who: string; rec: boolean; port: number }>(
      'SELECT current_user AS who, pg_is_in_recovery() AS rec, inet_server_port() AS port',
    );
    t.same(r1.rows, [{ who: role.name, rec: false, port: primaryPort }], 'untagged: the primary, as the URL user');
    await untagged.query('CREATE TEMP TABLE t_auth (id int)');
    await untagged.query('INSERT INTO t_auth SELECT generate_series(1, 10)');
    t.equal((await untagged.query('SELECT count(*)::int AS n FROM t_auth')).rows[0].n, 10, 'writes work on the primary');

    const tagged = await connectTo(fx, { options: TAGGED });
    const r2 = await tagged.query<{ who: string; rec: boolean; port: number }>(
      'SELECT current_user AS who, pg_is_in_recovery() AS rec, inet_server_port() AS port',
    );
    t.same(r2.rows, [{ who: role.name, rec: true, port: replicaPort }], 'tagged: the replica, as the URL user');
    // A write from the tagged session makes pgsplit log in to the primary too.
    const w = await tagged.query<{ who: string; rec: boolean }>('SELECT current_user AS who, pg_is_in_recovery() AS rec FROM pg_advisory_xact_lock(1)');
    t.same(w.rows, [{ who: role.name, rec: false }], 'tagged: a locking statement goes to the primary, as the URL user');
    const r3 = await tagged.query<{ n: number }>('SELECT count(*)::int AS n FROM generate_series(1, 1000)');
    t.equal(r3.rows[0]?.n, 1000, 'and reads go on working');

    // Several sessions at once, each doing its own login to the servers.
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => connectTo(fx, i % 2 === 0 ? {} : { options: TAGGED })));
    const answers = await Promise.all(many.map((c) => c.query<{ who: string; rec: boolean }>('SELECT current_user AS who, pg_is_in_recovery() AS rec')));
    t.same(
      answers.map((a) => a.rows[0]),
      Array.from({ length: 8 }, (_, i) => ({ who: role.name, rec: i % 2 === 1 })),
      '8 concurrent sessions log in to the right servers',
    );
    await Promise.all([untagged, tagged, ...many].map((c) => c.end()));
  });

  t.test(`a wrong password in the ${role.method} server URL: the client hears it is pgsplit's login that failed (08001)`, async (t) => {
    const wrongPrimary = await startProxy(t, {
      reuseCluster: cluster,
      config: {
        primary: serverUrl(primaryPort, role.name, 'wrong-password'),
        replicas: [serverUrl(replicaPort, role.name, role.password)],
      },
    });
    const e1 = await connectError(wrongPrimary);
    t.equal(e1?.code, '08001', `untagged connect fails with 08001, not the server's 28P01 (${e1?.message})`);
    t.equal(e1?.severity, 'FATAL');
    t.match(e1?.message, new RegExp(`pgsplit could not log in to server primary .*: the server said: password authentication failed for user "${role.name}"`),
      "pgsplit's own login, with the server's message");
    t.notMatch(e1?.message ?? '', /wrong-password/, 'the URL password is not echoed');
    // The monitor logs in with the same URL: it cannot read the primary's WAL position, so every
    // replica's lag is unknown (too much), and tagged sessions need the primary as well.
    t.equal(wrongPrimary.proxy.nodes.primary.health, 'down', 'the monitor has the primary out of rotation');
    t.match(wrongPrimary.proxy.nodes.primary.failReason ?? '', /password authentication failed/, 'with the server\'s reason');
    t.notMatch(wrongPrimary.proxy.nodes.primary.failReason ?? '', /wrong-password/, 'the URL password is not in the reason');
    const e1t = await connectError(wrongPrimary, { options: TAGGED });
    t.equal(e1t?.code, '08001', `tagged connect also fails with 08001: replica lag cannot be known without the primary (${e1t?.message})`);

    const wrongReplica = await startProxy(t, {
      reuseCluster: cluster,
      config: {
        primary: serverUrl(primaryPort, role.name, role.password),
        replicas: [serverUrl(replicaPort, role.name, 'wrong-password')],
      },
    });
    const replica = wrongReplica.proxy.nodes.replicas[0]!;
    t.equal(replica.health, 'down', 'the monitor has the replica out of rotation');
    t.match(replica.failReason ?? '', /password authentication failed/, 'with the server\'s reason');
    const tagged = await connectTo(wrongReplica, { options: TAGGED });
    t.equal((await tagged.query('SELECT pg_is_in_recovery() AS rec')).rows[0].rec, false, 'tagged sessions are served by the primary (routing.when_no_replica: primary)');
    await tagged.end();
    const untagged = await connectTo(wrongReplica);
    t.equal((await untagged.query('SELECT pg_is_in_recovery() AS rec')).rows[0].rec, false, 'untagged sessions are unaffected');
    await untagged.end();
  });
}

t.test('a server URL without a password for a role that needs one', async (t) => {
  const fx = await startProxy(t, { reuseCluster: cluster, config: { primary: serverUrl(primaryPort, MD5_ROLE.name), replicas: [] } });
  const e = await connectError(fx);
  t.ok(e, 'the connection fails');
  t.match(e?.message, /password/, `the message says a password is needed (${e?.code}: ${e?.message})`);
  t.ok(e?.code === '08001' || e?.code === '28P01', `SQLSTATE ${e?.code}`);
});

t.test('trust: server URLs with no password', async (t) => {
  for (const [label, primary, replica] of [
    ['superuser, no password', serverUrl(primaryPort, 'postgres'), serverUrl(replicaPort, 'postgres')],
    ["no user: the client's user is used", serverUrl(primaryPort), serverUrl(replicaPort)],
    ['a password the trust server never asks for', serverUrl(primaryPort, 'postgres', 'ignored'), serverUrl(replicaPort, 'postgres', 'ignored')],
  ] as const) {
    const fx = await startProxy(t, { reuseCluster: cluster, config: { primary, replicas: [replica] } });
    const u = await connectTo(fx);
    t.same((await u.query('SELECT current_user AS who, pg_is_in_recovery() AS rec')).rows, [{ who: 'postgres', rec: false }], `${label}: primary`);
    const tg = await connectTo(fx, { options: TAGGED });
    t.same((await tg.query('SELECT current_user AS who, pg_is_in_recovery() AS rec')).rows, [{ who: 'postgres', rec: true }], `${label}: replica`);
    await Promise.all([u.end(), tg.end()]);
  }
});

t.test('client users stored as a SCRAM verifier or an md5 hash', async (t) => {
  const verifier = makeScramVerifier('vpw');
  const md5Hash = 'md5' + crypto.createHash('md5').update('hpw' + 'hashed').digest('hex');
  const users = [
    { name: 'verif', password: verifier },
    { name: 'hashed', password: md5Hash },
    { name: 'plain', password: 'ppw' },
  ];
  // The md5 hash needs auth.method md5 (config refuses it under scram-sha-256); the verifier user logs in
  // with SCRAM whatever the method. The servers are reached as the md5 role, so both sides authenticate.
  const fx = await startProxy(t, {
    reuseCluster: cluster,
    config: {
      users,
      auth: { method: 'md5' },
      primary: serverUrl(primaryPort, MD5_ROLE.name, MD5_ROLE.password),
      replicas: [serverUrl(replicaPort, SCRAM_ROLE.name, SCRAM_ROLE.password)],
    },
  });
  for (const [user, password] of [['verif', 'vpw'], ['hashed', 'hpw'], ['plain', 'ppw']] as const) {
    const c = await connectTo(fx, { user, password });
    t.same((await c.query('SELECT current_user AS who, pg_is_in_recovery() AS rec')).rows, [{ who: MD5_ROLE.name, rec: false }], `${user}: logs in, primary as md5user`);
    await c.end();
    const tg = await connectTo(fx, { user, password, options: TAGGED });
    t.same((await tg.query('SELECT current_user AS who, pg_is_in_recovery() AS rec')).rows, [{ who: SCRAM_ROLE.name, rec: true }], `${user}: tagged, replica as scramuser`);
    await tg.end();
    const e = await connectError(fx, { user, password: password + 'x' });
    t.equal(e?.code, '28P01', `${user}: a wrong password gets 28P01`);
    t.equal(e?.message, `password authentication failed for user "${user}"`, `${user}: PostgreSQL's message for a failed password`);
  }
  // The stored secret itself is not a password.
  t.equal((await connectError(fx, { user: 'verif', password: verifier }))?.code, '28P01', 'the verifier text is not accepted as the password');
  t.equal((await connectError(fx, { user: 'hashed', password: md5Hash }))?.code, '28P01', 'the md5 hash text is not accepted as the password');

  // Which mechanism each user was offered: SCRAM for the verifier, md5 for the hash and the plaintext.
  const offered = async (user: string): Promise<number> => {
    const { default: net } = await import('node:net');
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: fx.port });
      const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0database\0postgres\0\0`)]);
      const len = Buffer.alloc(4);
      len.writeInt32BE(body.length + 4);
      s.on('connect', () => s.write(Buffer.concat([len, body])));
      s.once('data', (d: Buffer) => {
        s.destroy();
        resolve(d[0] === 0x52 ? d.readInt32BE(5) : -1);
      });
      s.on('error', reject);
    });
  };
  t.equal(await offered('verif'), 10, 'the verifier user is asked for SCRAM-SHA-256');
  t.equal(await offered('hashed'), 5, 'the md5-hash user is asked for md5');
  t.equal(await offered('plain'), 5, 'a plaintext user under auth.method md5 is asked for md5');

  // Under auth.method scram-sha-256 a verifier works the same.
  const scramFx = await startProxy(t, {
    reuseCluster: cluster,
    config: { users: [{ name: 'verif', password: verifier }], auth: { method: 'scram-sha-256' } },
  });
  const c = await connectTo(scramFx, { user: 'verif', password: 'vpw' });
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'verifier user under scram-sha-256 logs in');
  await c.end();
  t.equal((await connectError(scramFx, { user: 'verif', password: 'nope' }))?.code, '28P01', 'and a wrong password gets 28P01');
});
