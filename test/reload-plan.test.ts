/**
 * planReload: which replicas a reload keeps, adds and removes (identity is the URL: same server, same
 * credentials), which keys it reports changed, and which wait for a restart (listen, primary,
 * metrics.listen keep their running values).
 */
import t from 'tap';
import { resolveConfig } from '../src/config/load-config.js';
import { planReload } from '../src/proxy/reload-plan.js';
import { ServerNodes } from '../src/server/server-nodes.js';

const base = {
  listen: '127.0.0.1:6432',
  primary: 'postgres://u@db1:5432/app',
  replicas: [{ name: 'a', url: 'postgres://u@db2:5432/app' }, { name: 'b', url: 'postgres://u@db3:5432/app' }],
};

function running(raw: Record<string, unknown>): { config: ReturnType<typeof resolveConfig>; nodes: ServerNodes } {
  const config = resolveConfig(raw);
  return { config, nodes: new ServerNodes(config.primary, config.replicas) };
}

t.test('an identical file changes nothing', async (t) => {
  const { config, nodes } = running(base);
  const p = planReload(config, resolveConfig(base), nodes.replicas);
  t.same(p.changed, []);
  t.same(p.needsRestart, []);
  t.same(p.add, []);
  t.same(p.remove, []);
  t.same(p.keep.map((k) => k.node.endpoint.name), ['a', 'b']);
});

t.test('replicas: kept by URL, renamed or reweighted in place, added, removed', async (t) => {
  const { config, nodes } = running(base);
  const next = resolveConfig({
    ...base,
    replicas: [
      { name: 'b2', url: 'postgres://u@db3:5432/app', weight: 3 }, // b, renamed and reweighted
      { name: 'c', url: 'postgres://u@db4:5432/app' },
    ],
  });
  const p = planReload(config, next, nodes.replicas);
  t.same(p.keep.map((k) => [k.node.endpoint.name, k.endpoint.name, k.endpoint.weight]), [['b', 'b2', 3]]);
  t.same(p.add.map((e) => e.name), ['c']);
  t.same(p.remove.map((n) => n.endpoint.name), ['a']);
  t.same(p.changed, ['replicas']);
});

t.test('a new password for the same host is a new replica (the old connections drain)', async (t) => {
  const { config, nodes } = running(base);
  const next = resolveConfig({ ...base, replicas: [base.replicas[0], { name: 'b', url: 'postgres://u:new@db3:5432/app' }] });
  const p = planReload(config, next, nodes.replicas);
  t.same(p.keep.map((k) => k.node.endpoint.name), ['a']);
  t.same(p.add.map((e) => e.name), ['b']);
  t.same(p.remove.map((n) => n.endpoint.name), ['b']);
});

t.test('replicas already retiring are not matched again', async (t) => {
  const { config, nodes } = running(base);
  const p = planReload(config, resolveConfig(base), nodes.replicas.slice(1));
  t.same(p.add.map((e) => e.name), ['a'], 'a replica listed again while its old entry drains comes back as a new one');
});

t.test('changed keys by their names in the file; restart-only keys keep their running values', async (t) => {
  const { config, nodes } = running(base);
  const next = resolveConfig({
    ...base,
    listen: '127.0.0.1:7000',
    primary: 'postgres://u@db9:5432/app',
    metrics: { listen: '127.0.0.1:9187' },
    users: [{ name: 'app', password: 'secret-1' }],
    routing: { max_lag: '2s', read_your_writes_timeout: '50ms', application_names: ['nova-*'] },
    monitor: { interval: '250ms' },
    limits: { max_client_connections: 10 },
    pool: { size: 5, server_idle_timeout: '1min' },
    admin: { users: ['app'] },
    log: { level: 'debug' },
  });
  const p = planReload(config, next, nodes.replicas);
  t.same(p.needsRestart, ['listen', 'primary', 'metrics.listen']);
  t.same(p.config.listen, config.listen, 'listen keeps its running value');
  t.equal(p.config.primary, config.primary, 'so does the primary');
  t.same(p.config.metrics, config.metrics, 'and metrics.listen');
  t.same(p.changed.sort(), [
    'admin.users', 'limits.max_client_connections', 'log.level', 'monitor.interval', 'pool.server_idle_timeout', 'pool.size',
    'routing.application_names', 'routing.max_lag', 'routing.read_your_writes_timeout', 'users',
  ]);
  t.equal(p.config.routing.maxLagMs, 2000, 'the rest is the new file');
  t.equal(p.config.users[0]?.name, 'app');
});

t.test('server logins reload: databases, monitor.user / password, a user\'s server_user', async (t) => {
  const { config, nodes } = running({ ...base, users: [{ name: 'app', password: 'secret-1' }] });
  const next = resolveConfig({
    ...base,
    users: [{ name: 'app', password: 'secret-1', server_user: 'nova' }],
    databases: { app: 'nova_prod' },
    monitor: { user: 'watcher', password: 'w' },
  });
  const p = planReload(config, next, nodes.replicas);
  t.same(p.needsRestart, [], 'none of them needs a restart');
  t.same(p.changed.sort(), ['databases', 'monitor.password', 'monitor.user', 'users']);
  t.same(p.config.databases, { app: 'nova_prod' }, 'the new values are in force');
  t.equal(p.config.monitor.user, 'watcher');
});
