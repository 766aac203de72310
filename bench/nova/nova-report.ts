/**
 * The Nova benchmark's report: its shape (NovaReport), and its forms: the summary lines printed on
 * stdout, the Markdown of bench/results/nova.md and the SVG chart of bench/results/nova.svg. The
 * measuring is in nova-bench.ts.
 */
import { API_REQUESTS, COMPUTE_TASKS, type CounterTotals, type NovaIntervals, type NovaTaskName, type NovaWorkloadStats } from '../../src/demo/nova-workload.js';

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
   * two independent counts of the same thing.
   */
  crossCheck: { proxyReplicaUnits: number; workloadReadsOnReplica: number; consistent: boolean };
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

/** What one benchmark run found. */
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
    mode: string;
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
  files?: { markdown: string; svg: string };
}

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
    '| task | runs | statements | reads | on replica | on primary | writes | errors | avg ms | max ms |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const name of [...COMPUTE_TASKS, ...API_REQUESTS] as NovaTaskName[]) {
    const c = p.workload.tasks[name];
    const avg = c.runs === 0 ? null : c.totalMs / c.runs;
    lines.push(
      `| ${name} | ${c.runs} | ${c.statements} | ${c.replicaReads + c.primaryReads} | ${c.readsOnReplica} | ${c.readsOnPrimary} | ` +
        `${c.writes} | ${c.errors} | ${fmt(avg, 1)} | ${fmt(c.maxMs)} |`,
    );
  }
  return lines;
}

