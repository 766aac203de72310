/**
 * The Nova workload benchmark (bench/nova) runs end to end, as `npm run bench:nova` does but short: a
 * baseline phase with the compute hosts untagged, then a phase with them on the tagged slave_connection
 * URL. What must hold is behaviour, not speed: periodic-task reads move to the replicas, the primary
 * reads less (by its own statistics), no API read reaches a replica, nothing fails.
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runNovaBench } from '../bench/nova/nova-bench.js';

t.test('the Nova periodic tasks move their reads to the replicas; the API never reads one', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-nova-smoke-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const r = await runNovaBench({ seconds: 5, computeHosts: 4, apiSessions: 2, outDir: out, mode: 'smoke' });
  t.comment(`replica share ${((r.tagged.replicaShare ?? 0) * 100).toFixed(1)} %, primary tuples read/s ` +
    `${r.comparison.primaryTuplesReadPerSec.baseline.toFixed(0)} -> ${r.comparison.primaryTuplesReadPerSec.tagged.toFixed(0)}`);
  t.same(r.failures, [], 'the run passed its own checks');
  t.ok(r.ok);
  t.equal(r.baseline.replicaShare, 0, 'baseline: no periodic-task read on a replica');
  t.ok((r.tagged.replicaShare ?? 0) > 0.5, 'tagged: most periodic-task reads on replicas');
  t.ok((r.tagged.eligibleReplicaShare ?? 0) >= 0.95, 'nearly every unhinted periodic-task read ran on a replica (a fallback under load is allowed)');
  t.equal(r.baseline.apiReadsOnReplica + r.tagged.apiReadsOnReplica, 0, 'no API read reached a replica');
  t.ok(r.baseline.api.runs > 0 && r.tagged.api.runs > 0, 'API sessions ran in both phases');
  t.equal(r.tagged.computePrimaryReadsOnReplica, 0, 'hinted reads stayed on the primary');
  t.equal(r.baseline.errors + r.tagged.errors, 0, 'no errors');
  t.ok(r.tagged.crossCheck.consistent, "pgsplit's routing counters agree with where the workload saw its reads run");
  t.ok(r.comparison.primaryTuplesReadPerSec.tagged < r.comparison.primaryTuplesReadPerSec.baseline,
    "the primary read fewer tuples (its own pg_stat_user_tables)");
  t.ok(r.tagged.urlCheck.slaveConnectionOnReplica && !r.tagged.urlCheck.connectionOnReplica, 'slave_connection reads a replica, connection the primary');
  t.match(fs.readFileSync(path.join(out, 'nova.md'), 'utf8'), /periodic-task reads served by replicas/);
  t.match(fs.readFileSync(path.join(out, 'nova.svg'), 'utf8'), /<svg[\s\S]*<\/svg>/);
});
