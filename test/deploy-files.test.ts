/**
 * The deployment files (deploy/): they parse and hold what they must; the configuration they ship is one
 * pgsplit accepts, with the addresses the health check and Prometheus use; every PGSPLIT_* variable they
 * set is one pgsplit reads; every metric the Grafana dashboard and the alert rules use is exported by a
 * running pgsplit; /readyz?serving (the Kubernetes readiness path) stays ready while replicas serve; the
 * image's health-check script and the compose primary's init script and replica entrypoint work against
 * real servers. No container engine runs here, so the images and manifests themselves are not started.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { startProxy } from './fixtures/proxy-fixture.js';
import { LocalCluster, postgresOwner } from '../src/cluster/local-cluster.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { envVariable, SCALAR_KEYS } from '../src/config/env-config.js';
import { loadConfigWithSources } from '../src/config/load-config.js';

t.setTimeout(180_000);

const execFileP = promisify(execFile);
const deploy = path.resolve('deploy');
const read = (p: string): string => fs.readFileSync(path.join(deploy, p), 'utf8');

/** Metric names an expression or dashboard uses. */
function metricNames(text: string): Set<string> {
  return new Set(text.match(/pgsplit_[a-z0-9_]+/g) ?? []);
}

/** The ENV settings of the Dockerfile's last stage. */
function dockerEnv(dockerfile: string): Record<string, string> {
  const lastStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const out: Record<string, string> = {};
  for (const m of lastStage.matchAll(/^ENV ((?:.*\\\n)*.*)$/gm)) {
    for (const kv of (m[1] as string).replace(/\\\n/g, ' ').trim().split(/\s+/)) {
      const eq = kv.indexOf('=');
      out[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  }
  return out;
}

async function getText(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface K8sContainer {
  envFrom: Array<{ configMapRef: { name: string } }>;
  readinessProbe: { httpGet: { path: string } };
  livenessProbe: { httpGet: { path: string } };
  lifecycle: { preStop: { exec: { command: string[] } } };
}

t.test('the deployment files parse and hold what they must', async (t) => {
  const compose = parseYaml(read('docker/docker-compose.yml')) as { services: Record<string, Record<string, unknown>> };
  t.same(Object.keys(compose.services).sort(), ['grafana', 'pgsplit', 'primary', 'prometheus', 'replica'], 'compose: primary, replica, pgsplit, Prometheus, Grafana');
  const primary = compose.services.primary as { volumes: string[]; environment: Record<string, string> };
  t.ok(primary.volumes.some((v) => v.startsWith('./initdb/10-replication.sh:/docker-entrypoint-initdb.d/')), 'the primary runs the replication init script');
  const replica = compose.services.replica as { entrypoint: string[]; volumes: string[]; environment: Record<string, string> };
  t.ok(replica.volumes.some((v) => v.startsWith('./replica-entrypoint.sh:')), 'the replica runs replica-entrypoint.sh');
  t.equal(replica.environment['REPLICATION_PASSWORD'], primary.environment['REPLICATION_PASSWORD'], 'replica and primary agree on the replication password');
  for (const v of [...primary.volumes, ...replica.volumes]) {
    const src = v.split(':')[0] as string;
    if (src.startsWith('.')) t.ok(fs.existsSync(path.join(deploy, 'docker', src)), `compose mounts ${src}, which exists`);
  }

  const docker = read('docker/Dockerfile');
  t.equal((docker.match(/^FROM /gm) ?? []).length, 2, 'Dockerfile: two stages');
  t.match(docker, /^USER node$/m, 'runs as a non-root user');
  t.match(docker, /^HEALTHCHECK [^]*healthcheck\.mjs/m, 'the health check runs healthcheck.mjs');
  t.match(docker, /npm install -g [^\n]*pgsplit\.tgz/, 'the image installs the npm package');
  for (const m of docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of (m[1] as string).split(' ')) t.ok(fs.existsSync(src), `Dockerfile copies ${src}, which exists`);
  }
  t.match(read('systemd/pgsplit.service'), /^ExecStart=.*pgsplit --config /m);

  // The shipped compose config, with the image's and the compose file's environment, is valid and puts
  // metrics where the health check and Prometheus look.
  const imageEnv = dockerEnv(docker);
  const composeEnv = (compose.services.pgsplit as { environment: Record<string, string> }).environment;
  const { config, sources } = loadConfigWithSources({ file: path.join(deploy, 'docker/pgsplit.yaml'), env: { ...imageEnv, ...composeEnv } });
  t.same(config.metrics.listen, { host: '0.0.0.0', port: 9187 }, 'metrics served on 0.0.0.0:9187');
  t.equal(sources.get('metrics.listen'), 'PGSPLIT_METRICS_LISTEN', '... as the image sets it, the variable the health check reads');
  t.same(config.listen, { host: '0.0.0.0', port: 6432 }, 'clients on 0.0.0.0:6432');
  t.equal(config.replicas.length, 1);
  t.equal(config.users.length, 1, 'users are configured (a non-loopback listen needs them)');
  t.match(read('prometheus/prometheus.yml'), new RegExp(`pgsplit:${config.metrics.listen?.port}`), 'Prometheus scrapes that port');
  t.ok((compose.services.pgsplit as { ports: string[] }).ports.includes(`${config.listen.port}:${config.listen.port}`), 'compose publishes the client port');

  const docs = parseAllDocuments(read('kubernetes/pgsplit.yaml')).map((d) => {
    t.equal(d.errors.length, 0, 'kubernetes document parses');
    return d.toJSON() as { kind: string; metadata: { name: string }; data?: Record<string, string>; spec: Record<string, unknown> };
  });
  t.same(docs.map((d) => d.kind), ['ConfigMap', 'Deployment', 'Service', 'PodMonitor'], 'kubernetes: ConfigMap, Deployment, Service, PodMonitor');
  const configMap = docs[0]!;
  const pod = (docs[1]!.spec as { template: { spec: { enableServiceLinks: boolean; terminationGracePeriodSeconds: number; containers: K8sContainer[] } } }).template.spec;
  const container = pod.containers[0]!;
  t.equal(container.envFrom[0]?.configMapRef.name, configMap.metadata.name, 'the Deployment takes its environment from the ConfigMap');
  t.equal(pod.enableServiceLinks, false, 'no PGSPLIT_SERVICE_HOST & co from the Service named pgsplit');
  t.equal(container.livenessProbe.httpGet.path, '/healthz', 'liveness: /healthz');
  t.equal(container.readinessProbe.httpGet.path, '/readyz?serving', 'readiness: /readyz?serving (ready while replicas serve)');
  const preStop = container.lifecycle.preStop.exec.command;
  t.equal(preStop[0], 'sleep', 'a preStop delay');
  const secretFile = path.join(os.tmpdir(), `pgsplit-k8s-${process.pid}.yaml`);
  fs.writeFileSync(secretFile, 'primary: postgres://app:pw@db:5432/app\nusers: [{name: app, password: pw}]\n');
  t.teardown(() => fs.rmSync(secretFile, { force: true }));
  const k8s = loadConfigWithSources({ file: secretFile, env: configMap.data ?? {} }).config;
  t.same(k8s.metrics.listen, { host: '0.0.0.0', port: 9187 }, 'the ConfigMap serves metrics where the probes ask');
  t.same(k8s.listen, { host: '0.0.0.0', port: 6432 });
  t.ok(pod.terminationGracePeriodSeconds > Number(preStop[1]) + k8s.limits.shutdownGraceMs / 1000, 'the grace period covers the preStop delay and the drain');

  // Every PGSPLIT_* name in deploy/ is one pgsplit reads.
  const known = new Set([...SCALAR_KEYS.map((k) => envVariable(k.key)), 'PGSPLIT_LOG_FORMAT']);
  const files = fs.readdirSync(deploy, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
  const names = new Set(files.flatMap((f) => fs.readFileSync(f, 'utf8').match(/PGSPLIT_[A-Z0-9_]+/g) ?? []));
  t.ok(names.size >= 4, `deploy/ uses ${names.size} PGSPLIT_* variables`);
  for (const n of [...names].sort()) t.ok(known.has(n), `${n} is a variable pgsplit reads`);

  const alerts = parseYaml(read('prometheus/pgsplit-alerts.yml')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  const rules = alerts.groups.flatMap((g) => g.rules);
  for (const want of ['PgsplitReplicaLagHigh', 'PgsplitNodeDown', 'PgsplitFallbackRateHigh', 'PgsplitErrorRateHigh']) {
    t.ok(rules.some((r) => r.alert === want), `alert ${want}`);
  }
  // The error-rate selector, applied as Prometheus applies label matchers (anchored regular expressions).
  const errorExpr = rules.find((r) => r.alert === 'PgsplitErrorRateHigh')?.expr ?? '';
  const matchers = [...errorExpr.matchAll(/sqlstate\s*(=~|!~)\s*"([^"]*)"/g)].map((m) => ({ op: m[1], re: new RegExp(`^(?:${m[2]})$`) }));
  const counted = (code: string) => matchers.every((m) => (m.op === '=~') === m.re.test(code));
  t.ok(matchers.length >= 2, 'the error rate selects by sqlstate');
  for (const code of ['57P01', '57014']) t.notOk(counted(code), `the error rate does not count ${code}`);
  for (const code of ['08006', '57P03', '53300', 'XX000']) t.ok(counted(code), `the error rate counts ${code}`);

  type Panel = { datasource: { uid: string }; targets: Array<{ expr: string; datasource?: { uid: string } }> };
  const dashboard = JSON.parse(read('grafana/pgsplit-dashboard.json')) as {
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string; query: unknown }> };
  };
  t.ok(dashboard.panels.length >= 10, 'dashboard panels present');
  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  t.equal(vars.get('datasource')?.type, 'datasource', 'a datasource variable');
  t.equal(vars.get('datasource')?.query, 'prometheus', '... choosing among Prometheus data sources');
  t.equal(vars.get('instance')?.type, 'query', 'an instance variable');
  for (const p of dashboard.panels) {
    t.equal(p.datasource.uid, '${datasource}', 'panel data source is the variable, not a fixed uid');
    for (const x of p.targets) {
      if (x.datasource !== undefined) t.equal(x.datasource.uid, '${datasource}');
      for (const m of x.expr.matchAll(/pgsplit_[a-z0-9_]+(\{[^}]*\})?/g)) t.match(m[1] ?? '', /instance=~"\$instance"/, `${m[0]} is filtered by $instance`);
    }
  }

  // Every name used must be one a live pgsplit exports (histograms export _bucket, _sum, _count).
  const fx = await startProxy(t, { replicas: 1, config: { metrics: { listen: '127.0.0.1:0' } } });
  const c = await fx.client({ options: '-c pgsplit.route=replica' });
  await c.query('SELECT 1');
  const body = await (await fetch(`http://127.0.0.1:${fx.proxy.metricsAddress!.port}/metrics`)).text();
  const exported = new Set<string>();
  for (const m of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const name = m[1] as string;
    exported.add(name);
    if (m[2] === 'histogram' || m[2] === 'summary') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
  }
  const used = new Set([
    ...metricNames(rules.map((r) => r.expr).join('\n')),
    ...metricNames(dashboard.panels.flatMap((p) => p.targets.map((x) => x.expr)).join('\n')),
    ...metricNames(JSON.stringify(dashboard.templating)),
  ]);
  t.ok(used.size >= 12, `the dashboard and alerts use ${used.size} metric names`);
  for (const name of [...used].sort()) t.ok(exported.has(name), `${name} is exported by a running pgsplit`);
});

t.test('/readyz?serving: ready while a replica serves with the primary down; the image health check', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: { metrics: { listen: '127.0.0.1:0' }, monitor: { interval: '50ms', timeout: '500ms' } } });
  const metricsPort = fx.proxy.metricsAddress!.port;
  const base = `http://127.0.0.1:${metricsPort}`;
  t.equal((await getText(`${base}/readyz`)).status, 200, '/readyz: ready');
  t.equal((await getText(`${base}/readyz?serving`)).status, 200, '/readyz?serving: ready');

  const healthcheck = (env: NodeJS.ProcessEnv) => execFileP(process.execPath, [path.join(deploy, 'docker/healthcheck.mjs')], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
    .then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }));
  t.equal((await healthcheck({ PGSPLIT_METRICS_LISTEN: `0.0.0.0:${metricsPort}` })).code, 0, 'healthcheck.mjs: healthy with a wildcard metrics address');
  t.equal((await healthcheck({ PGSPLIT_METRICS_LISTEN: `127.0.0.1:${metricsPort}` })).code, 0, 'healthcheck.mjs: healthy with a loopback metrics address');
  const unset = await healthcheck({});
  t.equal(unset.code, 1, 'healthcheck.mjs: unhealthy without PGSPLIT_METRICS_LISTEN');
  t.match(unset.stderr, /PGSPLIT_METRICS_LISTEN="" is not HOST:PORT/);
  const nobody = await claimFreePort();
  const refused = await healthcheck({ PGSPLIT_METRICS_LISTEN: `127.0.0.1:${nobody}` });
  t.equal(refused.code, 1, 'healthcheck.mjs: unhealthy when nothing answers');

  await fx.cluster.primary.stop('immediate');
  await waitFor('/readyz to fail', async () => (await getText(`${base}/readyz`)).status === 503);
  const plain = await getText(`${base}/readyz`);
  t.match(plain.text, /not ready: primary primary is down/, '/readyz: not ready with the primary down');
  const serving = await getText(`${base}/readyz?serving`);
  t.equal(serving.status, 200, '/readyz?serving: still ready, a replica serves tagged reads');
  t.match(serving.text, /ready: primary primary is down.*; tagged reads served by replica1/);
  const tagged = await fx.client({ options: '-c pgsplit.route=replica' }).then(
    async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r,
    (e: Error) => e.message,
  );
  t.equal(tagged, true, 'what it promises holds: a tagged session connects and reads from the replica');

  await fx.cluster.replicas[0]!.stop('immediate');
  await waitFor('/readyz?serving to fail', async () => (await getText(`${base}/readyz?serving`)).status === 503);
  t.match((await getText(`${base}/readyz?serving`)).text, /not ready: primary primary is down.*, and no replica is up/, '/readyz?serving: not ready with no node up');
  t.equal((await getText(`${base}/healthz`)).status, 200, '/healthz: still alive');
});

