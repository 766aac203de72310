/**
 * The Nova benchmark's report: its shape (NovaReport per client mode, NovaBenchResult per run), and its
 * forms: the summary lines printed on stdout, the Markdown nova.md and the SVG chart nova.svg. The
 * measuring is in nova-bench.ts.
 */
import type { CounterTotals, NovaWorkloadStats } from '../../src/demo/nova-meter.js';
import { API_REQUESTS, COMPUTE_TASKS, type NovaClientMode, type NovaIntervals, type NovaTaskName } from '../../src/demo/nova-workload-options.js';

/** Statistics deltas of one server over a phase. */
export interface ServerLoad {
  /** pg_stat_user_tables summed over the Nova tables. */
  seqTupRead: number;
  idxTupFetch: number;
  /** seqTupRead + idxTupFetch: the tuples the server read from the Nova tables. */
  tuplesRead: number;
  seqScan: number;
  idxScan: number;
  nTupIns: number;
  nTupUpd: number;
  /** pg_stat_database of the `nova` database. */
  tupReturned: number;
  tupFetched: number;
  xactCommit: number;
  xactRollback: number;
}

/** A sample distribution in ms. */
export interface Distribution {
  samples: number;
  /** Samples with no value (pgsplit's lag estimate unknown). */
  unknown: number;
  mean: number | null;
  p50: number | null;
  p95: number | null;
  max: number | null;
}

/** Where a probe's reads ran and how stale they were. */
export interface ProbeReport {
  reads: number;
  onReplica: number;
  onPrimary: number;
  /** Reads that missed at least one heartbeat the primary had already committed. */
  staleReads: number;
  staleness: Distribution;
}

/** Result of one phase. */
export interface PhaseReport {
  name: 'baseline' | 'tagged';
  /** How the compute hosts connected. */
  computeUrl: string;
  elapsedMs: number;
  workload: NovaWorkloadStats;
  compute: CounterTotals;
  api: CounterTotals;
  /** Periodic-task reads that ran on a replica / all periodic-task reads (null without reads). */
  replicaShare: number | null;
  /** The same over the reads that may use a replica (unhinted reads of tagged sessions). */
  eligibleReplicaShare: number | null;
  /** API reads that ran on a replica (measured; must be 0). */
  apiReadsOnReplica: number;
  /** Periodic-task reads that had to see the primary (hinted, or untagged) but ran on a replica. */
  computePrimaryReadsOnReplica: number;
  /** Workload errors plus harness errors. */
  errors: number;
  /** Errors of the heartbeat, probes or sampling, with their messages. */
  harnessErrors: string[];
  /** Through `connection` / `slave_connection` before the phase: did pg_is_in_recovery() say replica? */
  urlCheck: { connectionOnReplica: boolean; slaveConnectionOnReplica: boolean };
  primary: ServerLoad;
  replicas: Record<string, ServerLoad>;
  /** pgsplit's routing counters over the phase (including the tagged staleness probe's reads). */
  proxy: {
    routedByNode: Record<string, number>;
    routedByReason: Record<string, number>;
    rerunsOnPrimary: number;
    retries: number;
  };
  /**
   * pgsplit's replica units minus the probe's, against the workload's reads that reported a replica:
   * two independent counts of the same thing. In oslo mode pgsplit may also count a transaction's BEGIN
   * and ROLLBACK/COMMIT on the replica it ran on: `controlAllowance` is two per transaction in which a
   * read reported a replica; `consistent` allows that many extra units, `exact` none.
   */
  crossCheck: { proxyReplicaUnits: number; workloadReadsOnReplica: number; controlAllowance: number; exact: boolean; consistent: boolean };
  staleness: {
    /** A tagged session through pgsplit, like the compute hosts' ones. */
    taggedSession: ProbeReport;
    /** Direct sessions on each replica: how far behind the replicas themselves were. */
    byReplica: Record<string, ProbeReport>;
    /** pgsplit's lag estimate per replica (ReplicaMonitor.lagMs: an upper bound). */
    monitorLag: Record<string, Distribution>;
  };
}

