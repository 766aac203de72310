/**
 * TLS with certificates the test makes: clients to pgsplit (tls.mode require / allow, psql sslmode=require
 * and verify-full, plain text refused, a wrong CA refused by the client, client certificates with tls.ca),
 * SCRAM-SHA-256-PLUS channel binding where the client asks for it (psql channel_binding=require, node-postgres),
 * and pgsplit to servers per URL (sslmode=verify-full with sslrootcert, seen from the server's pg_stat_ssl;
 * a wrong root certificate refused).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import fs from 'node:fs';
import net from 'node:net';
import { startCluster, startProxy } from './fixtures/proxy-fixture.js';
import { makeTestCerts, type TestCerts } from './fixtures/test-certs.js';
import type { LocalCluster } from '../src/cluster/local-cluster.js';

t.setTimeout(180_000);
const run = promisify(execFile);

async function psql(conninfo: string, sql: string[], env: Record<string, string> = {}): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const bin = path.join((await run('pg_config', ['--bindir'])).stdout.trim(), 'psql');
  try {
    const { stdout, stderr } = await run(bin, ['-X', '-At', '-v', 'ON_ERROR_STOP=1', ...sql.flatMap((c) => ['-c', c]), conninfo],
      { env: { ...process.env, PGCONNECT_TIMEOUT: '10', PGSSLMODE: '', PGPASSWORD: '', ...env } });
    return { ok: true, stdout, stderr };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, stdout: err.stdout ?? '', stderr: err.stderr ?? String(e) };
  }
}

/** The cluster with ssl on every node, its servers using the test's server certificate. */
async function tlsCluster(t: Parameters<typeof startCluster>[0], certs: TestCerts, opts: Parameters<typeof startCluster>[1] = {}): Promise<LocalCluster> {
  return startCluster(t, { replicas: 1, ...opts, settings: { ssl: 'on', ssl_cert_file: certs.serverCert, ssl_key_file: certs.serverKey } });
}

const withTls = (url: string, mode: string, root?: string): string => `${url}?sslmode=${mode}${root ? `&sslrootcert=${encodeURIComponent(root)}` : ''}`;

