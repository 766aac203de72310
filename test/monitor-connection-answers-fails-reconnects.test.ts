/**
 * The replica monitor's own connection (MonitorConnection, MonitorProbe) against real servers: it answers
 * the monitor's queries as text columns (several in flight answer in order), an ErrorResponse rejects
 * with the server's message and leaves the connection usable, a server that stops answering (SIGSTOP)
 * makes the query time out and close the connection, and the probe's next query connects again; a
 * backend that ends is replaced at the next query; md5, SCRAM and TLS logins work as for the sessions'
 * connections; pgsplit's stop leaves no monitor connection behind.
 */
import t from 'tap';
import { serialize } from '../src/codec/frontend-messages.js';
import { resolveConfig } from '../src/config/load-config.js';
import type { ServerTls } from '../src/config/config.js';
import { MonitorConnection } from '../src/monitor/monitor-connection.js';
import { MonitorProbe } from '../src/monitor/monitor-probe.js';
import { ServerNodes } from '../src/server/server-nodes.js';
import type { ServerTarget } from '../src/server/server-connection.js';
import type { LocalNode } from '../src/cluster/local-cluster.js';
import { startCluster, startProxy } from './fixtures/proxy-fixture.js';
import { makeTestCerts } from './fixtures/test-certs.js';
import fs from 'node:fs';

t.setTimeout(240_000);

const MD5_ROLE = { name: 'md5watch', password: 'md5-pw', method: 'md5' } as const;
const SCRAM_ROLE = { name: 'scramwatch', password: 'scram-pw', method: 'scram-sha-256' } as const;
const LSN = /^[0-9A-F]+\/[0-9A-F]+$/;
const q = (sql: string): Buffer => serialize.query(sql);

const cluster = await startCluster(t, { replicas: 1, users: [MD5_ROLE, SCRAM_ROLE] });
const replica = cluster.replicas[0] as LocalNode;

function target(node: LocalNode, extra: Partial<ServerTarget> = {}): ServerTarget {
  return { name: node.name, host: '127.0.0.1', port: node.port, user: 'postgres', database: 'postgres', ...extra };
}

