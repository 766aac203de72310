import t from 'tap';
import { join } from 'node:path';
import { ConfigError } from '../src/errors.js';
import { DEFAULT_CONFIG, type PgsplitConfig } from '../src/config/config.js';
import { loadConfig, loadRoutingPolicy, maskUrl, resolveConfig, type ConfigOverrides } from '../src/config/load-config.js';
import { parseDuration, parseSize } from '../src/config/config-values.js';
import { parseListenAddress } from '../src/config/listen-address.js';
import { passwordKind } from '../src/config/users-config.js';
import { suggest } from '../src/config/suggest.js';

/** A word that ends a message telling the reader what to do. */
const FIX_RE = /\b(did you mean|write|use|add|set|remove|pass|put|give|keep|copy|quote|export|fix|check|make|encode|percent-encode|list)\b/;

function catchConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw new Error(`expected a ConfigError, got ${String(err)}`);
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

const PRIMARY = 'postgres://app:pw@db1:5432/app';

t.test('a complete file resolves to the camelCase model', async (t) => {
  const dir = t.testdir({
    'pgsplit.yaml': `
listen: "0.0.0.0:7432"
primary: postgres://app:s3cret@db-primary:5433/appdb
replicas:
  - postgresql://app:s3cret@db-replica-1/appdb
  - url: postgres://ro%40corp:p%2Fw@db-replica-2:6543/appdb?sslmode=prefer
    name: east
    weight: 3
users:
  - name: alice
    password: wonderland
  - name: bob
    password: "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$${'A'.repeat(43)}=:${'B'.repeat(43)}="
auth:
  method: scram-sha-256
routing:
  application_names: ["reporting-*", "metabase?"]
  default: replica
  writing_functions: [audit_touch, app.log_access]
  read_only_functions: [report_totals, reporting.monthly, '"MixedCase"']
  unknown_functions: replica
  transactions: primary
limits:
  max_message_size: 512kB
  max_client_connections: 50
  max_user_connections: 10
  idle_in_transaction_timeout: 1min
  max_pending_bytes: 1MB
  startup_timeout: 2s
  connect_timeout: 750ms
pool:
  mode: session
  size: 50
  min_idle: 5
  max_client_wait: 30s
  server_idle_timeout: 0
  server_lifetime: 2h
  prepared_statements: 500
metrics:
  listen: "[::1]:9187"
log:
  level: debug
`,
  });
  const cfg = loadConfig({ file: join(dir, 'pgsplit.yaml'), env: {} });
  const expected: PgsplitConfig = {
    listen: { host: '0.0.0.0', port: 7432 },
    primary: {
      name: 'primary', url: 'postgres://app:s3cret@db-primary:5433/appdb',
      host: 'db-primary', port: 5433, user: 'app', password: 's3cret', database: 'appdb', weight: 1, tls: { mode: 'disable' },
    },
    replicas: [
      {
        name: 'replica1', url: 'postgresql://app:s3cret@db-replica-1/appdb',
        host: 'db-replica-1', port: 5432, user: 'app', password: 's3cret', database: 'appdb', weight: 1, tls: { mode: 'disable' },
      },
      {
        name: 'east', url: 'postgres://ro%40corp:p%2Fw@db-replica-2:6543/appdb?sslmode=prefer',
        host: 'db-replica-2', port: 6543, user: 'ro@corp', password: 'p/w', database: 'appdb', weight: 3, tls: { mode: 'prefer' },
      },
    ],
    users: [
      { name: 'alice', password: 'wonderland' },
      { name: 'bob', password: `SCRAM-SHA-256$4096:c2FsdHNhbHQ=$${'A'.repeat(43)}=:${'B'.repeat(43)}=` },
    ],
    databases: {},
    auth: { method: 'scram-sha-256' },
    tls: { mode: 'disable', certFile: null, keyFile: null, certPem: null, keyPem: null, caFile: null, caPem: null },
    routing: {
      applicationNames: ['reporting-*', 'metabase?'],
      default: 'replica',
      writingFunctions: ['audit_touch', 'app.log_access'],
      readOnlyFunctions: ['report_totals', 'reporting.monthly', '"MixedCase"'],
      unknownFunctions: 'replica',
      maxLagMs: 1000,
      readYourWritesTimeoutMs: 200,
      whenNoReplica: 'primary',
      transactions: 'primary',
    },
    monitor: { intervalMs: 100, timeoutMs: 1000, rise: 3, lagIntervalMs: 10, fastIntervalMs: 2, user: null, password: null },
    limits: {
      maxMessageSize: 512 * 1024, maxClientConnections: 50, maxUserConnections: 10, idleInTransactionTimeoutMs: 60_000, maxPendingBytes: 1024 * 1024,
      startupTimeoutMs: 2000, connectTimeoutMs: 750, shutdownGraceMs: 30_000,
    },
    pool: {
      mode: 'session', size: 50, minIdle: 5, maxClientWaitMs: 30_000, serverIdleTimeoutMs: 0, serverLifetimeMs: 7_200_000, preparedStatements: 500,
    },
    metrics: { listen: { host: '::1', port: 9187 } },
    admin: { users: [] },
    log: { level: 'debug' },
  };
  t.same(cfg, expected);
  t.strictSame(cfg, expected);
});

t.test('a file with only primary gets every default', async (t) => {
  const dir = t.testdir({ 'min.yaml': `primary: ${PRIMARY}\n` });
  const cfg = loadConfig({ file: join(dir, 'min.yaml') });
  t.strictSame(cfg.listen, { host: '127.0.0.1', port: 6432 });
  t.strictSame(cfg.replicas, []);
  t.strictSame(cfg.users, []);
  t.equal(cfg.auth.method, 'scram-sha-256');
  t.strictSame(cfg.routing, {
    applicationNames: [], default: 'primary', writingFunctions: [], readOnlyFunctions: [], unknownFunctions: 'primary',
    maxLagMs: 1000, readYourWritesTimeoutMs: 200, whenNoReplica: 'primary', transactions: 'replica-until-write',
  });
  t.strictSame(cfg.monitor, { intervalMs: 100, timeoutMs: 1000, rise: 3, lagIntervalMs: 10, fastIntervalMs: 2, user: null, password: null });
  t.strictSame(cfg.databases, {});
  t.strictSame(cfg.limits, {
    maxMessageSize: 64 * 1024 * 1024, maxClientConnections: 1000, maxUserConnections: 0, idleInTransactionTimeoutMs: 0, maxPendingBytes: 4 * 1024 * 1024,
    startupTimeoutMs: 10000, connectTimeoutMs: 5000, shutdownGraceMs: 30000,
  });
  t.strictSame(cfg.pool, {
    mode: 'transaction', size: 20, minIdle: 0, maxClientWaitMs: 120_000, serverIdleTimeoutMs: 600_000, serverLifetimeMs: 3_600_000, preparedStatements: 200,
  }, "PgBouncer's defaults, in transaction mode");
  t.equal(cfg.metrics.listen, null);
  t.equal(cfg.log.level, 'info');
  t.strictSame(cfg.primary, { name: 'primary', url: PRIMARY, host: 'db1', port: 5432, user: 'app', password: 'pw', database: 'app', weight: 1, tls: { mode: 'disable' } });
  // the resolved config shares nothing with the frozen defaults
  cfg.replicas.push(cfg.primary);
  cfg.routing.applicationNames.push('x');
  t.equal(DEFAULT_CONFIG.replicas.length, 0);
  t.equal(DEFAULT_CONFIG.routing.applicationNames.length, 0);
});