t.test('compose scripts: the init script lets a replica clone the primary; replica-entrypoint.sh clones and streams', async (t) => {
  // A primary whose pg_hba.conf is what the postgres image gives a client on another host: local trust,
  // and "host all all all scram-sha-256", with no replication line.
  const cluster = await LocalCluster.start({ replicas: 0 });
  let replicaProc: ReturnType<typeof spawn> | undefined;
  t.teardown(async () => {
    if (replicaProc !== undefined && replicaProc.exitCode === null) {
      const gone = new Promise((r) => replicaProc!.once('exit', r));
      replicaProc.kill('SIGINT');
      await gone;
    }
    await cluster.stop();
  });
  const p = cluster.primary;
  const superPw = 'super-secret';
  await p.query(`ALTER ROLE postgres PASSWORD '${superPw}'`);
  fs.writeFileSync(path.join(p.dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all all scram-sha-256\n');
  await p.query('SELECT pg_reload_conf()');
  const admin = async (port: number) => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: superPw, database: 'postgres' });
    await c.connect();
    return c;
  };
  const primaryClient = await admin(p.port);
  t.teardown(() => primaryClient.end());

  const { stdout: binDir } = await execFileP('pg_config', ['--bindir'], { encoding: 'utf8' }).catch(() => ({ stdout: process.env.PG_BINDIR ?? '' }));
  const owner = await postgresOwner();
  const asPostgres = { ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) };
  const socketDir = (await primaryClient.query<{ d: string }>(`SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS d`)).rows[0]!.d;
  const scriptEnv = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
    PATH: `${binDir.trim()}:${process.env.PATH}`, HOME: os.tmpdir(), LC_ALL: 'C', REPLICATION_PASSWORD: 'repl-secret', ...extra,
  });
  const run = (file: string, env: NodeJS.ProcessEnv, args: string[] = []) =>
    execFileP('bash', [path.join(deploy, file), ...args], { env: scriptEnv(env), encoding: 'utf8', ...asPostgres, cwd: os.tmpdir(), timeout: 60_000 })
      .then((r) => ({ code: 0, out: r.stdout + r.stderr }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }));

  // Without the init script a replication connection has no pg_hba.conf line.
  const before = await execFileP(path.join(binDir.trim(), 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(p.port), '-U', 'replicator', '-D', path.join(os.tmpdir(), `never-${process.pid}`), '-w'], { env: scriptEnv({ PGPASSWORD: 'repl-secret' }), encoding: 'utf8' })
    .then(() => '', (e: { stderr: string }) => e.stderr);
  t.match(before, /no pg_hba\.conf entry for replication connection/, 'before: the replica could not clone');

  const missing = await run('docker/initdb/10-replication.sh', { REPLICATION_PASSWORD: '', PGDATA: p.dataDir, PGHOST: socketDir, PGPORT: String(p.port) });
  t.not(missing.code, 0, 'the init script fails without REPLICATION_PASSWORD');
  t.match(missing.out, /set REPLICATION_PASSWORD/);
  const init = await run('docker/initdb/10-replication.sh', { PGDATA: p.dataDir, PGHOST: socketDir, PGPORT: String(p.port), POSTGRES_USER: 'postgres' });
  t.equal(init.code, 0, `the init script runs as the image runs it: ${init.out}`);
  // The image restarts the server after the init scripts; a reload reads pg_hba.conf the same way.
  await primaryClient.query('SELECT pg_reload_conf()');
  await primaryClient.query('CREATE TABLE cloned (v int); INSERT INTO cloned VALUES (1)');

  const replicaPort = await claimFreePort();
  const dataDir = path.join(cluster.baseDir, 'script-replica');
  const missingPw = await run('docker/replica-entrypoint.sh', { REPLICATION_PASSWORD: '', PGDATA: dataDir });
  t.not(missingPw.code, 0, 'replica-entrypoint.sh fails without REPLICATION_PASSWORD');
  t.match(missingPw.out, /set REPLICATION_PASSWORD/);
  let replicaLog = '';
  replicaProc = spawn('bash', [path.join(deploy, 'docker/replica-entrypoint.sh'),
    '-c', `port=${replicaPort}`, '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketDir}`, '-c', 'cluster_name=script-replica'], {
    env: scriptEnv({ PGDATA: dataDir, PRIMARY_HOST: '127.0.0.1', PRIMARY_PORT: String(p.port) }), ...asPostgres, cwd: os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'],
  });
  replicaProc.stdout?.on('data', (d: Buffer) => { replicaLog += d.toString(); });
  replicaProc.stderr?.on('data', (d: Buffer) => { replicaLog += d.toString(); });
  let replica: pg.Client | undefined;
  await waitFor('the script replica to accept connections', async () => {
    if (replicaProc!.exitCode !== null) throw new Error(`replica-entrypoint.sh exited ${replicaProc!.exitCode}:\n${replicaLog}`);
    try {
      replica = await admin(replicaPort);
      return true;
    } catch {
      return false;
    }
  }, 60_000);
  t.teardown(() => replica?.end());
  t.equal((await replica!.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r, true, 'the replica runs as a standby');
  t.same((await replica!.query('SELECT v FROM cloned')).rows, [{ v: 1 }], 'it holds what the primary had when cloned');
  await primaryClient.query('INSERT INTO cloned VALUES (2)');
  await waitFor('the new row to stream to the replica', async () => (await replica!.query('SELECT count(*)::int AS n FROM cloned')).rows[0]?.n === 2);
  const streaming = await primaryClient.query<{ usename: string; state: string }>('SELECT usename, state FROM pg_stat_replication');
  t.same(streaming.rows, [{ usename: 'replicator', state: 'streaming' }], 'it streams from the primary as the replication role');
});