async function until(ms: number, check: () => Promise<boolean> | boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

const monitorBackends = async (node: LocalNode): Promise<number> =>
  (await node.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgsplit-monitor'"))[0]?.n ?? -1;

t.test('answers as text columns: positions, NULL, no row, several queries in flight in order', async (t) => {
  const primary = await MonitorConnection.open(target(cluster.primary), 5000);
  t.teardown(() => primary.close());
  const p = await primary.run(q('SELECT pg_current_wal_insert_lsn()::text, pg_is_in_recovery()'), 5000);
  t.match(p?.[0], LSN, `the primary's insert position (${p?.[0]})`);
  t.equal(p?.[1], 'f', 'and that it is not in recovery, as text');
  t.same(await primary.run(q("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"), 5000), ['pgsplit-monitor'],
    'logged in as application_name pgsplit-monitor');
  t.same(await primary.run(q('SELECT NULL::text AS a, 2 AS b'), 5000), [null, '2'], 'SQL NULL is null');
  t.equal(await primary.run(q('SELECT 1 WHERE false'), 5000), null, 'no row: null');
  t.same(await primary.run(q('SELECT 1 UNION ALL SELECT 2'), 5000), ['1'], 'several rows: the first');
  const inFlight = await Promise.all([1, 2, 3].map((i) => primary.run(q(`SELECT ${i}, pg_sleep(${(3 - i) * 0.02})`), 5000)));
  t.same(inFlight.map((r) => r?.[0]), ['1', '2', '3'], 'queries sent before the previous answer are answered in order');

  const onReplica = await MonitorConnection.open(target(replica), 5000);
  t.teardown(() => onReplica.close());
  const r = await onReplica.run(q('SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, pg_is_in_recovery()'), 5000);
  t.match(r?.[0], LSN, "the replica's received position");
  t.match(r?.[1], LSN, 'and replayed one');
  t.equal(r?.[2], 't', 'in recovery');

  primary.close();
  t.ok(primary.closed, 'close() closes it');
  await t.rejects(primary.run(q('SELECT 1'), 5000), /the monitor closed its connection/, 'a query after close() is refused');
});

t.test("an ErrorResponse rejects with the server's message; the connection stays usable", async (t) => {
  const c = await MonitorConnection.open(target(cluster.primary), 5000);
  t.teardown(() => c.close());
  await t.rejects(c.run(q('SELECT 1/0'), 5000), { message: 'division by zero' }, "the server's message");
  t.notOk(c.closed, 'the connection is still open');
  t.same(await c.run(q('SELECT 42'), 5000), ['42'], 'and answers the next query');
  // A backend that ends says why before it closes: that reason reaches the query in flight.
  await t.rejects(c.run(q('SELECT pg_terminate_backend(pg_backend_pid())'), 5000), /terminating connection due to administrator command/,
    'a terminated backend: the query in flight hears the server\'s reason');
  t.ok(c.closed, 'and the connection is closed');
});

t.test('a frozen server: the query times out and closes the connection; the probe connects again afterwards', async (t) => {
  const config = resolveConfig({ primary: cluster.primary.url(), replicas: [replica.url()] });
  const nodes = new ServerNodes(config.primary, config.replicas);
  const opts = { ...config.monitor, timeoutMs: 400 };
  const probe = new MonitorProbe(nodes.replicas[0]!, async () => {});
  t.teardown(() => probe.retire('the test ended'));
  const PID = q('SELECT pg_backend_pid()');
  const first = (await probe.run(PID, opts))?.[0];
  t.match(first, /^\d+$/, `connected on the first query (backend ${first})`);
  t.equal((await probe.run(PID, opts))?.[0], first, 'and keeps that connection for the next');

  await replica.freeze();
  try {
    await t.rejects(probe.run(PID, opts), /no answer within 400 ms \(monitor\.timeout\)/, 'a query to the frozen server times out');
    await t.rejects(probe.run(PID, opts), /no answer within 400 ms \(monitor\.timeout\)/, 'so does connecting again while it is frozen');
  } finally {
    await replica.thaw();
  }
  const after = (await probe.run(PID, opts))?.[0];
  t.match(after, /^\d+$/, 'once it answers again, the next query connects and is answered');
  t.not(after, first, `on a new backend (${after})`);
  t.ok(await until(10_000, async () => (await monitorBackends(replica)) === 1),
    `the connections given up on are gone from the server (${await monitorBackends(replica)} monitor backend(s) left)`);
});

t.test('a backend that ended between queries: the next query connects again instead of failing', async (t) => {
  const config = resolveConfig({ primary: cluster.primary.url(), replicas: [] });
  const nodes = new ServerNodes(config.primary, config.replicas);
  const probe = new MonitorProbe(nodes.primary, async () => {});
  t.teardown(() => probe.retire('the test ended'));
  const PID = q('SELECT pg_backend_pid()');
  const first = (await probe.run(PID, config.monitor))?.[0];
  // The backend ends itself: once this rejects, its connection has closed.
  await t.rejects(probe.run(q('SELECT pg_terminate_backend(pg_backend_pid())'), config.monitor), /terminating connection/);
  const second = (await probe.run(PID, config.monitor))?.[0];
  t.match(second, /^\d+$/, 'the next query is answered');
  t.not(second, first, 'by a new backend');
  probe.retire('removed from the configuration');
  await t.rejects(probe.run(PID, config.monitor), { message: 'removed from the configuration' }, 'a retired probe runs nothing');
});

t.test('logins: md5 and SCRAM as for the sessions; a refused monitor login names monitor.user', async (t) => {
  for (const role of [MD5_ROLE, SCRAM_ROLE]) {
    const c = await MonitorConnection.open(target(cluster.primary, { user: role.name, password: role.password }), 5000);
    t.same(await c.run(q('SELECT current_user'), 5000), [role.name], `${role.method}: logged in as ${role.name}`);
    c.close();
  }
  const refused = MonitorConnection.open(target(cluster.primary, { user: SCRAM_ROLE.name, password: 'not-it', configKey: 'primary', secretKey: 'monitor.password' }), 5000);
  await t.rejects(refused, /the pgsplit monitor could not log in to server primary as "scramwatch" \(monitor\.user and monitor\.password .*password authentication failed/,
    'a wrong monitor.password: the keys to fix and the server\'s reason');
  await refused.catch((e: Error) => t.notMatch(e.message, /not-it/, 'the password is not in the message'));
});

t.test('TLS per the URL: verify-full with the root certificate; a wrong root is refused', async (t) => {
  const certs = await makeTestCerts(t);
  const tlsCluster = await startCluster(t, { replicas: 0, settings: { ssl: 'on', ssl_cert_file: certs.serverCert, ssl_key_file: certs.serverKey } });
  const tls = (mode: ServerTls['mode'], ca?: string): ServerTls => ({ mode, ...(ca !== undefined ? { rootCertFile: ca, rootCertPem: fs.readFileSync(ca, 'utf8') } : {}) });
  const c = await MonitorConnection.open({ ...target(tlsCluster.primary), host: 'localhost', tls: tls('verify-full', certs.caCert) }, 5000);
  t.same(await c.run(q('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), 5000), ['t'], "the server's pg_stat_ssl shows the connection encrypted");
  c.close();
  await t.rejects(MonitorConnection.open({ ...target(tlsCluster.primary), host: 'localhost', tls: tls('verify-full', certs.otherCaCert) }, 5000),
    /certificate/i, 'a server whose certificate the root does not vouch for is refused');
  await t.rejects(MonitorConnection.open({ ...target(cluster.primary), tls: tls('require') }, 5000),
    /does not accept TLS/, 'sslmode=require to a server without TLS is refused');
});

t.test('stopping pgsplit leaves no monitor connection on the servers', async (t) => {
  const fx = await startProxy(t, { reuseCluster: cluster, config: { monitor: { interval: '50ms', lag_interval: '5ms' } } });
  t.ok(await until(10_000, async () => (await monitorBackends(cluster.primary)) >= 1 && (await monitorBackends(replica)) >= 1),
    'the monitor is connected to both servers');
  const c = await fx.client();
  await c.query('CREATE TABLE IF NOT EXISTS monitor_probe_t (id int)');
  await c.query('INSERT INTO monitor_probe_t VALUES (1)');
  const queries = fx.proxy.monitor.queries;
  t.ok(await until(10_000, () => fx.proxy.monitor.queries > queries + 10), 'samples are running');
  await fx.stop();
  t.ok(await until(10_000, async () => (await monitorBackends(cluster.primary)) === 0 && (await monitorBackends(replica)) === 0),
    `no monitor connection is left (${await monitorBackends(cluster.primary)} on the primary, ${await monitorBackends(replica)} on the replica)`);
});