function phaseSection(p: PhaseReport): string[] {
  const title = p.name === 'baseline' ? 'Phase 1: baseline (compute hosts untagged, through `connection`)' : 'Phase 2: with pgsplit (compute hosts tagged, through `slave_connection`)';
  const byReason = Object.entries(p.proxy.routedByReason).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  const byNode = Object.entries(p.proxy.routedByNode).map(([k, v]) => `${k} ${v}`).join(', ');
  const lines = [
    `### ${title}`,
    '',
    `Ran ${fmt(p.elapsedMs / 1000, 1)} s. Periodic-task reads on replicas: ${pct(p.replicaShare)} ` +
      `(${p.compute.readsOnReplica} of ${p.compute.readsOnReplica + p.compute.readsOnPrimary}; unhinted reads that may use a replica: ${p.compute.replicaReads}, ` +
      `reads that must see the primary: ${p.compute.primaryReads}). API reads on replicas: ${p.apiReadsOnReplica} of ${p.api.primaryReads}. ` +
      `Errors: ${p.errors}. Read-your-writes misses (API): ${p.workload.readYourWritesMisses}. Duplicate audits: ${p.workload.duplicateAudits}. ` +
      `Bandwidth counter rollovers handled: ${p.workload.bandwidthRollovers}.`,
    '',
    ...taskRows(p),
    '',
    `pgsplit routed (units, this phase, including the tagged probe's ${p.staleness.taggedSession.reads} reads): by node ${byNode || '-'}; by reason ${byReason || '-'}; ` +
      `re-runs on the primary ${p.proxy.rerunsOnPrimary}, retries ${p.proxy.retries}. ` +
      `Cross-check: pgsplit's replica units minus the probe's = ${p.crossCheck.proxyReplicaUnits}, workload reads that reported a replica = ` +
      `${p.crossCheck.workloadReadsOnReplica} (${p.crossCheck.consistent ? 'equal' : 'DIFFERENT'}).`,
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

/** The Markdown report (bench/results/nova.md). */
export function formatNovaMarkdown(r: NovaReport): string {
  const cfg = r.config;
  const i = cfg.intervals;
  const lines = [
    '# Nova periodic-task benchmark',
    '',
    `Date: ${r.date}${r.command ? `  \nCommand: \`${r.command}\`` : ''}  `,
    `Machine: ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memoryGiB.toFixed(1)} GiB memory, ${r.machine.os}, ` +
      `Node ${r.machine.node}, PostgreSQL ${r.machine.postgres} (local cluster kit: primary + ${cfg.replicas} streaming replicas, fsync off, ` +
      `synchronous_commit on); 1-minute load average ${r.machine.loadAverage.start.toFixed(2)} before the run, ${r.machine.loadAverage.end.toFixed(2)} after  `,
    `Configuration (${cfg.mode}): ${cfg.computeHosts} compute hosts with ${cfg.instancesPerHost} seeded instances each, ${cfg.apiSessions} API sessions, ` +
      `${cfg.seconds} s per phase, seed ${cfg.seed}. Task intervals: update_available_resource ${i.update_available_resource} ms, ` +
      `_poll_bandwidth_usage ${i._poll_bandwidth_usage} ms, _instance_usage_audit ${i._instance_usage_audit} ms (audit and bandwidth period ` +
      `${cfg.auditPeriodMs} ms), _poll_volume_usage ${i._poll_volume_usage} ms, API pause ${i.api_request} ms (jittered x0.5-1.5). ` +
      `pgsplit defaults: max_lag ${cfg.pgsplit.maxLagMs} ms, read_your_writes_timeout ${cfg.pgsplit.readYourWritesTimeoutMs} ms, ` +
      `monitor interval ${cfg.pgsplit.monitorIntervalMs} ms.  `,
    `oslo.db URLs: \`connection = ${cfg.connection}\`, \`slave_connection = ${cfg.slaveConnection}\` (the port is the run's).`,
    '',
    `**Result: ${r.ok ? 'passed' : 'FAILED'}.**`,
    '',
    ...formatNovaSummary(r).map((l) => `- ${l}`),
    '',
    '![primary read load and replica share](nova.svg)',
    '',
    '## Comparison',
    '',
    ...loadRows(r),
    '',
    '## Phases',
    '',
    ...phaseSection(r.baseline),
    '',
    ...phaseSection(r.tagged),
    '',
    '## How this was measured',
    '',
    '- Both phases run the same workload for the same time on a freshly created and seeded `nova` database, with the same random seed. ' +
      'API sessions connect through `connection` in both; the compute hosts through `connection` in the baseline (everything on the primary, ' +
      'as without pgsplit\'s routing) and through `slave_connection` with pgsplit.',
    '- Where a read ran is measured per statement: every read of the workload is wrapped so that it also returns `pg_is_in_recovery()` ' +
      '(true on a replica) and one row even when it finds nothing. pgsplit\'s own routing counters are shown alongside and cross-checked.',
    '- The `_instance_usage_audit` check of `task_log` carries `/* pgsplit:route=primary */` (it gates a one-shot action), so it counts ' +
      'among the reads that must see the primary, like every API read.',
    '- Primary read load: deltas of the primary\'s own `pg_stat_user_tables` (summed over the Nova tables) and `pg_stat_database` ' +
      '(the `nova` database) taken directly on the primary before and after each phase, once no session used `nova` any more and its ' +
      'statistics were flushed. pgsplit\'s monitor and the heartbeat use the `postgres` database, so `nova` holds the workload\'s ' +
      'traffic (and the few catalog reads of the statistics queries). Nothing was reset.',
    `- Staleness: a heartbeat row (database \`postgres\`) is updated on the primary every ${cfg.heartbeatIntervalMs} ms; a tagged session through pgsplit and ` +
      `a direct session on each replica read it every ${cfg.stalenessSampleMs} ms. A read's staleness is how long before it the first heartbeat it ` +
      'missed had been committed (0 if none): a lower bound, which catches a replica d ms behind in about d / ' +
      `${cfg.heartbeatIntervalMs} of its reads; "stale reads" counts the reads that missed a committed heartbeat. pgsplit's lag estimate ` +
      '(ReplicaMonitor.lagMs, an upper bound used for routing against max_lag) is sampled at the same rate.',
    '- The run fails on any error, any API read on a replica, any hinted read on a replica, any read-your-writes miss or duplicate audit, ' +
      'and when no periodic-task read reached a replica in the tagged phase.',
    '- The workload batches what Nova does per instance (bandwidth and volume usage) into one statement per host and task; the mix of ' +
      'reads and writes per task is Nova\'s, the statement count is lower.',
  ];
  if (r.failures.length > 0) lines.push('', '## Failures', '', ...r.failures.map((f) => `- ${f}`));
  if (r.notes.length > 0) lines.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A small bar chart (bench/results/nova.svg): primary read load baseline vs tagged, and the replica share. */
export function renderNovaSvg(r: NovaReport): string {
  const W = 720;
  const H = 320;
  const top = 70;
  const bottom = 260;
  const barH = bottom - top;
  const c = r.comparison.primaryTuplesReadPerSec;
  const maxLoad = Math.max(c.baseline, c.tagged, 1);
  const parts: string[] = [];
  const text = (x: number, y: number, s: string, opts: { anchor?: string; size?: number; weight?: string; fill?: string } = {}): void => {
    parts.push(
      `<text x="${x}" y="${y}" text-anchor="${opts.anchor ?? 'middle'}" font-size="${opts.size ?? 13}"` +
        `${opts.weight ? ` font-weight="${opts.weight}"` : ''} fill="${opts.fill ?? '#222'}">${escapeXml(s)}</text>`,
    );
  };
  const bar = (x: number, width: number, fraction: number, fill: string, label: string, value: string): void => {
    const h = Math.max(0, Math.min(1, fraction)) * barH;
    parts.push(`<rect x="${x}" y="${(bottom - h).toFixed(1)}" width="${width}" height="${h.toFixed(1)}" fill="${fill}"/>`);
    text(x + width / 2, Math.round(bottom - h - 6), value, { weight: 'bold' });
    text(x + width / 2, bottom + 18, label);
  };
  text(W / 2, 24, 'Nova periodic tasks through pgsplit', { size: 16, weight: 'bold' });
  text(
    W / 2,
    44,
    `${r.config.computeHosts} compute hosts, ${r.config.apiSessions} API sessions, ${r.config.seconds} s per phase, PostgreSQL ${r.machine.postgres}`,
    { size: 12, fill: '#555' },
  );
  // Left panel: the primary's read load.
  bar(80, 100, c.baseline / maxLoad, '#9aa5b1', 'baseline', fmt(c.baseline));
  bar(220, 100, c.tagged / maxLoad, '#2f6fb3', 'with pgsplit', fmt(c.tagged));
  text(200, bottom + 42, `primary tuples read/s (Nova tables) ${formatChange(c.change)}`, { size: 12 });
  parts.push(`<line x1="60" y1="${bottom}" x2="340" y2="${bottom}" stroke="#444"/>`);
  // Right panel: share of periodic-task reads served by replicas (0-100 %).
  const sb = r.baseline.replicaShare ?? 0;
  const st = r.tagged.replicaShare ?? 0;
  bar(440, 100, sb, '#9aa5b1', 'baseline', pct(r.baseline.replicaShare));
  bar(580, 100, st, '#3a9a5b', 'with pgsplit', pct(r.tagged.replicaShare));
  parts.push(`<line x1="420" y1="${bottom}" x2="700" y2="${bottom}" stroke="#444"/>`);
  parts.push(`<line x1="420" y1="${top}" x2="700" y2="${top}" stroke="#bbb" stroke-dasharray="4 3"/>`);
  text(416, top + 4, '100 %', { anchor: 'end', size: 11, fill: '#777' });
  text(560, bottom + 42, 'periodic-task reads served by replicas', { size: 12 });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n` +
    `<rect width="${W}" height="${H}" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`
  );
}