t.test('clients: tls.mode require, psql verify-full; pgsplit to servers: verify-full', async (t) => {
  const certs = await makeTestCerts(t);
  const cluster = await tlsCluster(t, certs);
  const fx = await startProxy(t, {
    reuseCluster: cluster,
    config: {
      primary: withTls(cluster.primary.url(), 'verify-full', certs.caCert),
      replicas: cluster.replicas.map((r) => withTls(r.url(), 'verify-full', certs.caCert)),
      tls: { mode: 'require', cert: certs.serverCert, key: certs.serverKey },
    },
  });
  const base = `host=localhost port=${fx.port} user=postgres dbname=postgres`;
  const ok = await psql(`${base} sslmode=verify-full sslrootcert=${certs.caCert}`, ['\\conninfo', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()']);
  t.ok(ok.ok, `psql sslmode=verify-full connects: ${ok.stderr}`);
  t.match(ok.stdout, /SSL connection \(protocol: TLSv1\.[23]/, 'psql reports an SSL connection to pgsplit');
  t.match(ok.stdout, /\nt\n?$/, "the primary's pg_stat_ssl shows pgsplit's own connection encrypted");
  const req = await psql(`${base} sslmode=require`, ['SELECT 1']);
  t.ok(req.ok, 'psql sslmode=require connects');
  const shown = await psql(`host=localhost port=${fx.port} user=postgres dbname=pgsplit sslmode=require`, ['SHOW CONFIG']);
  t.match(shown.stdout, /tls\.mode\|require/, 'the admin console (over TLS) shows tls.mode');
  t.match(shown.stdout, new RegExp(`tls\\.cert\\|${certs.serverCert.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'and the certificate path');
  t.notMatch(shown.stdout, /PRIVATE KEY|BEGIN/, 'never the key or any PEM');

  const plain = await psql(`${base} sslmode=disable`, ['SELECT 1']);
  t.notOk(plain.ok, 'plain text is refused in tls.mode require');
  t.match(plain.stderr, /accepts only TLS connections \(tls\.mode: require\)/, plain.stderr.trim());
  const wrongCa = await psql(`${base} sslmode=verify-full sslrootcert=${certs.otherCaCert}`, ['SELECT 1']);
  t.notOk(wrongCa.ok, 'a client verifying against another CA refuses pgsplit');
  t.match(wrongCa.stderr, /certificate verify failed/i, wrongCa.stderr.trim());

  // node-postgres over TLS, tagged: reads go to the replica over TLS too.
  const c = new pg.Client({ host: 'localhost', port: fx.port, user: 'postgres', database: 'postgres', options: '-c pgsplit.route=replica',
    ssl: { ca: fs.readFileSync(certs.caCert, 'utf8') } });
  await c.connect();
  const r = await c.query<{ rec: boolean; ssl: boolean }>('SELECT pg_is_in_recovery() AS rec, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl');
  t.same(r.rows[0], { rec: true, ssl: true }, 'a tagged read ran on the replica, over TLS from pgsplit');
  await c.end();
});

t.test('SCRAM-SHA-256-PLUS: channel binding when the client asks for it', async (t) => {
  const certs = await makeTestCerts(t);
  const cluster = await tlsCluster(t, certs, { replicas: 0 });
  const password = 'cb-Secret-77';
  const fx = await startProxy(t, {
    reuseCluster: cluster,
    config: { tls: { cert: certs.serverCert, key: certs.serverKey }, users: [{ name: 'app', password }], limits: { startup_timeout: '1s' } },
  });
  const base = `host=localhost port=${fx.port} user=app dbname=postgres`;
  const bound = await psql(`${base} sslmode=require channel_binding=require`, ['SELECT 42'], { PGPASSWORD: password });
  t.ok(bound.ok, `psql channel_binding=require authenticates: ${bound.stderr}`);
  t.match(bound.stdout, /42/);
  const wrong = await psql(`${base} sslmode=require channel_binding=require`, ['SELECT 1'], { PGPASSWORD: 'not-it' });
  t.notOk(wrong.ok, 'a wrong password fails with channel binding too');
  t.match(wrong.stderr, /password authentication failed for user "app"/);
  const noTls = await psql(`${base} sslmode=disable channel_binding=require`, ['SELECT 1'], { PGPASSWORD: password });
  t.notOk(noTls.ok, 'channel_binding=require without TLS is refused by the client (tls.mode allow lets plain text in)');
  const plainOk = await psql(`${base} sslmode=disable`, ['SELECT 1'], { PGPASSWORD: password });
  t.ok(plainOk.ok, 'tls.mode allow (the default with a certificate) still accepts plain text');

  const c = new pg.Client({ host: 'localhost', port: fx.port, user: 'app', password, database: 'postgres', enableChannelBinding: true,
    ssl: { ca: fs.readFileSync(certs.caCert, 'utf8') } });
  await c.connect();
  t.equal((await c.query<{ n: number }>('SELECT 7 AS n')).rows[0]?.n, 7, 'node-postgres with enableChannelBinding authenticates over SCRAM-SHA-256-PLUS');
  await c.end();

  // SSLRequest, 'S', then silence: the startup timeout still ends it (the TLS handshake is part of startup).
  const started = Date.now();
  const answer = await new Promise<{ first: string; closedAfterMs: number }>((resolve, reject) => {
    const s = net.connect(fx.port, '127.0.0.1');
    let first = '';
    s.on('connect', () => s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
    s.on('data', (d: Buffer) => (first ||= d.toString('latin1', 0, 1)));
    s.on('error', reject);
    s.on('close', () => resolve({ first, closedAfterMs: Date.now() - started }));
  });
  t.equal(answer.first, 'S', 'SSLRequest is answered S');
  t.ok(answer.closedAfterMs >= 900 && answer.closedAfterMs < 5000, `a client silent after S is closed by limits.startup_timeout (${answer.closedAfterMs} ms)`);
});

t.test('client certificates (tls.ca) and a server URL with the wrong root certificate', async (t) => {
  const certs = await makeTestCerts(t);
  const cluster = await tlsCluster(t, certs, { replicas: 0 });
  const fx = await startProxy(t, {
    reuseCluster: cluster,
    config: { tls: { mode: 'require', cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert } },
  });
  const base = `host=localhost port=${fx.port} user=postgres dbname=postgres sslmode=verify-full sslrootcert=${certs.caCert}`;
  const withCert = await psql(`${base} sslcert=${certs.clientCert} sslkey=${certs.clientKey}`, ['SELECT 1']);
  t.ok(withCert.ok, `a client with a certificate tls.ca signed connects: ${withCert.stderr}`);
  const without = await psql(`${base} sslcert=/nonexistent sslkey=/nonexistent`, ['SELECT 1']);
  t.notOk(without.ok, 'a client without a certificate is refused');

  const bad = await startProxy(t, { reuseCluster: cluster, config: { primary: withTls(cluster.primary.url(), 'verify-full', certs.otherCaCert) } });
  const err = await bad.client().then(() => null, (e: Error & { code?: string }) => e);
  t.equal(err?.code, '08001', 'a server whose certificate does not verify is not connected to (08001)');
  t.match(err?.message, /pgsplit could not connect to primary: .*certificate/i, String(err?.message));
});
