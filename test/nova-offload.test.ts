/**
 * The Nova workload benchmark (bench/nova) runs end to end, as `npm run bench:nova -- --mode both` does
 * but short, in both client modes: `oslo` (every unit of work a transaction opened with a plain BEGIN,
 * as oslo.db sends it) and `autocommit` (one statement at a time). Each mode has a baseline phase with
 * the compute hosts untagged, then a phase with them on the tagged slave_connection URL. What must hold
 * is behaviour, not speed: periodic-task reads move to the replicas, the primary reads less (by its own
 * statistics), no API read reaches a replica, nothing fails.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OSLO_REPLICA_SHARE_TARGET, runNovaBench, type NovaReport } from '../bench/nova/nova-bench.js';

/** What is still missing in pgsplit for the oslo mode to offload; the lead removes it when it lands. */

const share = (s: number | null): string => `${((s ?? 0) * 100).toFixed(1)} %`;

t.test('the Nova workload, as oslo.db and as autocommit statements: periodic reads move to replicas, the API never reads one', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-nova-smoke-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const result = await runNovaBench({
    seconds: 5,
    computeHosts: 4,
    apiSessions: 2,
    outDir: out,
    preset: 'smoke',
    clientModes: ['oslo', 'autocommit'],
  });
  const byMode = new Map(result.reports.map((r) => [r.config.clientMode, r]));
  const oslo = byMode.get('oslo');
  const autocommit = byMode.get('autocommit');
  if (!oslo || !autocommit) throw new Error(`expected a report per mode, got ${[...byMode.keys()].join(', ')}`);

  for (const r of [oslo, autocommit]) {
    t.comment(
      `${r.config.clientMode}: periodic-task reads on replicas ${share(r.tagged.replicaShare)} ` +
        `(${r.tagged.compute.readsOnReplica} of ${r.tagged.compute.readsOnReplica + r.tagged.compute.readsOnPrimary}), ` +
        `API reads on replicas ${r.baseline.apiReadsOnReplica + r.tagged.apiReadsOnReplica}, errors ${r.baseline.errors + r.tagged.errors}, ` +
        `primary tuples read/s ${r.comparison.primaryTuplesReadPerSec.baseline.toFixed(0)} -> ${r.comparison.primaryTuplesReadPerSec.tagged.toFixed(0)}`,
    );
  }

  /** What holds in both modes, whatever pgsplit does with transactions. */
  const commonChecks = (t: Test, r: NovaReport): void => {
    t.equal(r.baseline.replicaShare, 0, 'baseline: no periodic-task read on a replica');
    t.equal(r.baseline.apiReadsOnReplica + r.tagged.apiReadsOnReplica, 0, 'no API read reached a replica');
    t.ok(r.baseline.api.runs > 0 && r.tagged.api.runs > 0, 'API sessions ran in both phases');
    t.ok(r.tagged.compute.replicaReads > 0, 'the tagged phase sent periodic-task reads that may use a replica');
    t.equal(r.tagged.computePrimaryReadsOnReplica, 0, 'hinted reads stayed on the primary');
    t.equal(r.baseline.errors + r.tagged.errors, 0, 'no errors');
    t.equal(r.baseline.workload.readYourWritesMisses + r.tagged.workload.readYourWritesMisses, 0, 'API sessions saw their own writes');
    t.equal(r.baseline.workload.duplicateAudits + r.tagged.workload.duplicateAudits, 0, 'no usage audit ran twice');
    t.ok(r.tagged.crossCheck.consistent, "pgsplit's routing counters agree with where the workload saw its reads run", r.tagged.crossCheck);
    t.ok(r.tagged.urlCheck.slaveConnectionOnReplica && !r.tagged.urlCheck.connectionOnReplica, 'slave_connection reads a replica, connection the primary');
  };

  t.test('autocommit mode', async (t) => {
    const r = autocommit;
    commonChecks(t, r);
    t.same(r.failures, [], 'the mode passed its own checks');
    t.ok(r.ok, 'the mode passed');
    t.ok((r.tagged.replicaShare ?? 0) > 0.5, 'tagged: most periodic-task reads on replicas');
    t.ok((r.tagged.eligibleReplicaShare ?? 0) >= 0.95, 'nearly every unhinted periodic-task read ran on a replica (a fallback under load is allowed)');
    t.ok(r.comparison.primaryTuplesReadPerSec.tagged < r.comparison.primaryTuplesReadPerSec.baseline, 'the primary read fewer tuples (its own pg_stat_user_tables)');
    t.equal(r.baseline.compute.transactions + r.baseline.api.transactions, 0, 'no BEGIN was sent');
    t.equal(r.baseline.primary.xactRollback, 0, 'the primary rolled nothing back (pg_stat_database): every statement committed on its own');
  });

  t.test('oslo mode (BEGIN ... COMMIT / ROLLBACK)', async (t) => {
    const r = oslo;
    commonChecks(t, r);
    t.ok(r.baseline.compute.transactions > 0 && r.baseline.api.transactions > 0, 'periodic tasks and API requests ran in BEGIN transactions');
    t.ok(
      r.baseline.primary.xactRollback > 0,
      "the primary rolled back reader transactions (pg_stat_database: oslo.db's readers end with ROLLBACK)",
      { xactRollback: r.baseline.primary.xactRollback, transactions: r.baseline.compute.transactions + r.baseline.api.transactions },
    );
    t.comment(`oslo mode: ${share(r.tagged.replicaShare)} of periodic-task reads ran on replicas (target ${OSLO_REPLICA_SHARE_TARGET * 100} %)`);
    t.ok((r.tagged.replicaShare ?? 0) >= OSLO_REPLICA_SHARE_TARGET, `at least ${OSLO_REPLICA_SHARE_TARGET * 100} % of periodic-task reads on replicas`, {
      replicaShare: r.tagged.replicaShare,
    });
    t.ok(r.comparison.primaryTuplesReadPerSec.tagged < r.comparison.primaryTuplesReadPerSec.baseline, 'the primary read fewer tuples (its own pg_stat_user_tables)');
    t.same(r.failures, [], 'the mode passed its own checks');
    t.ok((r.tagged.eligibleReplicaShare ?? 0) >= 0.95, 'nearly every unhinted periodic-task read ran on a replica (a fallback under load is allowed)');
    // Across modes, in 5 s phases the tuple counts depend on which usage audits fall in the window: two
    // clean-clone runs gave oslo -48.7 % against autocommit -43.9 %, then -42.5 % against -47.4 %, with
    // equal replica shares. The strict same-run comparison is the benchmark's (npm run bench:nova -- --mode
    // both, 60 s phases for the published run); here an oslo mode that moves much less than autocommit fails.
    const cut = (m: NovaReport): number => 1 - m.comparison.primaryTuplesReadPerSec.tagged / m.comparison.primaryTuplesReadPerSec.baseline;
    t.ok(cut(r) >= cut(autocommit) / 2, 'took at least half as much read load off the primary as autocommit did in the same run',
      { oslo: cut(r), autocommit: cut(autocommit) });
    t.ok((r.tagged.replicaShare ?? 0) >= (autocommit.tagged.replicaShare ?? 0) - 0.05, 'and about the same share of periodic-task reads on replicas',
      { oslo: r.tagged.replicaShare, autocommit: autocommit.tagged.replicaShare });
  });

  const md = fs.readFileSync(path.join(out, 'nova.md'), 'utf8');
  t.match(md, /periodic-task reads served by replicas/);
  t.match(md, /## Client mode `oslo`/, 'the report has a section per mode');
  t.match(md, /## Client mode `autocommit`/);
  t.match(md, /\| oslo \| [\d.]+ % \(\d+ of \d+\) \| 0 of \d+ \| 0 \|/, 'the summary table states the oslo mode share, API reads on replicas and errors');
  t.match(fs.readFileSync(path.join(out, 'nova.svg'), 'utf8'), /<svg[\s\S]*<\/svg>/);
});
