import t from 'tap';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(180_000);

interface StatRow { query: string; calls: string }

const WRITE_PATTERN = /^\s*(?:\/\*.*?\*\/\s*)*(insert|update|delete|merge|create|alter|drop|truncate|copy\s+\w+\s+from)\b|\bnextval\s*\(|\bsetval\s*\(|\bfor\s+(?:no\s+key\s+)?update\b|\bfor\s+(?:key\s+)?share\b|\(\s*(?:insert|update|delete)\b|\binto\s+\w+\s+from\b|pg_advisory_lock|pg_notify\s*\(/i;

// The real-server check of the classifier: a tagged session sends a mixed workload through pgsplit, and
// the servers' own statement statistics (pg_stat_statements) show every write ran on the primary and
// none reached a replica, while the reads did reach the replicas.
t.test('a tagged mixed workload: writes only on the primary, reads on the replicas', async (t) => {
  const fx = await startProxy(t, { replicas: 2, cluster: { settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' } } });
  const primary = fx.cluster.primary;
  await primary.query('CREATE EXTENSION pg_stat_statements');
  await primary.query('CREATE TABLE items (id serial PRIMARY KEY, host text, qty int, updated_at timestamptz DEFAULT now())');
  await primary.query('CREATE SEQUENCE tickets');
  await fx.cluster.waitForReplication();
  for (const n of fx.cluster.nodes) await n.query('SELECT pg_stat_statements_reset()').catch(() => undefined);

  const clients = await Promise.all([1, 2, 3].map(() => fx.client({ options: '-c pgsplit.route=replica' })));
  const workload: Array<[string, unknown[]]> = [
    ['INSERT INTO items (host, qty) VALUES ($1, $2)', ['h1', 1]],
    ['SELECT id, host, qty FROM items WHERE host = $1', ['h1']],
    ['UPDATE items SET qty = qty + 1 WHERE host = $1', ['h1']],
    ['SELECT count(*) FROM items', []],
    ['WITH moved AS (DELETE FROM items WHERE qty > 100 RETURNING *) SELECT count(*) FROM moved', []],
    ["SELECT nextval('tickets')", []],
    ['SELECT id FROM items WHERE host = $1 FOR UPDATE', ['h1']],
    ['SELECT host, sum(qty) FROM items GROUP BY host ORDER BY host', []],
    ['INSERT INTO items (host, qty) SELECT host, qty FROM items WHERE id = 1 ON CONFLICT DO NOTHING', []],
    ['SELECT * FROM items ORDER BY id LIMIT 5', []],
    ["/* pgsplit:route=replica */ DELETE FROM items WHERE host = 'nobody'", []],
    ['MERGE INTO items i USING (SELECT 1 AS id) s ON i.id = s.id WHEN MATCHED THEN UPDATE SET qty = i.qty', []],
    ["SELECT pg_notify('chan', 'x')", []],
  ];
  const reruns = fx.proxy.stats.rerunsOnPrimary;
  let errors = 0;
  for (let round = 0; round < 10; round++) {
    await Promise.all(clients.map(async (c) => {
      for (const [sql, values] of workload) {
        try {
          await c.query(sql, values);
        } catch {
          errors++;
        }
      }
      await c.query("SELECT id FROM items WHERE host = 'h1' LIMIT 1");
    }));
  }
  t.equal(errors, 0, 'every statement succeeded');
  t.equal(fx.proxy.stats.rerunsOnPrimary, reruns, 'no replica ever refused a write (none was sent to one)');

  const replicaStats: StatRow[] = [];
  for (const r of fx.cluster.replicas) {
    replicaStats.push(...await r.query<StatRow>('SELECT query, calls::text FROM pg_stat_statements'));
  }
  const writesOnReplicas = replicaStats.filter((s) => WRITE_PATTERN.test(s.query));
  t.same(writesOnReplicas, [], 'pg_stat_statements of the replicas holds no write');
  const replicaReadCalls = replicaStats.filter((s) => /^\s*select\b.*\bitems\b/i.test(s.query) && !/for update|nextval|pg_notify/i.test(s.query))
    .reduce((n, s) => n + Number(s.calls), 0);
  // Each read follows the session's own writes: it runs on a replica once that replica has replayed
  // them (read-your-writes), or on the primary when none does within routing.read_your_writes_timeout.
  const primaryStats = await primary.query<StatRow>('SELECT query, calls::text FROM pg_stat_statements');
  const primaryReadCalls = primaryStats.filter((s) => /^\s*select\b.*\bitems\b/i.test(s.query) && !/for update|nextval|pg_notify/i.test(s.query))
    .reduce((n, s) => n + Number(s.calls), 0);
  t.equal(replicaReadCalls + primaryReadCalls, 30 * 5, `all 150 reads ran once: ${replicaReadCalls} on the replicas, ${primaryReadCalls} on the primary`);
  t.ok(replicaReadCalls > 0, 'the replicas served reads of the tagged sessions');

  const callsOn = (re: RegExp) => primaryStats.filter((s) => re.test(s.query)).reduce((n, s) => n + Number(s.calls), 0);
  t.equal(callsOn(/^INSERT INTO items \(host, qty\) VALUES/), 30, 'all 30 INSERTs ran on the primary');
  t.equal(callsOn(/^UPDATE items SET qty = qty \+/), 30, 'all 30 UPDATEs ran on the primary');
  t.equal(callsOn(/^WITH moved AS \(DELETE/), 30, 'all 30 CTE deletes ran on the primary');
  t.equal(callsOn(/nextval/), 30, 'all 30 nextval calls ran on the primary');
  t.equal(callsOn(/FOR UPDATE/), 30, 'all 30 SELECT ... FOR UPDATE ran on the primary');
  t.equal(callsOn(/DELETE FROM items WHERE host = \$1|DELETE FROM items WHERE host =/), 30, 'the hinted DELETE ran on the primary all 30 times');
  t.equal(callsOn(/^MERGE INTO items/), 30, 'all 30 MERGEs ran on the primary');
  t.equal(callsOn(/pg_notify/), 30, 'all 30 pg_notify calls ran on the primary');
});
