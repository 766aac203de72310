/**
 * Configuration from the environment: every scalar config key as PGSPLIT_<KEY>, flags over environment
 * over file, errors naming the variable, check-config showing where each value came from, and a pgsplit
 * configured by the environment alone proxying to a real server.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { parseCliArgs } from '../src/config/cli-args.js';
import { envVariable, LIST_KEYS, mistypedEnvVariables, SCALAR_KEYS, settingsFromEnv } from '../src/config/env-config.js';
import { loadConfig, loadConfigWithSources, resolveConfig } from '../src/config/load-config.js';
import { configKeys } from '../src/config/config-keys.js';
import { DEFAULT_CONFIG, type PgsplitConfig } from '../src/config/config.js';
import { ConfigError } from '../src/errors.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { makeTestCerts } from './fixtures/test-certs.js';
import { spawnPgsplit } from './fixtures/pgsplit-process.js';

const execFileP = promisify(execFile);
const PRIMARY = 'postgres://app:s3cret@db-primary:5432/app';

function tmpFile(t: { teardown(fn: () => unknown): void }, name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-env-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

t.test('variable names: the dotted key in capitals, dots as underscores', async (t) => {
  t.equal(envVariable('log.level'), 'PGSPLIT_LOG_LEVEL');
  t.equal(envVariable('routing.max_lag'), 'PGSPLIT_ROUTING_MAX_LAG');
  t.equal(envVariable('listen'), 'PGSPLIT_LISTEN');
  t.equal(envVariable('primary'), 'PGSPLIT_PRIMARY');
  t.equal(envVariable('metrics.listen'), 'PGSPLIT_METRICS_LISTEN');
  t.equal(envVariable('limits.max_client_connections'), 'PGSPLIT_LIMITS_MAX_CLIENT_CONNECTIONS');
});

t.test('every scalar key is settable from the environment and changes the resolved config', async (t) => {
  const certs = await makeTestCerts(t);
  // A non-default value for each key, and how it shows in the resolved config.
  const want: Record<string, [string, (c: PgsplitConfig) => unknown, unknown]> = {
    'listen': ['127.0.0.1:7001', (c) => c.listen, { host: '127.0.0.1', port: 7001 }],
    'primary': ['postgres://app:other@db-two:5433/app', (c) => [c.primary.host, c.primary.port, c.primary.password], ['db-two', 5433, 'other']],
    'auth.method': ['md5', (c) => c.auth.method, 'md5'],
    'tls.mode': ['require', (c) => c.tls.mode, 'require'],
    'tls.cert': [certs.serverCert, (c) => c.tls.certFile, certs.serverCert],
    'tls.key': [certs.serverKey, (c) => c.tls.keyFile, certs.serverKey],
    'tls.ca': [certs.caCert, (c) => c.tls.caFile, certs.caCert],
    'routing.default': ['replica', (c) => c.routing.default, 'replica'],
    'routing.unknown_functions': ['replica', (c) => c.routing.unknownFunctions, 'replica'],
    'routing.max_lag': ['2500ms', (c) => c.routing.maxLagMs, 2500],
    'routing.read_your_writes_timeout': ['1s', (c) => c.routing.readYourWritesTimeoutMs, 1000],
    'routing.when_no_replica': ['error', (c) => c.routing.whenNoReplica, 'error'],
    'routing.transactions': ['primary', (c) => c.routing.transactions, 'primary'],
    'monitor.interval': ['250ms', (c) => c.monitor.intervalMs, 250],
    'monitor.timeout': ['3s', (c) => c.monitor.timeoutMs, 3000],
    'monitor.rise': ['5', (c) => c.monitor.rise, 5],
    'monitor.lag_interval': ['20ms', (c) => c.monitor.lagIntervalMs, 20],
    'monitor.fast_interval': ['3ms', (c) => c.monitor.fastIntervalMs, 3],
    'monitor.user': ['watcher', (c) => c.monitor.user, 'watcher'],
    'monitor.password': ['watch-pw', (c) => c.monitor.password, 'watch-pw'],
    'limits.max_message_size': ['1MB', (c) => c.limits.maxMessageSize, 1024 * 1024],
    'limits.max_client_connections': ['77', (c) => c.limits.maxClientConnections, 77],
    'limits.max_user_connections': ['9', (c) => c.limits.maxUserConnections, 9],
    'limits.idle_in_transaction_timeout': ['1min', (c) => c.limits.idleInTransactionTimeoutMs, 60_000],
    'limits.max_pending_bytes': ['512kB', (c) => c.limits.maxPendingBytes, 512 * 1024],
    'limits.startup_timeout': ['3s', (c) => c.limits.startupTimeoutMs, 3000],
    'limits.connect_timeout': ['2s', (c) => c.limits.connectTimeoutMs, 2000],
    'limits.shutdown_grace': ['5s', (c) => c.limits.shutdownGraceMs, 5000],
    'pool.mode': ['session', (c) => c.pool.mode, 'session'],
    'pool.size': ['7', (c) => c.pool.size, 7],
    'pool.min_idle': ['3', (c) => c.pool.minIdle, 3],
    'pool.max_client_wait': ['0', (c) => c.pool.maxClientWaitMs, 0],
    'pool.server_idle_timeout': ['30s', (c) => c.pool.serverIdleTimeoutMs, 30_000],
    'pool.server_lifetime': ['2h', (c) => c.pool.serverLifetimeMs, 7_200_000],
    'pool.prepared_statements': ['50', (c) => c.pool.preparedStatements, 50],
    'metrics.listen': ['127.0.0.1:9999', (c) => c.metrics.listen, { host: '127.0.0.1', port: 9999 }],
    'log.level': ['debug', (c) => c.log.level, 'debug'],
  };
  t.same(SCALAR_KEYS.map((k) => k.key).sort(), Object.keys(want).sort(), 'the test covers every scalar key');
  t.same([...SCALAR_KEYS.map((k) => k.key), ...LIST_KEYS].sort(), configKeys().sort(), 'every key of the config file is a scalar (settable from the environment) or a list');
  const file = tmpFile(t, 'c.yaml', `primary: ${PRIMARY}\n`);
  const base = loadConfig({ file, env: {} });
  for (const [key, [text, get, expected]] of Object.entries(want)) {
    const variable = envVariable(key);
    t.notSame(get(base), expected, `${key}: the test value differs from the default`);
    // tls.mode needs the certificate; the certificate needs the key.
    const needs: NodeJS.ProcessEnv = key.startsWith('tls.') && key !== 'tls.key' && key !== 'tls.cert'
      ? { PGSPLIT_TLS_CERT: certs.serverCert, PGSPLIT_TLS_KEY: certs.serverKey }
      : key === 'tls.cert' ? { PGSPLIT_TLS_KEY: certs.serverKey } : key === 'tls.key' ? { PGSPLIT_TLS_CERT: certs.serverCert }
      // monitor.password is the password of monitor.user.
      : key === 'monitor.password' ? { PGSPLIT_MONITOR_USER: 'watcher' } : {};
    const { config, sources } = loadConfigWithSources({ file, env: { ...needs, [variable]: text } });
    t.same(get(config), expected, `${variable}=${text} sets ${key}`);
    t.equal(sources.get(key), variable, `${key} is reported as coming from ${variable}`);
  }
});

t.test('precedence: flags over environment over file', async (t) => {
  const file = tmpFile(t, 'c.yaml', `primary: ${PRIMARY}\nlisten: "127.0.0.1:7000"\nrouting: {max_lag: 2s}\nlog: {level: warn}\nlimits: {max_client_connections: 50}\n`);
  const env = { PGSPLIT_LISTEN: '127.0.0.1:7100', PGSPLIT_ROUTING_MAX_LAG: '3s', PGSPLIT_LIMITS_MAX_CLIENT_CONNECTIONS: '60' };
  const fileOnly = loadConfigWithSources({ file, env: {} });
  t.equal(fileOnly.config.listen.port, 7000);
  t.equal(fileOnly.sources.get('listen'), 'file');
  t.equal(fileOnly.sources.get('routing.read_your_writes_timeout'), undefined, 'a key in neither is left at its default');

  const withEnv = loadConfigWithSources({ file, env });
  t.equal(withEnv.config.listen.port, 7100, 'environment over file: listen');
  t.equal(withEnv.config.routing.maxLagMs, 3000, 'environment over file: routing.max_lag');
  t.equal(withEnv.config.limits.maxClientConnections, 60, 'environment over file: a whole number');
  t.equal(withEnv.config.log.level, 'warn', 'the file value stays where no variable is set');
  t.equal(withEnv.sources.get('log.level'), 'file');

  const cmd = parseCliArgs(['--config', file, '--listen', '127.0.0.1:7200', '--max-lag', '4s']);
  if (cmd.command !== 'run') throw new Error('expected run');
  const withFlags = loadConfigWithSources({ file, overrides: cmd.overrides, env });
  t.equal(withFlags.config.listen.port, 7200, 'flag over environment: listen');
  t.equal(withFlags.config.routing.maxLagMs, 4000, 'flag over environment: routing.max_lag');
  t.equal(withFlags.sources.get('listen'), '--listen');
  t.equal(withFlags.sources.get('routing.max_lag'), '--max-lag');
  t.equal(withFlags.sources.get('limits.max_client_connections'), 'PGSPLIT_LIMITS_MAX_CLIENT_CONNECTIONS');

  // A flag replacing a bad environment value: the bad value is not looked at.
  t.equal(loadConfig({ file, overrides: cmd.overrides, env: { PGSPLIT_ROUTING_MAX_LAG: 'soon' } }).routing.maxLagMs, 4000);
  // Without a file: the environment alone.
  const envOnly = loadConfig({ env: { PGSPLIT_PRIMARY: PRIMARY, PGSPLIT_LOG_LEVEL: 'error' } });
  t.equal(envOnly.primary.host, 'db-primary');
  t.equal(envOnly.log.level, 'error');
  // resolveConfig reads no environment unless given settings.
  t.equal(resolveConfig({ primary: PRIMARY }).log.level, DEFAULT_CONFIG.log.level);
  t.equal(resolveConfig({ primary: PRIMARY }, {}, settingsFromEnv({ PGSPLIT_LOG_LEVEL: 'trace' })).log.level, 'trace');
});

t.test('an empty variable counts as unset', async (t) => {
  const c = loadConfig({ env: { PGSPLIT_PRIMARY: PRIMARY, PGSPLIT_LOG_LEVEL: '', PGSPLIT_MONITOR_RISE: '  ' } });
  t.equal(c.log.level, DEFAULT_CONFIG.log.level);
  t.equal(c.monitor.rise, DEFAULT_CONFIG.monitor.rise);
});

t.test('bad values: the error names the key, the variable, and the fix; secrets masked', async (t) => {
  const env = (extra: NodeJS.ProcessEnv) => ({ PGSPLIT_PRIMARY: PRIMARY, ...extra });
  const cases: Array<[NodeJS.ProcessEnv, string, RegExp]> = [
    [{ PGSPLIT_LOG_LEVEL: 'loud' }, 'log.level', /"loud" is not a log level; write one of .*\(value given by PGSPLIT_LOG_LEVEL\)/],
    [{ PGSPLIT_ROUTING_MAX_LAG: 'soon' }, 'routing.max_lag', /"soon" is not a duration.*\(value given by PGSPLIT_ROUTING_MAX_LAG\)/],
    [{ PGSPLIT_MONITOR_RISE: 'three' }, 'monitor.rise', /"three" is not a number of checks.*\(value given by PGSPLIT_MONITOR_RISE\)/],
    [{ PGSPLIT_LIMITS_MAX_CLIENT_CONNECTIONS: '-1' }, 'limits.max_client_connections', /is not a connection count.*\(value given by PGSPLIT_LIMITS_MAX_CLIENT_CONNECTIONS\)/],
    [{ PGSPLIT_LISTEN: 'localhost' }, 'listen', /has no port.*\(value given by PGSPLIT_LISTEN\)/],
    [{ PGSPLIT_METRICS_LISTEN: '127.0.0.1:99999' }, 'metrics.listen', /is not a TCP port.*\(value given by PGSPLIT_METRICS_LISTEN\)/],
    [{ PGSPLIT_LIMITS_MAX_MESSAGE_SIZE: 'huge' }, 'limits.max_message_size', /"huge" is not a size.*\(value given by PGSPLIT_LIMITS_MAX_MESSAGE_SIZE\)/],
  ];
  for (const [extra, key, re] of cases) {
    const e = errorOf(() => loadConfig({ env: env(extra) }));
    t.equal(e.key, key, `${Object.keys(extra)[0]}: error keyed ${key}`);
    t.match(e.message, re);
  }
  const bad = errorOf(() => loadConfig({ env: { PGSPLIT_PRIMARY: 'mysql://root:hunter2@db/app' } }));
  t.match(bad.message, /\(value given by PGSPLIT_PRIMARY\)/);
  t.notMatch(bad.message, /hunter2/, 'the password in the URL is masked');
});

t.test('mistyped variables are noticed; other PGSPLIT_* names (Kubernetes service links) are not', async (t) => {
  const found = mistypedEnvVariables({
    PGSPLIT_LOG_LEVL: 'debug', PGSPLIT_ROUTING_MAXLAG: '1s', PGSPLIT_SERVICE_HOST: '10.0.0.1', PGSPLIT_PORT: 'tcp://10.0.0.1:6432',
    PGSPLIT_PORT_6432_TCP_ADDR: '10.0.0.1', PGSPLIT_LOG_FORMAT: 'json', PGSPLIT_LOG_LEVEL: 'info',
  });
  t.same(found, [
    { variable: 'PGSPLIT_LOG_LEVL', meant: 'PGSPLIT_LOG_LEVEL' },
    { variable: 'PGSPLIT_ROUTING_MAXLAG', meant: 'PGSPLIT_ROUTING_MAX_LAG' },
  ]);
});

t.test('check-config takes the run flags and shows where each value came from', async (t) => {
  t.strictSame(parseCliArgs(['check-config', 'a.yaml', '--log-level', 'debug']), { command: 'check-config', configFile: 'a.yaml', overrides: { logLevel: 'debug' } });
  t.strictSame(parseCliArgs(['check-config', '--primary', PRIMARY]), { command: 'check-config', overrides: { primary: PRIMARY } });
  const file = tmpFile(t, 'c.yaml', `primary: ${PRIMARY}\nrouting: {max_lag: 2s}\nlog: {level: warn}\n`);
  const { stdout } = await execFileP(process.execPath, ['bin/pgsplit.js', 'check-config', file, '--listen', '127.0.0.1:7300'], {
    encoding: 'utf8',
    env: { ...process.env, PGSPLIT_ROUTING_MAX_LAG: '750ms', PGSPLIT_LOG_LEVL: 'x' },
  });
  const row = (key: string) => stdout.split('\n').find((l) => l.trim().startsWith(`${key} `))?.trim().split(/\s{2,}/);
  t.match(stdout, /: ok \(primary primary, 0 replica\(s\), 0 user\(s\)\)/);
  t.same(row('listen'), ['listen', '127.0.0.1:7300', '--listen']);
  t.same(row('routing.max_lag'), ['routing.max_lag', '750ms', 'PGSPLIT_ROUTING_MAX_LAG']);
  t.same(row('log.level'), ['log.level', 'warn', 'file']);
  t.same(row('primary'), ['primary', 'postgres://app:****@db-primary:5432/app', 'file']);
  t.same(row('monitor.rise'), ['monitor.rise', '3', 'default']);
  t.notMatch(stdout, /s3cret/, 'no password in the output');
  t.match(stdout, /note: PGSPLIT_LOG_LEVL is not a pgsplit setting \(did you mean PGSPLIT_LOG_LEVEL\?\)/);

  const failed = await execFileP(process.execPath, ['bin/pgsplit.js', 'check-config', file], {
    encoding: 'utf8', env: { ...process.env, PGSPLIT_LOG_LEVEL: 'loud' },
  }).then(() => null, (e: { code: number; stderr: string }) => e);
  t.equal(failed?.code, 2, 'a bad variable fails check-config with exit code 2');
  t.match(failed?.stderr, /config log\.level: "loud" is not a log level.*\(value given by PGSPLIT_LOG_LEVEL\)/);
});

t.test('pgsplit configured by the environment alone proxies to a real server', async (t) => {
  const cluster = await LocalCluster.start({ replicas: 0 });
  t.teardown(() => cluster.stop());
  const port = await claimFreePort();
  const metricsPort = await claimFreePort();
  const px = await spawnPgsplit(t, [], port, {
    PGSPLIT_PRIMARY: cluster.primary.url(),
    PGSPLIT_LISTEN: `127.0.0.1:${port}`,
    PGSPLIT_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
    PGSPLIT_LOG_LEVEL: 'debug',
  });
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await c.connect();
  t.equal((await c.query<{ n: number }>('SELECT 41 + 1 AS n')).rows[0]?.n, 42, 'a query through the proxy');
  await c.end();
  const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
  t.equal(health.status, 200, 'metrics.listen from PGSPLIT_METRICS_LISTEN serves /healthz');
  t.ok(px.logs.some((l) => l.level === 20), 'log.level from PGSPLIT_LOG_LEVEL: debug lines are written');
  px.child.kill('SIGTERM');
  t.equal(await px.exited, 0);
});