t.test('DEFAULT_CONFIG', async (t) => {
  t.ok(Object.isFrozen(DEFAULT_CONFIG));
  t.ok(Object.isFrozen(DEFAULT_CONFIG.limits));
  t.equal(DEFAULT_CONFIG.limits.maxMessageSize, 67108864);
  t.equal(DEFAULT_CONFIG.listen.port, 6432);
  t.equal(DEFAULT_CONFIG.metrics.listen, null);
});

t.test('empty file, nulls and empty sections mean defaults', async (t) => {
  const dir = t.testdir({ 'empty.yaml': '', 'nulls.yaml': `primary: ${PRIMARY}\nreplicas:\nusers:\nrouting:\nlimits:\nmetrics:\nlog:\nauth:\n` });
  const e = catchConfigError(() => loadConfig({ file: join(dir, 'empty.yaml') }));
  t.equal(e.key, 'primary');
  const cfg = loadConfig({ file: join(dir, 'nulls.yaml') });
  t.strictSame(cfg.replicas, []);
  t.equal(cfg.metrics.listen, null);
  t.equal(cfg.log.level, 'info');
});

t.test('URL details', async (t) => {
  const r = (url: unknown) => resolveConfig({ primary: url }).primary;
  t.strictSame(r('postgres://db'), { name: 'primary', url: 'postgres://db', host: 'db', port: 5432, weight: 1, tls: { mode: 'disable' } });
  t.strictSame(r('postgres://u@db/'), { name: 'primary', url: 'postgres://u@db/', host: 'db', port: 5432, user: 'u', weight: 1, tls: { mode: 'disable' } });
  t.match(r('postgres://u:p@[::1]:5440/d'), { host: '::1', port: 5440, user: 'u', password: 'p', database: 'd' });
  t.match(r('postgres://u:p%20q@h/my%20db'), { password: 'p q', database: 'my db' });
  t.match(r('postgres://h/d?sslmode=disable'), { host: 'h' });
  t.match(r('postgres://h/d?sslmode=allow'), { host: 'h', tls: { mode: 'allow' } });
  t.match(r('postgres://h/d?sslmode=require'), { host: 'h', tls: { mode: 'require' } });
  t.match(r('  postgres://h/d  '), { host: 'h', url: 'postgres://h/d' });
  t.match(r({ url: 'postgres://h/d', name: 'main' }), { name: 'main', host: 'h' });
});

t.test('sizes and durations', async (t) => {
  t.equal(parseSize(1024), 1024);
  t.equal(parseSize('512kB'), 524288);
  t.equal(parseSize('64MB'), 67108864);
  t.equal(parseSize('64 MiB'), 67108864);
  t.equal(parseSize('1GB'), 1073741824);
  t.equal(parseSize('2048'), 2048);
  t.ok(Number.isNaN(parseSize('64XB')));
  t.ok(Number.isNaN(parseSize('lots')));
  t.ok(Number.isNaN(parseSize(1.5)));
  t.equal(parseDuration(2500), 2500);
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('10s'), 10000);
  t.equal(parseDuration('1min'), 60000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('1h'), 3600000);
  t.ok(Number.isNaN(parseDuration('10 parsecs')));
  t.ok(Number.isNaN(parseDuration(true)));
  const cfg = resolveConfig({ primary: PRIMARY, limits: { max_message_size: 1048576, startup_timeout: 250, connect_timeout: '1min' } });
  t.equal(cfg.limits.maxMessageSize, 1048576);
  t.equal(cfg.limits.startupTimeoutMs, 250);
  t.equal(cfg.limits.connectTimeoutMs, 60000);
  t.equal(resolveConfig({ primary: PRIMARY, limits: { max_message_size: '1GB' } }).limits.maxMessageSize, 1073741824);
});