/** Relative change from baseline to tagged, in percent (null when the baseline is 0). */
export type Change = number | null;

/** What one run found: a report per client mode, and the checks across modes. */
export interface NovaBenchResult {
  reports: NovaReport[];
  /** Failures of the comparison across modes (empty with one mode). */
  failures: string[];
  /** No failure here nor in any report. */
  ok: boolean;
  files?: { markdown: string; svg: string };
}

/** What one client mode of a benchmark run found. */
export interface NovaReport {
  date: string;
  command: string;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGiB: number;
    node: string;
    os: string;
    postgres: string;
    /** 1-minute load average before and after the run: other work on the machine skews the figures. */
    loadAverage: { start: number; end: number };
  };
  config: {
    /** The size of the run ('quick', 'full', 'smoke', ...). */
    preset: string;
    /** How the workload's sessions sent their statements (see NovaClientMode). */
    clientMode: NovaClientMode;
    seconds: number;
    computeHosts: number;
    apiSessions: number;
    instancesPerHost: number;
    intervals: NovaIntervals;
    auditPeriodMs: number;
    replicas: number;
    seed: number;
    connection: string;
    slaveConnection: string;
    pgsplit: { maxLagMs: number; readYourWritesTimeoutMs: number; monitorIntervalMs: number };
    /** How often the heartbeat was written, and the probes and lag estimates sampled. */
    heartbeatIntervalMs: number;
    stalenessSampleMs: number;
  };
  baseline: PhaseReport;
  tagged: PhaseReport;
  comparison: {
    primaryTuplesReadPerSec: { baseline: number; tagged: number; change: Change };
    primaryTupReturnedPerSec: { baseline: number; tagged: number; change: Change };
    primaryTupFetchedPerSec: { baseline: number; tagged: number; change: Change };
    primaryXactPerSec: { baseline: number; tagged: number; change: Change };
    /** Primary tuples read / (periodic task runs + API requests): the same comparison, independent of throughput. */
    primaryTuplesPerUnitOfWork: { baseline: number; tagged: number; change: Change };
    replicaTuplesReadPerSec: { baseline: number; tagged: number };
    periodicRunsPerSec: { baseline: number; tagged: number };
    apiRequestsPerSec: { baseline: number; tagged: number };
  };
  /** Why the run failed (empty when it passed). */
  failures: string[];
  /** Observations that do not fail the run. */
  notes: string[];
  ok: boolean;
}

/** What each client mode is, for the reports. */
export const CLIENT_MODE_TEXT: Readonly<Record<NovaClientMode, string>> = Object.freeze({
  oslo:
    'as oslo.db sends them: every unit of work is a transaction opened with a plain `BEGIN` (autocommit off). The periodic tasks read ' +
    'in reader transactions through `slave_connection` (`BEGIN`, reads, `ROLLBACK`) and write in writer transactions through ' +
    '`connection` (`BEGIN`, writes, `COMMIT`), one session per URL and compute host, as Nova\'s two engines; API requests run as ' +
    'writer and reader transactions through `connection`',
  autocommit:
    'every statement on its own (autocommit), each compute host with one session through which it also writes',
});

/** Relative change from `baseline` to `tagged` in percent (null when the baseline is 0). */
export function relativeChange(baseline: number, tagged: number): Change {
  return baseline === 0 ? null : (100 * (tagged - baseline)) / baseline;
}

/** `n` events over `ms` milliseconds, per second. */
export function perSecond(n: number, ms: number): number {
  return ms <= 0 ? 0 : (1000 * n) / ms;
}

// ---------------------------------------------------------------------------------------------------
// Output: summary, Markdown, SVG
// ---------------------------------------------------------------------------------------------------

