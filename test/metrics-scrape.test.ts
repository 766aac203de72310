/**
 * Prometheus metrics after real routed traffic: the counters move for the right node and reason, the
 * gauges describe the sessions and servers there are, and /healthz and /readyz answer as a probe expects
 * (readiness follows the primary). Scraped over HTTP from metrics.listen, as Prometheus does.
 */
import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(120_000);

type Scrape = { values: Map<string, number>; types: Map<string, string>; text: string };

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** Parses the text format into `name{labels}` -> value (labels as printed, sorted by prom-client). */
async function scrape(port: number): Promise<Scrape> {
  const { status, body } = await get(port, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  const values = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of body.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    if (line.startsWith('#') || line.trim() === '') continue;
    const i = line.lastIndexOf(' ');
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return { values, types, text: body };
}

const v = (s: Scrape, key: string): number => s.values.get(key) ?? 0;

t.test('metrics follow routed traffic; probes answer', async (t) => {
  const fx = await startProxy(t, { replicas: 1, config: { metrics: { listen: '127.0.0.1:0' } } });
  const addr = fx.proxy.metricsAddress;
  t.ok(addr, 'metrics listener started');
  const port = addr!.port;
  const untagged = await fx.client();
  const tagged = await fx.client({ options: '-c pgsplit.route=replica' });
  await untagged.query('SELECT 1');
  await tagged.query('SELECT 1');
  const before = await scrape(port);

  for (let i = 0; i < 5; i++) await untagged.query('SELECT $1::int AS n', [i]);
  for (let i = 0; i < 7; i++) await tagged.query(`SELECT ${i} AS n`);
  await t.rejects(untagged.query('SELECT * FROM no_such_table'), { code: '42P01' });
  await untagged.query('/* pgsplit:route=replica */ SELECT 2');
  await untagged.query('/* pgsplit:max_lag=sideways */ SELECT 3');
  await t.rejects(tagged.query('SET pgsplit.max_lag = \'soon\''), { code: '22023' });
  const after = await scrape(port);
  const d = (key: string): number => v(after, key) - v(before, key);

  t.equal(d('pgsplit_statements_routed_total{node="primary",reason="untagged"}'), 5 + 1 + 1, 'untagged reads counted on the primary (5, the failing one, the malformed hint)');
  t.equal(d('pgsplit_statements_routed_total{node="replica1",reason="tagged-read"}'), 7, 'tagged reads counted on replica1');
  t.equal(d('pgsplit_statements_routed_total{node="replica1",reason="hint-replica"}'), 1, 'a hinted read counted with its reason');
  t.equal(d('pgsplit_errors_total{sqlstate="42P01"}'), 1, 'the server error counted by SQLSTATE');
  t.equal(d('pgsplit_errors_total{sqlstate="22023"}'), 1, "pgsplit's own error counted by SQLSTATE");
  t.equal(d('pgsplit_hints_total'), 1, 'the well-formed hint counted');
  t.ok(d('pgsplit_hints_malformed_total') >= 1, 'the malformed hint counted');
  t.equal(d('pgsplit_query_duration_seconds_count{node="replica1"}'), 8, 'durations observed per node (7 tagged + 1 hinted)');
  t.ok(d('pgsplit_query_duration_seconds_sum{node="replica1"}') > 0, 'with a positive sum');
  const buckets = [...after.values].filter(([k]) => k.startsWith('pgsplit_query_duration_seconds_bucket{node="replica1"')).map(([, n]) => n);
  t.ok(buckets.length > 2 && buckets.every((n, i) => i === 0 || n >= (buckets[i - 1] as number)), 'buckets are cumulative (never decrease)');
  t.equal(buckets[buckets.length - 1], v(after, 'pgsplit_query_duration_seconds_count{node="replica1"}'), 'the last (+Inf) bucket holds every observation');
  t.ok(d('pgsplit_client_bytes_received_total') > 0 && d('pgsplit_client_bytes_sent_total') > 0, 'client bytes move');

  t.equal(v(after, 'pgsplit_client_connections{state="idle"}'), 2, 'two idle client sessions');
  // pool.mode transaction: an idle session holds no server connection; the pools keep the ones given back.
  t.equal(v(after, 'pgsplit_server_connections{node="replica1",state="idle"}'), 0, 'idle sessions hold no replica connection');
  t.equal(v(after, 'pgsplit_server_connections{node="primary",state="idle"}'), 0, 'nor a primary one');
  const pooledIdle = (node: string): number => [...after.values].filter(([k]) => k.startsWith('pgsplit_pool_servers{') && k.includes(`node="${node}"`) && k.includes('state="idle"')).reduce((n, [, x]) => n + x, 0);
  t.ok(pooledIdle('replica1') >= 1, `the replica's pool keeps the connections given back idle (${pooledIdle('replica1')})`);
  t.ok(pooledIdle('primary') >= 1, `and so does the primary's (${pooledIdle('primary')})`);
  t.equal(v(after, 'pgsplit_node_up{node="primary",role="primary"}'), 1, 'primary up');
  t.equal(v(after, 'pgsplit_node_up{node="replica1",role="replica"}'), 1, 'replica up');
  t.ok(after.values.has('pgsplit_replica_lag_seconds{node="replica1"}'), 'replica lag in seconds exported');
  t.ok(after.values.has('pgsplit_replica_lag_bytes{node="replica1"}'), 'replica lag in bytes exported');
  t.ok(after.values.has('pgsplit_process_resident_memory_bytes'), 'process metrics carry the pgsplit_ prefix');

  for (const [name, type] of after.types) {
    t.ok(name.startsWith('pgsplit_'), `${name} starts with pgsplit_`);
    if (type === 'counter') t.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
  }

  t.same(await get(port, '/healthz'), { status: 200, body: 'ok\n' }, '/healthz');
  t.equal((await get(port, '/readyz')).status, 200, '/readyz while the primary is up');
  t.equal((await get(port, '/nope')).status, 404);

  await fx.cluster.primary.stop('fast');
  const deadline = Date.now() + 15_000;
  let ready = await get(port, '/readyz');
  while (ready.status === 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    ready = await get(port, '/readyz');
  }
  t.equal(ready.status, 503, '/readyz says not ready once the monitor finds the primary down');
  t.match(ready.body, /primary .* down/);
  const down = await scrape(port);
  t.equal(v(down, 'pgsplit_node_up{node="primary",role="primary"}'), 0, 'pgsplit_node_up shows it');
  await fx.cluster.primary.start();
});
