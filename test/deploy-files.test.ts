/**
 * The deployment files (deploy/) parse, and every metric the Grafana dashboard and the Prometheus alert
 * rules use is one that a running pgsplit exports: a live instance is scraped and the names compared.
 * No container engine runs here, so the images and manifests themselves are not started.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

const deploy = path.resolve('deploy');
const read = (p: string): string => fs.readFileSync(path.join(deploy, p), 'utf8');

/** Metric names an expression or dashboard uses. */
function metricNames(text: string): Set<string> {
  return new Set(text.match(/pgsplit_[a-z0-9_]+/g) ?? []);
}

t.test('the deployment files parse and hold what they must', async (t) => {
  const compose = parseYaml(read('docker/docker-compose.yml')) as { services: Record<string, unknown> };
  t.same(Object.keys(compose.services).sort(), ['grafana', 'pgsplit', 'primary', 'prometheus', 'replica'], 'compose: primary, replica, pgsplit, Prometheus, Grafana');
  const cfg = parseYaml(read('docker/pgsplit.yaml')) as { metrics: { listen: string } };
  t.equal(cfg.metrics.listen, '0.0.0.0:9187', 'the compose pgsplit config serves metrics where Prometheus scrapes');
  t.match(read('prometheus/prometheus.yml'), /pgsplit:9187/);

  const kinds = parseAllDocuments(read('kubernetes/pgsplit.yaml')).map((d) => {
    t.equal(d.errors.length, 0, 'kubernetes document parses');
    return (d.toJSON() as { kind: string }).kind;
  });
  t.same(kinds, ['ConfigMap', 'Deployment', 'Service', 'PodMonitor'], 'kubernetes: ConfigMap, Deployment, Service, PodMonitor');
  const k8s = read('kubernetes/pgsplit.yaml');
  t.match(k8s, /path: \/healthz/, 'liveness probe');
  t.match(k8s, /path: \/readyz/, 'readiness probe');
  t.match(k8s, /secretName: pgsplit-secrets/, 'configuration from a Secret');

  const docker = read('docker/Dockerfile');
  t.equal((docker.match(/^FROM /gm) ?? []).length, 2, 'Dockerfile: two stages');
  t.match(docker, /^USER node$/m, 'runs as a non-root user');
  t.match(docker, /^HEALTHCHECK /m, 'has a health check');
  for (const m of docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of (m[1] as string).split(' ')) t.ok(fs.existsSync(src), `Dockerfile copies ${src}, which exists`);
  }
  t.match(read('systemd/pgsplit.service'), /^ExecStart=.*pgsplit --config /m);

  const alerts = parseYaml(read('prometheus/pgsplit-alerts.yml')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  const rules = alerts.groups.flatMap((g) => g.rules);
  t.ok(rules.length >= 4, 'alert rules present');
  for (const want of ['PgsplitReplicaLagHigh', 'PgsplitNodeDown', 'PgsplitFallbackRateHigh', 'PgsplitErrorRateHigh']) {
    t.ok(rules.some((r) => r.alert === want), `alert ${want}`);
  }
  const dashboard = JSON.parse(read('grafana/pgsplit-dashboard.json')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
  t.ok(dashboard.panels.length >= 10, 'dashboard panels present');

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
  ]);
  t.ok(used.size >= 12, `the dashboard and alerts use ${used.size} metric names`);
  for (const name of [...used].sort()) t.ok(exported.has(name), `${name} is exported by a running pgsplit`);
});