function fmt(n: number | null, digits = 0): string {
  if (n === null || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function pct(share: number | null, digits = 1): string {
  return share === null ? '-' : `${(100 * share).toFixed(digits)} %`;
}

/** A change in percent for humans: +12.3 %, \u221245.6 % (a real minus sign), or - when unknown. */
export function formatChange(c: Change): string {
  if (c === null) return '-';
  const s = c.toFixed(1);
  return c > 0 ? `+${s} %` : c < 0 ? `\u2212${s.slice(1)} %` : '0.0 %';
}

function ms(d: Distribution): string {
  if (d.p50 === null) return d.unknown > 0 ? `unknown (${d.unknown} samples)` : '-';
  const unknown = d.unknown > 0 ? `, unknown in ${d.unknown} of ${d.samples} samples` : '';
  return `p50 ${fmt(d.p50, 1)} ms, p95 ${fmt(d.p95, 1)} ms, max ${fmt(d.max, 1)} ms${unknown}`;
}

/** The headline lines (also printed on stdout). */
export function formatNovaSummary(r: NovaReport): string[] {
  const c = r.comparison;
  const t = r.tagged;
  const replicas = Object.values(t.staleness.byReplica);
  const worstReplicaP95 = Math.max(...replicas.map((p) => p.staleness.p95 ?? 0));
  const worstReplicaMax = Math.max(...replicas.map((p) => p.staleness.max ?? 0));
  const errors = r.baseline.errors + r.tagged.errors;
  return [
    `client mode: ${r.config.clientMode} (${r.config.clientMode === 'oslo' ? 'BEGIN ... COMMIT/ROLLBACK, as oslo.db' : 'autocommit statements'}); ` +
      `transactions opened with BEGIN: ${fmt(t.compute.transactions + t.api.transactions)} with pgsplit, ` +
      `${fmt(t.compute.replicaTransactions)} of the periodic tasks' on a replica`,
    `periodic-task reads served by replicas: baseline ${pct(r.baseline.replicaShare)}, with pgsplit ${pct(t.replicaShare)} ` +
      `(${fmt(t.compute.readsOnReplica)} of ${fmt(t.compute.readsOnReplica + t.compute.readsOnPrimary)}; ` +
      `${pct(t.eligibleReplicaShare)} of the unhinted ones)`,
    `primary tuples read per second (Nova tables): baseline ${fmt(c.primaryTuplesReadPerSec.baseline)}, with pgsplit ` +
      `${fmt(c.primaryTuplesReadPerSec.tagged)} (${formatChange(c.primaryTuplesReadPerSec.change)})`,
    `primary tup_returned + tup_fetched per second (nova database): baseline ` +
      `${fmt(c.primaryTupReturnedPerSec.baseline + c.primaryTupFetchedPerSec.baseline)}, with pgsplit ` +
      `${fmt(c.primaryTupReturnedPerSec.tagged + c.primaryTupFetchedPerSec.tagged)} ` +
      `(${formatChange(relativeChange(c.primaryTupReturnedPerSec.baseline + c.primaryTupFetchedPerSec.baseline, c.primaryTupReturnedPerSec.tagged + c.primaryTupFetchedPerSec.tagged))})`,
    `primary tuples read per unit of work (periodic task run or API request): baseline ${fmt(c.primaryTuplesPerUnitOfWork.baseline, 1)}, ` +
      `with pgsplit ${fmt(c.primaryTuplesPerUnitOfWork.tagged, 1)} (${formatChange(c.primaryTuplesPerUnitOfWork.change)})`,
    `primary transactions per second (nova database): baseline ${fmt(c.primaryXactPerSec.baseline)}, with pgsplit ` +
      `${fmt(c.primaryXactPerSec.tagged)} (${formatChange(c.primaryXactPerSec.change)})`,
    `work done: periodic task runs/s baseline ${fmt(c.periodicRunsPerSec.baseline, 1)}, with pgsplit ${fmt(c.periodicRunsPerSec.tagged, 1)}; ` +
      `API requests/s ${fmt(c.apiRequestsPerSec.baseline, 1)} and ${fmt(c.apiRequestsPerSec.tagged, 1)}`,
    `API reads on replicas: baseline ${r.baseline.apiReadsOnReplica} of ${r.baseline.api.primaryReads}, ` +
      `with pgsplit ${t.apiReadsOnReplica} of ${t.api.primaryReads} (measured with pg_is_in_recovery() in every API read)`,
    `staleness during the tagged phase (heartbeat, lower bound): tagged session ${ms(t.staleness.taggedSession.staleness)}, ` +
      `${t.staleness.taggedSession.staleReads} of ${t.staleness.taggedSession.reads} reads stale; ` +
      `replicas read directly p95 up to ${fmt(worstReplicaP95, 1)} ms, max ${fmt(worstReplicaMax, 1)} ms; ` +
      `pgsplit's estimate ${Object.entries(t.staleness.monitorLag).map(([n, d]) => `${n} p95 ${fmt(d.p95)} ms`).join(', ')}`,
    `errors: ${errors}; ${r.ok ? 'PASSED' : `FAILED: ${r.failures.join('; ')}`}`,
  ];
}

function loadRows(r: NovaReport): string[] {
  const b = r.baseline;
  const t = r.tagged;
  const row = (label: string, f: (p: PhaseReport) => number, per = true, digits = 0): string => {
    const vb = per ? perSecond(f(b), b.elapsedMs) : f(b);
    const vt = per ? perSecond(f(t), t.elapsedMs) : f(t);
    return `| ${label} | ${fmt(vb, digits)} | ${fmt(vt, digits)} | ${formatChange(relativeChange(vb, vt))} |`;
  };
  const replicas = (p: PhaseReport, f: (l: ServerLoad) => number): number => Object.values(p.replicas).reduce((s, l) => s + f(l), 0);
  return [
    '| per second (deltas of the servers\' own statistics / phase time), unless said | baseline | with pgsplit | change |',
    '|---|--:|--:|--:|',
    row('primary: tuples read from Nova tables (seq_tup_read + idx_tup_fetch)', (p) => p.primary.tuplesRead),
    row('primary: tuples read from Nova tables per periodic task run or API request (not per second)',
      (p) => p.primary.tuplesRead / Math.max(1, p.compute.runs + p.api.runs), false, 1),
    row('primary: seq_tup_read', (p) => p.primary.seqTupRead),
    row('primary: idx_tup_fetch', (p) => p.primary.idxTupFetch),
    row('primary: seq_scan + idx_scan on Nova tables', (p) => p.primary.seqScan + p.primary.idxScan),
    row('primary: tup_returned (pg_stat_database, nova)', (p) => p.primary.tupReturned),
    row('primary: tup_fetched (pg_stat_database, nova)', (p) => p.primary.tupFetched),
    row('primary: xact_commit (pg_stat_database, nova)', (p) => p.primary.xactCommit, true, 1),
    row('primary: rows inserted + updated in Nova tables', (p) => p.primary.nTupIns + p.primary.nTupUpd),
    row('replicas: tuples read from Nova tables', (p) => replicas(p, (l) => l.tuplesRead)),
    row('replicas: xact_commit (nova)', (p) => replicas(p, (l) => l.xactCommit), true, 1),
    row('periodic task runs', (p) => p.compute.runs, true, 1),
    row('periodic-task reads', (p) => p.compute.readsOnReplica + p.compute.readsOnPrimary, true, 1),
    row('periodic-task writes', (p) => p.compute.writes, true, 1),
    row('API requests', (p) => p.api.runs, true, 1),
  ];
}

function taskRows(p: PhaseReport): string[] {
  const lines = [
    '| task | runs | transactions | statements | reads | on replica | on primary | writes | errors | avg ms | max ms |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const name of [...COMPUTE_TASKS, ...API_REQUESTS] as NovaTaskName[]) {
    const c = p.workload.tasks[name];
    const avg = c.runs === 0 ? null : c.totalMs / c.runs;
    lines.push(
      `| ${name} | ${c.runs} | ${c.transactions} | ${c.statements} | ${c.replicaReads + c.primaryReads} | ${c.readsOnReplica} | ${c.readsOnPrimary} | ` +
        `${c.writes} | ${c.errors} | ${fmt(avg, 1)} | ${fmt(c.maxMs)} |`,
    );
  }
  return lines;
}

function phaseSection(p: PhaseReport, mode: NovaClientMode): string[] {
  const title = p.name === 'baseline' ? 'Baseline (compute hosts untagged, through `connection`)' : 'With pgsplit (compute hosts tagged, through `slave_connection`)';
  const byReason = Object.entries(p.proxy.routedByReason).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  const byNode = Object.entries(p.proxy.routedByNode).map(([k, v]) => `${k} ${v}`).join(', ');
  const x = p.crossCheck;
  const allowance = x.controlAllowance > 0 ? `, allowing ${x.controlAllowance} BEGIN/ROLLBACK units of transactions that read on a replica` : '';
  const verdict = x.exact ? 'equal' : x.consistent ? 'consistent' : 'DIFFERENT';
  const lines = [
    `### ${title}, ${mode} mode`,
    '',
    `Ran ${fmt(p.elapsedMs / 1000, 1)} s. Periodic-task reads on replicas: ${pct(p.replicaShare)} ` +
      `(${p.compute.readsOnReplica} of ${p.compute.readsOnReplica + p.compute.readsOnPrimary}; unhinted reads that may use a replica: ${p.compute.replicaReads}, ` +
      `reads that must see the primary: ${p.compute.primaryReads}). API reads on replicas: ${p.apiReadsOnReplica} of ${p.api.primaryReads}. ` +
      `Transactions opened with BEGIN: periodic tasks ${p.compute.transactions} (${p.compute.replicaTransactions} read on a replica), API ${p.api.transactions}. ` +
      `Errors: ${p.errors}. Read-your-writes misses (API): ${p.workload.readYourWritesMisses}. Duplicate audits: ${p.workload.duplicateAudits}. ` +
      `Bandwidth counter rollovers handled: ${p.workload.bandwidthRollovers}.`,
    '',
    ...taskRows(p),
    '',
    `pgsplit routed (units, this phase, including the tagged probe's ${p.staleness.taggedSession.reads} reads): by node ${byNode || '-'}; by reason ${byReason || '-'}; ` +
      `re-runs on the primary ${p.proxy.rerunsOnPrimary}, retries ${p.proxy.retries}. ` +
      `Cross-check: pgsplit's replica units minus the probe's = ${x.proxyReplicaUnits}, workload reads that reported a replica = ` +
      `${x.workloadReadsOnReplica}${allowance} (${verdict}).`,
    '',
    `URL check before the phase: \`connection\` read from ${p.urlCheck.connectionOnReplica ? 'a replica' : 'the primary'}, ` +
      `\`slave_connection\` from ${p.urlCheck.slaveConnectionOnReplica ? 'a replica' : 'the primary'}.`,
    '',
    '| staleness (ms) | reads / samples | stale reads | p50 | p95 | max |',
    '|---|--:|--:|--:|--:|--:|',
  ];
  const probeRow = (label: string, probe: ProbeReport, where: string): string =>
    `| ${label} | ${probe.reads}${where} | ${probe.staleReads} | ${fmt(probe.staleness.p50, 1)} | ${fmt(probe.staleness.p95, 1)} | ${fmt(probe.staleness.max, 1)} |`;
  const tp = p.staleness.taggedSession;
  lines.push(probeRow('tagged session through pgsplit (heartbeat)', tp, ` (${tp.onReplica} on replicas)`));
  for (const [name, probe] of Object.entries(p.staleness.byReplica)) lines.push(probeRow(`${name}, read directly (heartbeat)`, probe, ''));
  for (const [name, d] of Object.entries(p.staleness.monitorLag)) {
    const unknown = d.unknown > 0 ? ` (${d.unknown} unknown)` : '';
    lines.push(`| ${name}, pgsplit's lag estimate (upper bound) | ${d.samples}${unknown} | - | ${fmt(d.p50, 1)} | ${fmt(d.p95, 1)} | ${fmt(d.max, 1)} |`);
  }
  if (p.harnessErrors.length > 0) lines.push('', `Harness errors: ${p.harnessErrors.slice(0, 5).join('; ')}`);
  return lines;
}

/** One line per client mode: what the issue's targets are about. */
function modeRows(result: NovaBenchResult): string[] {
  const lines = [
    '| client mode | periodic-task reads on replicas (with pgsplit) | API reads on replicas (both phases) | errors (both phases) | primary tuples read/s: baseline, with pgsplit (change) | result |',
    '|---|--:|--:|--:|--:|---|',
  ];
  for (const r of result.reports) {
    const t = r.tagged;
    const c = r.comparison.primaryTuplesReadPerSec;
    lines.push(
      `| ${r.config.clientMode} | ${pct(t.replicaShare)} (${t.compute.readsOnReplica} of ${t.compute.readsOnReplica + t.compute.readsOnPrimary}) | ` +
        `${r.baseline.apiReadsOnReplica + t.apiReadsOnReplica} of ${r.baseline.api.primaryReads + t.api.primaryReads} | ${r.baseline.errors + t.errors} | ` +
        `${fmt(c.baseline)}, ${fmt(c.tagged)} (${formatChange(c.change)}) | ${r.ok ? 'passed' : 'FAILED'} |`,
    );
  }
  return lines;
}

/** The Markdown report (nova.md): every client mode of the run. */
export function formatNovaMarkdown(result: NovaBenchResult): string {
  const first = result.reports[0];
  if (!first) throw new Error('formatNovaMarkdown: the run has no report');
  const cfg = first.config;
  const i = cfg.intervals;
  const modes = result.reports.map((r) => r.config.clientMode);
  const lines = [
    '# Nova periodic-task benchmark',
    '',
    `Date: ${first.date}${first.command ? `  \nCommand: \`${first.command}\`` : ''}  `,
    `Machine: ${first.machine.cpus} CPUs (${first.machine.cpuModel}), ${first.machine.memoryGiB.toFixed(1)} GiB memory, ${first.machine.os}, ` +
      `Node ${first.machine.node}, PostgreSQL ${first.machine.postgres} (local cluster kit: primary + ${cfg.replicas} streaming replicas, fsync off, ` +
      `synchronous_commit on); 1-minute load average ${first.machine.loadAverage.start.toFixed(2)} before the run, ` +
      `${(result.reports[result.reports.length - 1] ?? first).machine.loadAverage.end.toFixed(2)} after  `,
    `Configuration (${cfg.preset}): ${cfg.computeHosts} compute hosts with ${cfg.instancesPerHost} seeded instances each, ${cfg.apiSessions} API sessions, ` +
      `${cfg.seconds} s per phase, seed ${cfg.seed}. Task intervals: update_available_resource ${i.update_available_resource} ms, ` +
      `_poll_bandwidth_usage ${i._poll_bandwidth_usage} ms, _instance_usage_audit ${i._instance_usage_audit} ms (audit and bandwidth period ` +
      `${cfg.auditPeriodMs} ms), _poll_volume_usage ${i._poll_volume_usage} ms, API pause ${i.api_request} ms (jittered x0.5-1.5). ` +
      `pgsplit defaults: max_lag ${cfg.pgsplit.maxLagMs} ms, read_your_writes_timeout ${cfg.pgsplit.readYourWritesTimeoutMs} ms, ` +
      `monitor interval ${cfg.pgsplit.monitorIntervalMs} ms.  `,
    `oslo.db URLs: \`connection = ${cfg.connection}\`, \`slave_connection = ${cfg.slaveConnection}\` (the port is the run's).  `,
    `Client mode${modes.length > 1 ? 's' : ''}: ${modes.map((m) => `\`${m}\``).join(', ')}.`,
    '',
    `**Result: ${result.ok ? 'passed' : 'FAILED'}.**`,
    '',
    ...modeRows(result),
    '',
    '![primary read load and replica share](nova.svg)',
  ];
  for (const r of result.reports) {
    lines.push(
      '',
      `## Client mode \`${r.config.clientMode}\``,
      '',
      `The workload's sessions send their statements ${CLIENT_MODE_TEXT[r.config.clientMode]}.`,
      '',
      ...formatNovaSummary(r).map((l) => `- ${l}`),
      '',
      ...loadRows(r),
      '',
      ...phaseSection(r.baseline, r.config.clientMode),
      '',
      ...phaseSection(r.tagged, r.config.clientMode),
    );
  }
  lines.push(
    '',
    '## How this was measured',
    '',
    '- For each client mode, two phases run the same workload for the same time on a freshly created and seeded `nova` database, with the same ' +
      'random seed. API sessions connect through `connection` in both; the compute hosts read through `connection` in the baseline (everything ' +
      'on the primary, as without pgsplit\'s routing) and through `slave_connection` with pgsplit.',
    `- Client modes: \`oslo\` sends the statements ${CLIENT_MODE_TEXT.oslo}. \`autocommit\` sends ${CLIENT_MODE_TEXT.autocommit}.`,
    '- Where a read ran is measured per statement: every read of the workload is wrapped so that it also returns `pg_is_in_recovery()` ' +
      '(true on a replica) and one row even when it finds nothing. Inside a transaction that call runs where the transaction runs. pgsplit\'s own ' +
      'routing counters are shown alongside and cross-checked (in `oslo` mode allowing for the `BEGIN` and `ROLLBACK` of transactions that ran on a replica).',
    '- The `_instance_usage_audit` check of `task_log` carries `/* pgsplit:route=primary */` (it gates a one-shot action), so it counts ' +
      'among the reads that must see the primary, like every API read. (Nova reads it through its main engine; here it goes through ' +
      '`slave_connection` with the hint, in a reader transaction of its own in `oslo` mode, so the run also checks the hint.)',
    '- Primary read load: deltas of the primary\'s own `pg_stat_user_tables` (summed over the Nova tables) and `pg_stat_database` ' +
      '(the `nova` database) taken directly on the primary before and after each phase, once no session used `nova` any more and its ' +
      'statistics were flushed. pgsplit\'s monitor and the heartbeat use the `postgres` database, so `nova` holds the workload\'s ' +
      'traffic (and the few catalog reads of the statistics queries). Nothing was reset.',
    `- Staleness: a heartbeat row (database \`postgres\`) is updated on the primary every ${cfg.heartbeatIntervalMs} ms; a tagged session through pgsplit and ` +
      `a direct session on each replica read it every ${cfg.stalenessSampleMs} ms. A read's staleness is how long before it the first heartbeat it ` +
      'missed had been committed (0 if none): a lower bound, which catches a replica d ms behind in about d / ' +
      `${cfg.heartbeatIntervalMs} of its reads; "stale reads" counts the reads that missed a committed heartbeat. pgsplit's lag estimate ` +
      '(ReplicaMonitor.lagMs, an upper bound used for routing against max_lag) is sampled at the same rate.',
    '- A mode fails on any error, any API read on a replica, any hinted read on a replica, any read-your-writes miss or duplicate audit, ' +
      'when no periodic-task read reached a replica in the tagged phase, and in `oslo` mode when fewer than 90 % of them did. With both modes, ' +
      'the run also fails when `oslo` mode took less read load off the primary than `autocommit` mode.',
    '- The workload batches what Nova does per instance (bandwidth and volume usage) into one statement per host and task; the mix of ' +
      'reads and writes per task is Nova\'s, the statement count is lower.',
  );
  const failures = [...result.failures, ...result.reports.flatMap((r) => r.failures.map((f) => `${r.config.clientMode}: ${f}`))];
  const notes = result.reports.flatMap((r) => r.notes.map((n) => `${r.config.clientMode}: ${n}`));
  if (failures.length > 0) lines.push('', '## Failures', '', ...failures.map((f) => `- ${f}`));
  if (notes.length > 0) lines.push('', '## Notes', '', ...notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * A small bar chart (nova.svg): for each client mode, the primary's read load baseline and with pgsplit,
 * and the share of periodic-task reads served by replicas.
 */
export function renderNovaSvg(result: NovaBenchResult): string {
  const reports = result.reports;
  const first = reports[0];
  if (!first) throw new Error('renderNovaSvg: the run has no report');
  const W = 760;
  const H = 340;
  const top = 70;
  const bottom = 250;
  const barH = bottom - top;
  const maxLoad = Math.max(1, ...reports.flatMap((r) => [r.comparison.primaryTuplesReadPerSec.baseline, r.comparison.primaryTuplesReadPerSec.tagged]));
  const parts: string[] = [];
  const text = (x: number, y: number, s: string, opts: { anchor?: string; size?: number; weight?: string; fill?: string } = {}): void => {
    parts.push(
      `<text x="${x}" y="${y}" text-anchor="${opts.anchor ?? 'middle'}" font-size="${opts.size ?? 13}"` +
        `${opts.weight ? ` font-weight="${opts.weight}"` : ''} fill="${opts.fill ?? '#222'}">${escapeXml(s)}</text>`,
    );
  };
  /** A bar with its value on top and its label lines below (short lines: four bars share 320 px). */
  const bar = (x: number, width: number, fraction: number, fill: string, label: readonly string[], value: string): void => {
    const h = Math.max(0, Math.min(1, fraction)) * barH;
    parts.push(`<rect x="${x.toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${width.toFixed(1)}" height="${h.toFixed(1)}" fill="${fill}"/>`);
    text(Math.round(x + width / 2), Math.round(bottom - h - 6), value, { weight: 'bold', size: 12 });
    label.forEach((line, k) => text(Math.round(x + width / 2), bottom + 15 + 13 * k, line, { size: 11 }));
  };
  text(W / 2, 24, 'Nova periodic tasks through pgsplit', { size: 16, weight: 'bold' });
  text(
    W / 2,
    44,
    `${first.config.computeHosts} compute hosts, ${first.config.apiSessions} API sessions, ${first.config.seconds} s per phase, ` +
      `client mode ${reports.map((r) => r.config.clientMode).join(' and ')}, PostgreSQL ${first.machine.postgres}`,
    { size: 12, fill: '#555' },
  );
  // Left panel: the primary's read load, baseline and with pgsplit per mode.
  const leftBars = reports.flatMap((r) => {
    const c = r.comparison.primaryTuplesReadPerSec;
    return [
      { value: c.baseline, fill: '#9aa5b1', label: [r.config.clientMode, 'baseline'] },
      { value: c.tagged, fill: '#2f6fb3', label: [r.config.clientMode, `pgsplit ${formatChange(c.change)}`] },
    ];
  });
  const leftWidth = 320 / leftBars.length;
  leftBars.forEach((b, k) => bar(50 + k * leftWidth + 6, leftWidth - 12, b.value / maxLoad, b.fill, b.label, fmt(b.value)));
  text(210, bottom + 58, 'primary tuples read/s (Nova tables)', { size: 12 });
  parts.push(`<line x1="40" y1="${bottom}" x2="380" y2="${bottom}" stroke="#444"/>`);
  // Right panel: share of periodic-task reads served by replicas (0-100 %), with pgsplit per mode.
  const rightWidth = 300 / reports.length;
  reports.forEach((r, k) => bar(430 + k * rightWidth + 20, rightWidth - 40, r.tagged.replicaShare ?? 0, '#3a9a5b', [`${r.config.clientMode} mode`], pct(r.tagged.replicaShare)));
  parts.push(`<line x1="420" y1="${bottom}" x2="740" y2="${bottom}" stroke="#444"/>`);
  parts.push(`<line x1="420" y1="${top}" x2="740" y2="${top}" stroke="#bbb" stroke-dasharray="4 3"/>`);
  text(416, top + 4, '100 %', { anchor: 'end', size: 11, fill: '#777' });
  text(580, bottom + 58, 'periodic-task reads served by replicas, with pgsplit', { size: 12 });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n` +
    `<rect width="${W}" height="${H}" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`
  );
}