t.test('listen addresses', async (t) => {
  t.strictSame(parseListenAddress('127.0.0.1:6432'), { host: '127.0.0.1', port: 6432 });
  t.strictSame(parseListenAddress('[::1]:6432'), { host: '::1', port: 6432 });
  t.strictSame(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  t.strictSame(parseListenAddress(7000), { host: '127.0.0.1', port: 7000 });
  t.strictSame(parseListenAddress('7000'), { host: '127.0.0.1', port: 7000 });
  t.strictSame(resolveConfig({ primary: PRIMARY, listen: '[::1]:6500' }).listen, { host: '::1', port: 6500 });
  // with users configured any address is allowed
  t.strictSame(
    resolveConfig({ primary: PRIMARY, listen: '0.0.0.0:6432', users: [{ name: 'a', password: 'b' }] }).listen,
    { host: '0.0.0.0', port: 6432 },
  );
});

t.test('password kinds', async (t) => {
  const good = `SCRAM-SHA-256$4096:c2FsdA==$${Buffer.alloc(32, 1).toString('base64')}:${Buffer.alloc(32, 2).toString('base64')}`;
  t.equal(passwordKind(good), 'scram-sha-256');
  t.equal(passwordKind('SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB'), 'bad-scram');
  t.equal(passwordKind('md5' + 'a'.repeat(32)), 'md5');
  t.equal(passwordKind('md5isnotahash'), 'plain');
  t.equal(passwordKind('hunter2'), 'plain');
  t.equal(resolveConfig({ primary: PRIMARY, auth: { method: 'md5' }, users: [{ name: 'x', password: 'md5' + 'f'.repeat(32) }] }).auth.method, 'md5');
  // a SCRAM verifier under md5 is accepted (that user logs in with SCRAM, as PostgreSQL does)
  t.equal(resolveConfig({ primary: PRIMARY, auth: { method: 'md5' }, users: [{ name: 'y', password: good }] }).users[0]?.password, good);
});

t.test('suggest', async (t) => {
  t.equal(suggest('aplication_names', ['application_names', 'default']), 'application_names');
  t.equal(suggest('applicationNames', ['application_names', 'default']), 'application_names');
  t.equal(suggest('zzz', ['listen', 'log']), undefined);
  t.equal(suggest('warning', ['info', 'warn', 'error']), 'warn');
  t.equal(suggest('foo', ['listen', 'log']), undefined);
});

interface ErrorCase { name: string; raw: unknown; overrides?: ConfigOverrides; key: string; message: RegExp | string }

const ERROR_CASES: ErrorCase[] = [
  { name: 'missing primary', raw: {}, key: 'primary', message: /is missing; pass --primary postgres:\/\/.* or set primary: in the config file/ },
  {
    name: 'replica that is not a URL', raw: { primary: PRIMARY, replicas: ['postgres://h2/app', 'localhost:5433'] }, key: 'replicas[1]',
    message: 'config replicas[1]: "localhost:5433" is not a PostgreSQL URL; write postgres://USER:PASSWORD@HOST:PORT/DATABASE',
  },
  {
    name: 'typo in a nested key', raw: { primary: PRIMARY, routing: { aplication_names: ['x'] } }, key: 'routing.aplication_names',
    message: 'config routing.aplication_names: unknown key routing.aplication_names; did you mean application_names?',
  },
  { name: 'typo in a top-level key', raw: { primary: PRIMARY, replica: [] }, key: 'replica', message: /did you mean replicas\?/ },
  { name: 'camelCase key', raw: { primary: PRIMARY, limits: { maxMessageSize: 10 } }, key: 'limits.maxMessageSize', message: /did you mean max_message_size\?/ },
  { name: 'nested key at the top level', raw: { primary: PRIMARY, max_message_size: '1MB' }, key: 'max_message_size', message: /belongs under limits:, write limits: \{max_message_size: \.\.\.\}/ },
  { name: 'unknown key with no near match', raw: { primary: PRIMARY, zzz: 1 }, key: 'zzz', message: /unknown key zzz; remove it or use one of the keys allowed at the top level: listen, primary, replicas/ },
  { name: 'unknown key in a server mapping', raw: { primary: { url: PRIMARY, wieght: 2 } }, key: 'primary.wieght', message: /did you mean weight\?/ },
  { name: 'unknown key in a user', raw: { primary: PRIMARY, users: [{ name: 'a', pasword: 'x' }] }, key: 'users[0].pasword', message: /did you mean password\?/ },
  { name: 'root is a list', raw: ['primary'], key: '(file)', message: /must be a YAML mapping.*see pgsplit --help/ },
  { name: 'primary is a number', raw: { primary: 5432 }, key: 'primary', message: /is a number, not a PostgreSQL URL; write postgres:\/\// },
  { name: 'primary mapping without url', raw: { primary: { name: 'x' } }, key: 'primary.url', message: /is missing; write url: postgres:\/\// },
  { name: 'primary url not a string', raw: { primary: { url: 5 } }, key: 'primary.url', message: /must be a string.*write postgres:\/\// },
  { name: 'bad weight', raw: { primary: PRIMARY, replicas: [{ url: PRIMARY, weight: -1 }] }, key: 'replicas[0].weight', message: /write a number of 0 or more/ },
  { name: 'bad server name', raw: { primary: PRIMARY, replicas: [{ url: PRIMARY, name: 'a b' }] }, key: 'replicas[0].name', message: /use 1-63 letters/ },
  { name: 'duplicate server name', raw: { primary: PRIMARY, replicas: [{ url: PRIMARY, name: 'primary' }] }, key: 'replicas[0]', message: /already used by primary; give this replica its own name/ },
  { name: 'duplicate default-looking name', raw: { primary: PRIMARY, replicas: [PRIMARY, { url: PRIMARY, name: 'replica1' }] }, key: 'replicas[1]', message: /already used by replicas\[0\]/ },
  { name: 'replicas not a list', raw: { primary: PRIMARY, replicas: PRIMARY }, key: 'replicas', message: /must be a list, not a string; write replicas: \[/ },
  { name: 'wrong scheme', raw: { primary: 'mysql://u@h/d' }, key: 'primary', message: /is not a PostgreSQL URL; write postgres:\/\// },
  { name: 'no host', raw: { primary: 'postgres:///app' }, key: 'primary', message: /has no host; write postgres:\/\// },
  { name: 'unix socket', raw: { primary: 'postgres://%2Fvar%2Frun%2Fpostgresql/app' }, key: 'primary', message: /Unix-domain socket.*use a TCP host/ },
  { name: 'several hosts', raw: { primary: 'postgres://h1,h2/app' }, key: 'primary', message: /several hosts; give one host per URL/ },
  { name: 'port 0', raw: { primary: 'postgres://h:0/app' }, key: 'primary', message: /port 0; write .* with a port from 1 to 65535/ },
  { name: 'port too big', raw: { primary: 'postgres://h:70000/app' }, key: 'primary', message: /is not a PostgreSQL URL; write/ },
  { name: 'fragment', raw: { primary: 'postgres://h/app#x' }, key: 'primary', message: /#fragment; remove it/ },
  { name: 'path with parts', raw: { primary: 'postgres://h/a/b' }, key: 'primary', message: /the path is just the database name/ },
  { name: 'sslmode=verify-ca without a root', raw: { primary: 'postgres://h/app?sslmode=verify-ca' }, key: 'primary', message: /sslmode=verify-ca, which needs the certificate authority.*add &sslrootcert=/ },
  { name: 'sslmode=verify-full without a root', raw: { primary: PRIMARY, replicas: ['postgres://h/app?sslmode=verify-full'] }, key: 'replicas[0]', message: /needs the certificate authority/ },
  { name: 'sslrootcert missing', raw: { primary: 'postgres://h/app?sslmode=verify-full&sslrootcert=/nonexistent/root.crt' }, key: 'primary', message: /cannot read the sslrootcert "\/nonexistent\/root.crt": no such file/ },
  { name: 'bad sslmode', raw: { primary: 'postgres://h/app?sslmode=maybe' }, key: 'primary', message: /unknown sslmode; use one of disable, allow, prefer, require, verify-ca, verify-full/ },
  { name: 'tls mode without a certificate', raw: { primary: PRIMARY, tls: { mode: 'require' } }, key: 'tls.mode', message: /needs a certificate; set tls.cert and tls.key/ },
  { name: 'tls cert without key', raw: { primary: PRIMARY, tls: { cert: '/x.crt' } }, key: 'tls.key', message: /is missing: TLS needs both/ },
  { name: 'tls cert unreadable', raw: { primary: PRIMARY, tls: { cert: '/nonexistent/x.crt', key: '/nonexistent/x.key' } }, key: 'tls.cert', message: /cannot read the certificate/ },
  { name: 'tls bad mode', raw: { primary: PRIMARY, tls: { mode: 'verify-full' } }, key: 'tls.mode', message: /verify-full/ },
  { name: 'other query parameter', raw: { primary: 'postgres://h/app?application_name=x' }, key: 'primary', message: /query parameter "application_name".*remove it/ },
  { name: 'badly encoded password', raw: { primary: 'postgres://u:%E0%A4%A@h/app' }, key: 'primary', message: /badly percent-encoded; encode special characters/ },
  { name: 'listen without port', raw: { primary: PRIMARY, listen: 'localhost' }, key: 'listen', message: /has no port; write HOST:PORT, e.g. listen: "127.0.0.1:6432"/ },
  { name: 'listen bare IPv6', raw: { primary: PRIMARY, listen: '::1:6432' }, key: 'listen', message: /put it in brackets: "\[::1\]:6432"/ },
  { name: 'listen port too big', raw: { primary: PRIMARY, listen: '127.0.0.1:70000' }, key: 'listen', message: /port "70000" is not a TCP port; write HOST:PORT/ },
  { name: 'listen without host', raw: { primary: PRIMARY, listen: ':6432' }, key: 'listen', message: /has no host; write 127.0.0.1:PORT/ },
  { name: 'listen mapping', raw: { primary: PRIMARY, listen: { host: 'x', port: 1 } }, key: 'listen', message: /must be a string HOST:PORT, not a mapping; write HOST:PORT/ },
  { name: 'listen is a URL', raw: { primary: PRIMARY, listen: 'postgres://h:5432' }, key: 'listen', message: /is a URL, not an address; write HOST:PORT/ },
  { name: 'bad IPv6 listen', raw: { primary: PRIMARY, listen: '[zz]:6432' }, key: 'listen', message: /write an IPv6 address in brackets/ },
  { name: 'public listen without users', raw: { primary: PRIMARY, listen: '0.0.0.0:6432' }, key: 'listen', message: /not a loopback address, but no users: are configured.*add users:.*or listen on 127\.0\.0\.1/ },
  { name: 'users not a list', raw: { primary: PRIMARY, users: { alice: 'x' } }, key: 'users', message: /must be a list, not a mapping; write users: \[/ },
  { name: 'user not a mapping', raw: { primary: PRIMARY, users: ['alice'] }, key: 'users[0]', message: /must be a mapping with name and password.*write - \{name/ },
  { name: 'user without name', raw: { primary: PRIMARY, users: [{ password: 'x' }] }, key: 'users[0].name', message: /is missing; write name: USER/ },
  { name: 'user name not a string', raw: { primary: PRIMARY, users: [{ name: 1, password: 'x' }] }, key: 'users[0].name', message: /must be a non-empty string, not a number; write name: USER/ },
  { name: 'duplicate user', raw: { primary: PRIMARY, users: [{ name: 'alice', password: 'a' }, { name: 'bob', password: 'b' }, { name: 'alice', password: 'c' }] }, key: 'users[2].name', message: /user "alice" is listed twice \(also users\[0\]\); keep one entry per user/ },
  { name: 'user without password', raw: { primary: PRIMARY, users: [{ name: 'alice' }] }, key: 'users[0].password', message: /is missing for user "alice"; write password:/ },
  { name: 'empty password', raw: { primary: PRIMARY, users: [{ name: 'alice', password: '' }] }, key: 'users[0].password', message: /is empty for user "alice"; write a non-empty password/ },
  { name: 'numeric password', raw: { primary: PRIMARY, users: [{ name: 'alice', password: 123456 }] }, key: 'users[0].password', message: /must be a string, not a number; put the password in quotes/ },
  { name: 'malformed SCRAM verifier', raw: { primary: PRIMARY, users: [{ name: 'a', password: 'SCRAM-SHA-256$4096:xx' }] }, key: 'users[0].password', message: /not a valid SCRAM verifier; copy the whole rolpassword/ },
  { name: 'md5 hash with SCRAM auth', raw: { primary: PRIMARY, users: [{ name: 'a', password: 'md5' + '0'.repeat(32) }] }, key: 'users[0].password', message: /md5 hash, which cannot check SCRAM-SHA-256 logins; write the plaintext password .* or set auth: \{method: md5\}/ },
  { name: 'bad auth method', raw: { primary: PRIMARY, auth: { method: 'password' } }, key: 'auth.method', message: /"password" is not an authentication method; write one of scram-sha-256, md5/ },
  { name: 'auth not a mapping', raw: { primary: PRIMARY, auth: 'md5' }, key: 'auth', message: /must be a mapping, not a string; write auth: \{method: scram-sha-256\}/ },
  // Server logins (users[].server_user / server_password, databases:, monitor.user / password).
  { name: 'server_password without server_user', raw: { primary: PRIMARY, users: [{ name: 'a', password: 'x', server_password: 'y' }] }, key: 'users[0].server_password', message: /needs users\[0\]\.server_user: it is the password of that role; add server_user: ROLE/ },
  { name: 'empty server_user', raw: { primary: PRIMARY, users: [{ name: 'a', password: 'x', server_user: '' }] }, key: 'users[0].server_user', message: /must be a non-empty name, not a string; write server_user: ROLE/ },
  { name: 'SCRAM verifier as server_password', raw: { primary: PRIMARY, users: [{ name: 'a', password: 'x', server_user: 'b', server_password: `SCRAM-SHA-256$4096:c2FsdA==$${'A'.repeat(43)}=:${'B'.repeat(43)}=` }] }, key: 'users[0].server_password', message: /is a SCRAM verifier, which cannot log in to a server .* write role "b"'s plaintext password/ },
  { name: 'typo in server_user', raw: { primary: PRIMARY, users: [{ name: 'a', password: 'x', serveruser: 'b' }] }, key: 'users[0].serveruser', message: /did you mean server_user\?/ },
  { name: 'databases not a mapping', raw: { primary: PRIMARY, databases: ['app'] }, key: 'databases', message: /must be a mapping from the database clients ask for to the one on the servers, not a list; write databases: \{app: nova_prod\}/ },
  { name: 'database mapped to nothing', raw: { primary: PRIMARY, databases: { app: '' } }, key: 'databases.app', message: /must be a non-empty name, not a string; write app: SERVER_DB/ },
  { name: 'database entry without dbname', raw: { primary: PRIMARY, databases: { app: { db: 'x' } } }, key: 'databases.app.db', message: /unknown key databases\.app\.db; a database entry has only dbname/ },
  { name: 'admin database mapped', raw: { primary: PRIMARY, databases: { pgsplit: 'x' } }, key: 'databases.pgsplit', message: /admin console's database and never reaches a server/ },
  { name: 'monitor.password without user', raw: { primary: PRIMARY, monitor: { password: 'x' } }, key: 'monitor.password', message: /needs monitor\.user: it is the password of that role/ },
  { name: 'monitor.user a number', raw: { primary: PRIMARY, monitor: { user: 5 } }, key: 'monitor.user', message: /must be a non-empty name, not a number; write user: ROLE/ },
  { name: 'bad route default', raw: { primary: PRIMARY, routing: { default: 'replicas' } }, key: 'routing.default', message: /write one of primary, replica \(did you mean replica\?\)/ },
  { name: 'application_names not a list', raw: { primary: PRIMARY, routing: { application_names: 'report*' } }, key: 'routing.application_names', message: /must be a list, not a string; write application_names: \["reporting-\*"\]/ },
  { name: 'application_names item', raw: { primary: PRIMARY, routing: { application_names: ['a', 7] } }, key: 'routing.application_names[1]', message: /must be a non-empty string, not a number; write a pattern/ },
  {
    name: 'writing_functions not a list', raw: { primary: PRIMARY, routing: { writing_functions: 'audit_touch' } }, key: 'routing.writing_functions',
    message: 'config routing.writing_functions: must be a list, not a string; write writing_functions: [audit_touch, myschema.log_access]',
  },
  {
    name: 'writing_functions item not a string', raw: { primary: PRIMARY, routing: { writing_functions: ['a', 3] } }, key: 'routing.writing_functions[1]',
    message: /must be a function name, not a number; write a name such as audit_touch/,
  },
  {
    name: 'writing function with a space', raw: { primary: PRIMARY, routing: { writing_functions: ['audit touch'] } }, key: 'routing.writing_functions[0]',
    message: /"audit touch" is not a function name \(unexpected character " "\); write fn or schema\.fn as in SQL/,
  },
  {
    name: 'read-only function with arguments', raw: { primary: PRIMARY, routing: { read_only_functions: ['report_totals(int)'] } }, key: 'routing.read_only_functions[0]',
    message: /is not a function name \(it has an argument list; write the name alone \(it covers every overload\)\)/,
  },
  {
    name: 'read-only function with three parts', raw: { primary: PRIMARY, routing: { read_only_functions: ['db.s.f'] } }, key: 'routing.read_only_functions[0]',
    message: /more than two parts; write name or schema\.name/,
  },
  {
    name: 'read-only function with an open quote', raw: { primary: PRIMARY, routing: { read_only_functions: ['"abc'] } }, key: 'routing.read_only_functions[0]',
    message: /a double quote is not closed/,
  },
  {
    name: 'built-in writing function vouched for', raw: { primary: PRIMARY, routing: { read_only_functions: ['ok_fn', 'pg_catalog.nextval'] } }, key: 'routing.read_only_functions[1]',
    message: `config routing.read_only_functions[1]: "pg_catalog.nextval" is a writing function (on pgsplit's built-in list of writing functions), which never runs on a replica; remove it from read_only_functions`,
  },
  {
    name: 'writing prefix vouched for', raw: { primary: PRIMARY, routing: { read_only_functions: ['LO_GET'] } }, key: 'routing.read_only_functions[0]',
    message: /"LO_GET" is a writing function \(on pgsplit's built-in list/,
  },
  {
    name: 'configured writing function vouched for', raw: { primary: PRIMARY, routing: { writing_functions: ['app.audit'], read_only_functions: ['audit'] } }, key: 'routing.read_only_functions[0]',
    message: /"audit" is a writing function \(listed in routing\.writing_functions\), which never runs on a replica; remove it/,
  },
  {
    name: 'bad unknown_functions', raw: { primary: PRIMARY, routing: { unknown_functions: 'replicas' } }, key: 'routing.unknown_functions',
    message: 'config routing.unknown_functions: "replicas" is not a policy for unknown functions; write one of primary, replica (did you mean replica?)',
  },
  {
    name: 'unknown_functions not a string', raw: { primary: PRIMARY, routing: { unknown_functions: true } }, key: 'routing.unknown_functions',
    message: /true is not a policy for unknown functions; write one of primary, replica/,
  },
  {
    name: 'function policy key at the top level', raw: { primary: PRIMARY, read_only_functions: ['x'] }, key: 'read_only_functions',
    message: /read_only_functions belongs under routing:, write routing: \{read_only_functions: \.\.\.\}/,
  },
  {
    name: 'typo in a function policy key', raw: { primary: PRIMARY, routing: { readonly_functions: ['x'] } }, key: 'routing.readonly_functions',
    message: /did you mean read_only_functions\?/,
  },
  { name: 'bad size', raw: { primary: PRIMARY, limits: { max_message_size: '64XB' } }, key: 'limits.max_message_size', message: /"64XB" is not a size; write a number of bytes or a number with a unit: 512kB, 64MB, 1GB/ },
  { name: 'size too small', raw: { primary: PRIMARY, limits: { max_message_size: 10 } }, key: 'limits.max_message_size', message: /out of range; write a size from 1kB to 1GB/ },
  { name: 'size too large', raw: { primary: PRIMARY, limits: { max_message_size: '2GB' } }, key: 'limits.max_message_size', message: /out of range/ },
  { name: 'bad connection count', raw: { primary: PRIMARY, limits: { max_client_connections: 0 } }, key: 'limits.max_client_connections', message: /write a whole number from 1 to 1000000/ },
  { name: 'connection count as text', raw: { primary: PRIMARY, limits: { max_client_connections: 'many' } }, key: 'limits.max_client_connections', message: /"many" is not a connection count; write a whole number/ },
  { name: 'negative per-user count', raw: { primary: PRIMARY, limits: { max_user_connections: -1 } }, key: 'limits.max_user_connections', message: /write a whole number from 0 to 1000000/ },
  { name: 'idle timeout not a duration', raw: { primary: PRIMARY, limits: { idle_in_transaction_timeout: 'soon' } }, key: 'limits.idle_in_transaction_timeout', message: /"soon" is not a duration/ },
  { name: 'pending bytes not a size', raw: { primary: PRIMARY, limits: { max_pending_bytes: 'lots' } }, key: 'limits.max_pending_bytes', message: /"lots" is not a size/ },
  { name: 'bad duration', raw: { primary: PRIMARY, limits: { startup_timeout: '10 parsecs' } }, key: 'limits.startup_timeout', message: /is not a duration; write milliseconds or a number with a unit: 500ms, 10s, 1min/ },
  { name: 'zero duration', raw: { primary: PRIMARY, limits: { connect_timeout: 0 } }, key: 'limits.connect_timeout', message: /out of range; write a duration from 1ms to 24h, e.g. 5s/ },
  { name: 'unknown pool mode', raw: { primary: PRIMARY, pool: { mode: 'transactions' } }, key: 'pool.mode', message: 'config pool.mode: "transactions" is not a pool mode; write one of transaction, session (did you mean transaction?)' },
  { name: 'statement pooling', raw: { primary: PRIMARY, pool: { mode: 'statement' } }, key: 'pool.mode', message: /"statement" is not a pool mode; write one of transaction, session/ },
  { name: 'pool size 0', raw: { primary: PRIMARY, pool: { size: 0 } }, key: 'pool.size', message: /0 is not a connection count; write a whole number from 1 to 1000000, e\.g\. size: 20/ },
  { name: 'pool size as text', raw: { primary: PRIMARY, pool: { size: 'big' } }, key: 'pool.size', message: /"big" is not a connection count/ },
  { name: 'min_idle over size', raw: { primary: PRIMARY, pool: { size: 4, min_idle: 5 } }, key: 'pool.min_idle', message: 'config pool.min_idle: 5 is more than pool.size (4), and a pool never holds more connections than that; write a min_idle of at most 4, or raise pool.size' },
  { name: 'min_idle over the default size', raw: { primary: PRIMARY, pool: { min_idle: 21 } }, key: 'pool.min_idle', message: /21 is more than pool\.size \(20\)/ },
  { name: 'negative min_idle', raw: { primary: PRIMARY, pool: { min_idle: -1 } }, key: 'pool.min_idle', message: /write a whole number from 0 to 1000000/ },
  { name: 'max_client_wait not a duration', raw: { primary: PRIMARY, pool: { max_client_wait: 'forever' } }, key: 'pool.max_client_wait', message: /"forever" is not a duration; write milliseconds or a number with a unit: 500ms, 120s, 1min/ },
  { name: 'server_lifetime over 24h', raw: { primary: PRIMARY, pool: { server_lifetime: '48h' } }, key: 'pool.server_lifetime', message: /out of range; write a duration from 1ms to 24h, e\.g\. 1h/ },
  { name: 'server_idle_timeout negative', raw: { primary: PRIMARY, pool: { server_idle_timeout: -5 } }, key: 'pool.server_idle_timeout', message: /out of range/ },
  { name: 'prepared_statements 0', raw: { primary: PRIMARY, pool: { prepared_statements: 0 } }, key: 'pool.prepared_statements', message: /0 is not a number of statements; write a whole number from 1 to 100000, e\.g\. prepared_statements: 200/ },
  { name: 'prepared_statements fractional', raw: { primary: PRIMARY, pool: { prepared_statements: 2.5 } }, key: 'pool.prepared_statements', message: /2\.5 is not a number of statements/ },
  { name: "PgBouncer's key name in pool", raw: { primary: PRIMARY, pool: { pool_mode: 'session' } }, key: 'pool.pool_mode', message: "config pool.pool_mode: unknown key pool.pool_mode; pgsplit's name for PgBouncer's pool_mode is pool.mode: write pool: {mode: ...}" },
  { name: "PgBouncer's query_wait_timeout", raw: { primary: PRIMARY, pool: { query_wait_timeout: 120 } }, key: 'pool.query_wait_timeout', message: /is pool\.max_client_wait: write pool: \{max_client_wait: \.\.\.\}/ },
  { name: 'typo in a pool key', raw: { primary: PRIMARY, pool: { server_lifetme: '1h' } }, key: 'pool.server_lifetme', message: /did you mean server_lifetime\?/ },
  { name: 'pool key at the top level', raw: { primary: PRIMARY, server_lifetime: '1h' }, key: 'server_lifetime', message: /server_lifetime belongs under pool:, write pool: \{server_lifetime: \.\.\.\}/ },
  { name: 'pool not a mapping', raw: { primary: PRIMARY, pool: 20 }, key: 'pool', message: /must be a mapping, not a number; write pool: \{mode: transaction, size: 20\}/ },
  { name: 'limits not a mapping', raw: { primary: PRIMARY, limits: [] }, key: 'limits', message: /must be a mapping, not a list; write limits: \{/ },
  { name: 'metrics clash with listen', raw: { primary: PRIMARY, metrics: { listen: '127.0.0.1:6432' } }, key: 'metrics.listen', message: /same address as listen.*give metrics another port/ },
  { name: 'metrics listen invalid', raw: { primary: PRIMARY, metrics: { listen: 'nope' } }, key: 'metrics.listen', message: /has no port; write HOST:PORT, e.g. metrics.listen: "127.0.0.1:9187"/ },
  { name: 'metrics as a string', raw: { primary: PRIMARY, metrics: '127.0.0.1:9187' }, key: 'metrics', message: /must be a mapping, not a string; write metrics: \{listen: "127.0.0.1:9187"\}/ },
  { name: 'bad log level', raw: { primary: PRIMARY, log: { level: 'warning' } }, key: 'log.level', message: /"warning" is not a log level; write one of trace, debug, info, warn, error, fatal, silent \(did you mean warn\?\)/ },
  { name: 'log as a string', raw: { primary: PRIMARY, log: 'debug' }, key: 'log', message: /must be a mapping, not a string; write log: \{level: info\}/ },
  { name: 'bad --primary flag', raw: {}, overrides: { primary: 'db:5432' }, key: 'primary', message: /"db:5432" is not a PostgreSQL URL; write postgres:\/\/USER:PASSWORD@HOST:PORT\/DATABASE \(value given by --primary\)/ },
  { name: 'bad --replica flag', raw: { primary: PRIMARY }, overrides: { replicas: ['postgres://h/app', 'x'] }, key: 'replicas[1]', message: /\(value given by --replica\)/ },
  { name: 'bad --log-level flag', raw: { primary: PRIMARY }, overrides: { logLevel: 'loud' }, key: 'log.level', message: /write one of trace.*\(value given by --log-level\)/ },
  { name: 'bad --listen flag', raw: { primary: PRIMARY }, overrides: { listen: '0.0.0.0' }, key: 'listen', message: /has no port.*\(value given by --listen\)/ },
  { name: 'bad --metrics-listen flag', raw: { primary: PRIMARY }, overrides: { metricsListen: 'x:y' }, key: 'metrics.listen', message: /not a TCP port.*\(value given by --metrics-listen\)/ },
  { name: 'bad --tag-application-name flag', raw: { primary: PRIMARY }, overrides: { applicationNames: [''] }, key: 'routing.application_names[0]', message: /\(value given by --tag-application-name\)/ },
];

t.test('every error names its key and says what to write instead', async (t) => {
  for (const c of ERROR_CASES) {
    const e = catchConfigError(() => resolveConfig(c.raw, c.overrides));
    t.equal(e.key, c.key, `${c.name}: key`);
    if (typeof c.message === 'string') t.equal(e.message, c.message, `${c.name}: message`);
    else t.match(e.message, c.message, `${c.name}: message`);
    t.ok(e.message.startsWith(`config ${c.key}: `), `${c.name}: message starts with the key`);
    t.match(e.message, FIX_RE, `${c.name}: message says what to do`);
    t.equal(e.name, 'ConfigError');
  }
});

t.test('pool: 0 turns the timeouts off; durations take units; the section may be empty', async (t) => {
  const off = resolveConfig({ primary: PRIMARY, pool: { max_client_wait: 0, server_idle_timeout: '0', server_lifetime: 0 } });
  t.match(off.pool, { maxClientWaitMs: 0, serverIdleTimeoutMs: 0, serverLifetimeMs: 0 });
  const units = resolveConfig({ primary: PRIMARY, pool: { max_client_wait: '1.5s', server_idle_timeout: '10min', server_lifetime: 90_000 } });
  t.match(units.pool, { maxClientWaitMs: 1500, serverIdleTimeoutMs: 600_000, serverLifetimeMs: 90_000 });
  t.same(resolveConfig({ primary: PRIMARY, pool: null }).pool, DEFAULT_CONFIG.pool);
  t.same(resolveConfig({ primary: PRIMARY, pool: { size: 1, min_idle: 1 } }).pool.minIdle, 1, 'min_idle may equal size');
  t.ok(Object.isFrozen(DEFAULT_CONFIG.pool));
});

t.test('file errors', async (t) => {
  const dir = t.testdir({
    'syntax.yaml': 'listen: "127.0.0.1:6432"\nreplicas: [\n  a: b: c\nprimary: postgres://app:TopSecret1@h/app\n',
    'ipv6.yaml': `primary: ${PRIMARY}\nlisten: [::1]:6432\n`,
    'dup.yaml': `primary: ${PRIMARY}\nprimary: ${PRIMARY}\n`,
    'tabs.yaml': 'primary:\n\t- x\n',
    sub: {},
  });
  const syntax = catchConfigError(() => loadConfig({ file: join(dir, 'syntax.yaml') }));
  t.equal(syntax.key, '(file)');
  t.match(syntax.message, `${join(dir, 'syntax.yaml')} line 3`);
  t.match(syntax.message, /fix the YAML syntax there/);
  t.notMatch(syntax.message, 'TopSecret1');
  t.notMatch(syntax.message, '\n');

  const ipv6 = catchConfigError(() => loadConfig({ file: join(dir, 'ipv6.yaml') }));
  t.equal(ipv6.key, '(file)');
  t.match(ipv6.message, /line 2.*IPv6 addresses must be quoted, e.g. listen: "\[::1\]:6432"/);

  const dup = catchConfigError(() => loadConfig({ file: join(dir, 'dup.yaml') }));
  t.equal(dup.key, '(file)');
  t.match(dup.message, /line 2.*unique/);

  const tabs = catchConfigError(() => loadConfig({ file: join(dir, 'tabs.yaml') }));
  t.equal(tabs.key, '(file)');
  t.match(tabs.message, /tabs\.yaml line 2/);

  const missing = catchConfigError(() => loadConfig({ file: join(dir, 'nope.yaml') }));
  t.equal(missing.key, '(file)');
  t.match(missing.message, /cannot read .*nope\.yaml: no such file; check the path given to --config/);

  const isDir = catchConfigError(() => loadConfig({ file: join(dir, 'sub') }));
  t.match(isDir.message, /is a directory; give the path of the YAML file/);

  const unknown = catchConfigError(() => loadConfig({ file: join(dir, 'x.yaml') }));
  t.equal(unknown.key, '(file)');
});

t.test('passwords never appear in error messages', async (t) => {
  const SECRET = 'Hunter2Secret';
  const enc = encodeURIComponent(SECRET);
  const dir = t.testdir({
    'syntax.yaml': `primary: postgres://app:${SECRET}@h/app\nreplicas: [postgres://app:${SECRET}@h2/app\n`,
    'syntax2.yaml': `users:\n  - {name: a, password: ${SECRET}\n`,
    'env.yaml': `primary: postgres://app:${SECRET}@h/\${MISSING_HOST}\n`,
  });
  const cases: Array<() => unknown> = [
    () => resolveConfig({ primary: `postgres://app:${SECRET}@h:99999/app` }),
    () => resolveConfig({ primary: `postgres://app:${SECRET}@h/app?sslmode=maybe` }),
    () => resolveConfig({ primary: `postgres://app:${SECRET}@h/app?password=${SECRET}` }),
    () => resolveConfig({ primary: `postgres://h/app?password=${SECRET}` }),
    () => resolveConfig({ primary: `postgres://app:${SECRET}@h/app#frag` }),
    () => resolveConfig({ primary: `postgres://app:${SECRET}@/app` }),
    () => resolveConfig({ primary: `mysql://app:${SECRET}@h/app` }),
    () => resolveConfig({ primary: `app:${SECRET}@h:5432` }),
    () => resolveConfig({ primary: `postgres://app:${SECRET}/x@h/app` }),
    () => resolveConfig({ primary: `postgres://app:${SECRET}@h/app`, replicas: [`postgres://app:${SECRET}@h,h2/app`] }),
    () => resolveConfig({ primary: `postgres://app:${enc}@h/a/b` }),
    () => resolveConfig({ primary: PRIMARY, listen: `postgres://app:${SECRET}@h:5432` }),
    () => resolveConfig({ primary: PRIMARY, users: [{ name: 'a', password: SECRET }, { name: 'a', password: SECRET }] }),
    () => resolveConfig({ primary: PRIMARY, users: [{ name: 'a', password: `SCRAM-SHA-256$${SECRET}` }] }),
    () => resolveConfig({ primary: PRIMARY, users: [{ name: 'a', password: `md5${'a'.repeat(32)}` }] }),
    () => resolveConfig({ primary: PRIMARY, users: [{ name: 'a', password: SECRET, extra: SECRET }] }),
    () => resolveConfig({ primary: PRIMARY, users: [{ name: 'a', password: SECRET, server_password: SECRET }] }),
    () => resolveConfig({ primary: PRIMARY, users: [{ name: 'a', password: SECRET, server_user: 'b', server_password: `SCRAM-SHA-256$${SECRET}` }] }),
    () => resolveConfig({ primary: PRIMARY, monitor: { password: SECRET } }),
    () => resolveConfig({ primary: PRIMARY, monitor: { user: 'w', password: 5 } }),
    () => resolveConfig({}, { primary: `postgres://app:${SECRET}@db:5432/app?sslmode=verify-ca` }),
    () => resolveConfig({}, { primary: `postgres://app:${SECRET}@db:0/app` }),
    () => resolveConfig({ primary: PRIMARY }, { replicas: [`app:${SECRET}@replica`] }),
    () => loadConfig({ file: join(dir, 'syntax.yaml') }),
    () => loadConfig({ file: join(dir, 'syntax2.yaml') }),
    () => loadConfig({ file: join(dir, 'env.yaml'), env: {} }),
  ];
  for (const [i, fn] of cases.entries()) {
    const e = catchConfigError(fn);
    t.notMatch(e.message, SECRET, `case ${i}: ${e.message}`);
    t.notMatch(e.message, enc.slice(0, 8), `case ${i}: encoded`);
  }
  // masked URLs keep the rest of the URL so the reader can find it
  const e = catchConfigError(() => resolveConfig({ primary: `postgres://app:${SECRET}@h/app?sslmode=verify-full` }));
  t.match(e.message, '"postgres://app:****@h/app?sslmode=verify-full"');
});

t.test('maskUrl', async (t) => {
  t.equal(maskUrl('postgres://alice:s3cret@db:5432/app'), 'postgres://alice:****@db:5432/app');
  t.equal(maskUrl('postgresql://alice:p%40ss@db/app'), 'postgresql://alice:****@db/app');
  t.equal(maskUrl('postgres://alice:p@ss@db/app'), 'postgres://alice:****@db/app');
  t.equal(maskUrl('postgres://alice@db/app'), 'postgres://alice@db/app');
  t.equal(maskUrl('postgres://db:5432/app'), 'postgres://db:5432/app');
  t.equal(maskUrl('postgres://db/app?password=x&sslmode=disable'), 'postgres://db/app?password=****&sslmode=disable');
  t.equal(maskUrl('host=db password=secret user=a'), 'host=db password=**** user=a');
  t.equal(maskUrl('alice:secret@db'), 'alice:****@db');
  t.equal(maskUrl('localhost:5433'), 'localhost:5433');
  t.equal(maskUrl(''), '');
});

t.test('flags override the file', async (t) => {
  const dir = t.testdir({
    'base.yaml': `
listen: "127.0.0.1:7000"
primary: postgres://app:pw@file-primary/app
replicas:
  - postgres://app:pw@file-r1/app
  - postgres://app:pw@file-r2/app
routing:
  application_names: ["from-file-*"]
  default: replica
log:
  level: warn
metrics:
  listen: "127.0.0.1:9000"
users:
  - {name: fileuser, password: x}
`,
  });
  const file = join(dir, 'base.yaml');
  const base = loadConfig({ file });
  t.equal(base.primary.host, 'file-primary');
  t.equal(base.replicas.length, 2);

  const cfg = loadConfig({
    file,
    overrides: {
      listen: '127.0.0.1:7100',
      primary: 'postgres://flag:pw@flag-primary:5440/app',
      replicas: ['postgres://flag@flag-r1/app'],
      metricsListen: '127.0.0.1:9100',
      logLevel: 'trace',
      applicationNames: ['flag-*', 'other'],
      users: [{ name: 'flaguser', password: 'y' }],
    },
  });
  t.strictSame(cfg.listen, { host: '127.0.0.1', port: 7100 });
  t.match(cfg.primary, { host: 'flag-primary', port: 5440, user: 'flag', name: 'primary' });
  t.equal(cfg.replicas.length, 1, 'replicas from flags replace the file list');
  t.match(cfg.replicas[0], { host: 'flag-r1', name: 'replica1' });
  t.strictSame(cfg.metrics.listen, { host: '127.0.0.1', port: 9100 });
  t.equal(cfg.log.level, 'trace');
  t.strictSame(cfg.routing.applicationNames, ['flag-*', 'other']);
  t.equal(cfg.routing.default, 'replica', 'settings without a flag stay from the file');
  t.strictSame(cfg.users, [{ name: 'flaguser', password: 'y' }]);

  // overrides alone (no file)
  const flagsOnly = loadConfig({ overrides: { primary: PRIMARY, replicas: [PRIMARY], metricsListen: '127.0.0.1:9187' } });
  t.equal(flagsOnly.replicas.length, 1);
  t.strictSame(flagsOnly.metrics.listen, { host: '127.0.0.1', port: 9187 });
  // an empty replicas override empties the list
  t.strictSame(loadConfig({ file, overrides: { replicas: [] } }).replicas, []);
  // the file is not validated more loosely because of flags
  const e = catchConfigError(() => resolveConfig({ primary: PRIMARY, log: 'loud' }, { logLevel: 'info' }));
  t.equal(e.key, 'log');
});

t.test('environment variables in the file', async (t) => {
  const dir = t.testdir({
    'env.yaml': 'primary: postgres://app:${PG_PASS}@${PG_HOST:-localhost}/app\nusers:\n  - {name: a, password: "$${NOT_A_VAR}"}\n',
    'missing.yaml': `primary: ${PRIMARY}\nreplicas:\n  - postgres://app:\${REPLICA_PASS}@r/app\n`,
  });
  const cfg = loadConfig({ file: join(dir, 'env.yaml'), env: { PG_PASS: 'simple' } });
  t.equal(cfg.primary.password, 'simple');
  t.equal(cfg.primary.host, 'localhost');
  t.equal(cfg.users[0]?.password, '${NOT_A_VAR}');
  // the value is inserted literally, so special characters must be URL-encoded by whoever sets it
  const cfg2 = loadConfig({ file: join(dir, 'env.yaml'), env: { PG_PASS: 'pass%2Fword', PG_HOST: 'db9' } });
  t.equal(cfg2.primary.password, 'pass/word');
  t.equal(cfg2.primary.host, 'db9');
  const e = catchConfigError(() => loadConfig({ file: join(dir, 'missing.yaml'), env: {} }));
  t.equal(e.key, 'replicas[0]');
  t.match(e.message, /environment variable REPLICA_PASS, which is not set; export REPLICA_PASS=/);
});

t.test('loadRoutingPolicy reads only the function policy (for pgsplit explain --config)', async (t) => {
  const dir = t.testdir({
    'full.yaml': 'primary: postgres://app:${UNSET_PASSWORD}@db/app\nrouting:\n  read_only_functions: [report_totals, "${FN_SCHEMA:-reporting}.monthly"]\n  writing_functions: [audit_touch]\n  unknown_functions: replica\n',
    'no-primary.yaml': 'routing:\n  read_only_functions: [f1]\n',
    'empty.yaml': '',
    'bad.yaml': 'routing:\n  read_only_functions: [nextval]\n',
    'typo.yaml': 'routng:\n  read_only_functions: [f1]\n',
    'list.yaml': '- a\n',
  });
  t.strictSame(loadRoutingPolicy(join(dir, 'full.yaml'), {}), {
    writingFunctions: ['audit_touch'],
    readOnlyFunctions: ['report_totals', 'reporting.monthly'],
    unknownFunctions: 'replica',
  }, 'an unset variable outside routing: does not matter; one inside is substituted');
  t.strictSame(loadRoutingPolicy(join(dir, 'no-primary.yaml')), { writingFunctions: [], readOnlyFunctions: ['f1'], unknownFunctions: 'primary' });
  t.strictSame(loadRoutingPolicy(join(dir, 'empty.yaml')), { writingFunctions: [], readOnlyFunctions: [], unknownFunctions: 'primary' });
  t.equal(catchConfigError(() => loadRoutingPolicy(join(dir, 'bad.yaml'))).key, 'routing.read_only_functions[0]');
  t.match(catchConfigError(() => loadRoutingPolicy(join(dir, 'typo.yaml'))).message, /did you mean routing\?/);
  t.equal(catchConfigError(() => loadRoutingPolicy(join(dir, 'list.yaml'))).key, '(file)');
  t.equal(catchConfigError(() => loadRoutingPolicy(join(dir, 'nope.yaml'))).key, '(file)');
});

t.test('server logins: users[].server_user / server_password, databases:, monitor.user / password', async (t) => {
  const cfg = resolveConfig({
    primary: 'postgres://db1/app',
    users: [{ name: 'ops', password: 'ops-pw', server_user: 'app', server_password: 'app-pw' }, { name: 'nova', password: 'nova-pw' }],
    databases: { app: 'nova_prod', reports: { dbname: 'nova_reports' } },
    monitor: { user: 'watcher', password: 'watch-pw' },
  });
  t.strictSame(cfg.users, [
    { name: 'ops', password: 'ops-pw', serverUser: 'app', serverPassword: 'app-pw' }, { name: 'nova', password: 'nova-pw' },
  ], 'server_user and server_password on the user that has them');
  t.strictSame(cfg.databases, { app: 'nova_prod', reports: 'nova_reports' }, 'both spellings of a database entry');
  t.equal(cfg.monitor.user, 'watcher');
  t.equal(cfg.monitor.password, 'watch-pw');
  const mapped = resolveConfig({ primary: PRIMARY, users: [{ name: 'ops', password: 'x', server_user: 'app' }] });
  t.strictSame(mapped.users, [{ name: 'ops', password: 'x', serverUser: 'app' }], 'server_user alone (no server_password) is allowed');
  const over = resolveConfig({ primary: PRIMARY }, { users: [{ name: 'ops', password: 'x', serverUser: 'app', serverPassword: 'y' }] });
  t.strictSame(over.users, [{ name: 'ops', password: 'x', serverUser: 'app', serverPassword: 'y' }], 'the users override keeps the mapping');
});

t.test('replica awareness: routing.max_lag, read_your_writes_timeout, when_no_replica, monitor.*', async (t) => {
  const cfg = resolveConfig({
    primary: PRIMARY,
    routing: { max_lag: '250ms', read_your_writes_timeout: '1s', when_no_replica: 'error' },
    monitor: { interval: '50ms', timeout: 2000, rise: 5 },
  });
  t.equal(cfg.routing.maxLagMs, 250);
  t.equal(cfg.routing.readYourWritesTimeoutMs, 1000);
  t.equal(cfg.routing.whenNoReplica, 'error');
  t.strictSame(cfg.monitor, { intervalMs: 50, timeoutMs: 2000, rise: 5, lagIntervalMs: 10, fastIntervalMs: 2, user: null, password: null });
  const fast = resolveConfig({ primary: PRIMARY, monitor: { interval: '5ms' } }).monitor;
  t.strictSame([fast.lagIntervalMs, fast.fastIntervalMs], [5, 2], 'unset, lag_interval is never longer than the interval');
  const set = resolveConfig({ primary: PRIMARY, monitor: { lag_interval: '20ms', fast_interval: '1ms' } }).monitor;
  t.strictSame([set.lagIntervalMs, set.fastIntervalMs], [20, 1], 'monitor.lag_interval and monitor.fast_interval');
  const bad: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ routing: { max_lag: 'soon' } }, 'routing.max_lag', /not a duration/],
    [{ routing: { when_no_replica: 'wait' } }, 'routing.when_no_replica', /primary|error/],
    [{ monitor: { rise: 0 } }, 'monitor.rise', /whole number from 1 to 100/],
    [{ monitor: { interval: '-1s' } }, 'monitor.interval', /duration/],
    [{ monitor: { period: '1s' } }, 'monitor.period', /./],
    [{ monitor: { lag_interval: '0ms' } }, 'monitor.lag_interval', /from 1ms to 24h/],
    [{ monitor: { lag_interval: '200ms' } }, 'monitor.lag_interval', /longer than monitor.interval \(100 ms\); write at most the interval/],
    [{ monitor: { interval: '50ms', fast_interval: '60ms' } }, 'monitor.fast_interval', /longer than monitor.interval \(50 ms\)/],
    [{ monitor: { fast_interval: 'often' } }, 'monitor.fast_interval', /not a duration/],
  ];
  for (const [extra, key, msg] of bad) {
    const e = catchConfigError(() => resolveConfig({ primary: PRIMARY, ...extra }));
    t.match(e.message, key, `${JSON.stringify(extra)}: the message names ${key}`);
    t.match(e.message, msg, `${JSON.stringify(extra)}: and says what to write`);
  }
});
