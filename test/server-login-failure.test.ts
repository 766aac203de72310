/**
 * A server refusing pgsplit's own login (a wrong password in the server URL) is reported as pgsplit's
 * problem: SQLSTATE 08001, the server and its config key named, no password, logged at error level; not
 * relayed as the server's 28P01, which would tell the client that its own password is wrong. A server
 * refusing the client (a database that does not exist) is still relayed, and logged with the client's
 * address.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { startCluster } from './fixtures/proxy-fixture.js';
import { resolveConfig } from '../src/config/load-config.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { ServerConnection } from '../src/server/server-connection.js';
import { ServerNodes } from '../src/server/server-nodes.js';
import { PgsplitError } from '../src/errors.js';

t.setTimeout(180_000);

type PgError = Error & { code?: string; severity?: string; hint?: string };
const ROLE = { name: 'app', password: 'right-Pw-1', method: 'scram-sha-256' } as const;
const WRONG = 'wrong-Pw-9931';

const cluster = await startCluster(t, { replicas: 2, users: [ROLE] });
const url = (port: number, password: string): string => `postgres://${ROLE.name}:${password}@127.0.0.1:${port}/postgres`;

async function proxyWith(t: Parameters<typeof startCluster>[0], raw: Record<string, unknown>, lines: Array<Record<string, unknown>>): Promise<number> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const proxy = new ProxyServer(resolveConfig({ listen: '127.0.0.1:0', ...raw }), pino({ level: 'info' }, sink));
  t.teardown(() => proxy.close());
  return (await proxy.listen()).port;
}

async function connectError(port: number, opts: { database?: string; options?: string } = {}): Promise<PgError | undefined> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: ROLE.name, database: opts.database ?? 'postgres', options: opts.options });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.end();
    return undefined;
  } catch (e) {
    await c.end().catch(() => undefined);
    return e as PgError;
  }
}

t.test("a wrong password in the primary's URL: 08001 naming primary, logged at error level", async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const port = await proxyWith(t, {
    primary: url(cluster.primary.port, WRONG),
    replicas: cluster.replicas.map((r) => url(r.port, ROLE.password)),
  }, lines);
  for (const [label, options] of [['untagged', undefined], ['tagged', '-c pgsplit.route=replica']] as const) {
    const e = await connectError(port, { options });
    t.equal(e?.code, '08001', `${label}: SQLSTATE 08001, not the server's 28P01 (${e?.message})`);
    t.equal(e?.severity, 'FATAL');
    t.match(e?.message ?? '', /pgsplit could not log in to server primary as "app"/, `${label}: says it is pgsplit's login, and to which server`);
    t.match(e?.message ?? '', /\(primary in the pgsplit config\)/, `${label}: names the config key`);
    t.match(e?.message ?? '', /password authentication failed for user "app"/, `${label}: with what the server said`);
    t.match(e?.hint ?? '', /not your connection: the operator must fix the user and password in the URL of primary, then restart pgsplit/, `${label}: the hint says whose it is to fix`);
    t.notMatch(`${e?.message} ${e?.hint}`, new RegExp(WRONG), `${label}: no password`);
  }
  const logged = lines.filter((l) => l.msg === 'client rejected during startup');
  t.equal(logged.length, 2, 'both logged');
  t.ok(logged.every((l) => l.level === 50 && l.code === '08001' && /^127\.0\.0\.1:\d+$/.test(String(l.client))), 'at error level, with the SQLSTATE and the client address');
  t.notOk(JSON.stringify(lines).includes(WRONG), 'no log line holds the password');
});

t.test("a wrong password in a replica's URL: the connection error names the replica and replicas[i]", async (t) => {
  const cfg = resolveConfig({
    listen: '127.0.0.1:0',
    primary: url(cluster.primary.port, ROLE.password),
    replicas: [url(cluster.replicas[0]!.port, ROLE.password), { url: url(cluster.replicas[1]!.port, WRONG), name: 'east' }],
  });
  const nodes = new ServerNodes(cfg.primary, cfg.replicas);
  const e = await ServerConnection.connect(ServerNodes.target(nodes.replicas[1]!), { user: 'someone', database: 'postgres' }, 5000).then(
    (c) => {
      c.close();
      return null;
    },
    (err: unknown) => err,
  );
  t.ok(e instanceof PgsplitError, 'a pgsplit error, not the server\'s relayed');
  const pe = e as PgsplitError;
  t.equal(pe.sqlState, '08001');
  t.equal(pe.code, 'SERVER_LOGIN_FAILED');
  t.match(pe.message, /log in to server east as "app" .*\(replicas\[1\] in the pgsplit config\)/);
  t.match(pe.hint ?? '', /URL of replicas\[1\], then reload pgsplit/);
  t.notMatch(pe.message, new RegExp(WRONG));
  const ok = await ServerConnection.connect(ServerNodes.target(nodes.replicas[0]!), { user: 'someone', database: 'postgres' }, 5000);
  t.ok(ok.backendPid > 0, 'the right password logs in');
  ok.close();
});

t.test('a database that does not exist: the server\'s 3D000 is relayed, and logged with the client address', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const port = await proxyWith(t, { primary: url(cluster.primary.port, ROLE.password), replicas: [] }, lines);
  const e = await connectError(port, { database: 'no_such_db' });
  t.equal(e?.code, '3D000', `the client gets the server's answer: ${e?.message}`);
  t.match(e?.message ?? '', /database "no_such_db" does not exist/);
  const line = lines.find((l) => l.msg === 'client rejected during startup');
  t.match(line, { level: 30, code: '3D000', database: 'no_such_db', user: 'app', client: /^127\.0\.0\.1:\d+$/, err: /does not exist/ }, 'logged (info: the client asked for it)');
});
