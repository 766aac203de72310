/**
 * The Nova periodic-task benchmark: what pgsplit takes off the primary of an OpenStack Nova deployment.
 *
 * One run starts a local primary with two streaming replicas (the cluster kit), pgsplit in this process,
 * and the Nova-like workload of src/demo/nova-workload.ts, and runs that workload twice for the same time
 * on a freshly created and seeded `nova` database, once per client mode asked for (`oslo`: transactions
 * opened with a plain BEGIN, as oslo.db sends them; `autocommit`: one statement at a time):
 *
 *   baseline  the compute hosts' periodic tasks connect through `connection` (untagged): everything runs
 *             on the primary, as it does without pgsplit's routing;
 *   tagged    they connect through `slave_connection`, the same proxy tagged in the URL
 *             (`?options=-c%20pgsplit.route%3Dreplica`): their reads may run on replicas.
 *
 * API sessions use `connection` in both phases. What is measured, and where from:
 *   - where each read ran: every read of the workload also returns pg_is_in_recovery() (see locateRead in
 *     the workload; inside a transaction it reports the server the transaction runs on), so replica share
 *     and "API reads on replicas" are counted per statement; pgsplit's own routing counters
 *     (ProxyServer.stats) are diffed per phase and checked against those counts;
 *   - the primary's read load: deltas of its own statistics, taken directly on the primary before and
 *     after each phase (pg_stat_user_tables seq_tup_read + idx_tup_fetch summed over the Nova tables, and
 *     pg_stat_database tup_returned / tup_fetched / xact_commit of the `nova` database); the same on each
 *     replica shows where the reads went;
 *   - staleness: a heartbeat row in the `postgres` database is updated on the primary every 25 ms; a
 *     tagged session through pgsplit and a direct session on each replica read it every 100 ms, and the
 *     staleness of a read is how long before it the first write it missed had been committed (a lower
 *     bound, 25 ms resolution); pgsplit's own lag estimate per replica (ReplicaMonitor.lagMs, an upper
 *     bound) is sampled alongside.
 *
 * The heartbeat and the monitor live in the `postgres` database, the workload alone in `nova`, so the
 * `nova` statistics hold the workload's load (plus the few catalog reads of the statistics queries).
 * Nothing is reset: only deltas are used, and the `nova` database and `nova` role are the benchmark's own.
 */
import fsp from 'node:fs/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../../src/cluster/local-cluster.js';
import { resolveConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/log/logger.js';
import { ProxyServer } from '../../src/proxy/proxy-server.js';
import { Rng } from '../../test/fixtures/rng.js';
import { NovaWorkload } from '../../src/demo/nova-workload.js';
import { sumCounters } from '../../src/demo/nova-meter.js';
import { API_REQUESTS, COMPUTE_TASKS, type NovaClientMode, type NovaIntervals, type NovaTaskName } from '../../src/demo/nova-workload-options.js';
import {
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TABLE,
  Heartbeat,
  STALENESS_SAMPLE_MS,
  StalenessProbe,
  directClient,
  loadDelta,
  quiesce,
  sampleLoad,
  sampleMonitorLag,
  sleep,
  urlClient,
} from './nova-measurements.js';
import {
  formatChange,
  formatNovaMarkdown,
  perSecond,
  relativeChange,
  renderNovaSvg,
  type Distribution,
  type NovaBenchResult,
  type NovaReport,
  type PhaseReport,
  type ProbeReport,
  type ServerLoad,
} from './nova-report.js';

export type { Change, Distribution, NovaBenchResult, NovaReport, PhaseReport, ProbeReport, ServerLoad } from './nova-report.js';
export { formatNovaMarkdown, formatNovaSummary, renderNovaSvg } from './nova-report.js';
export { HEARTBEAT_INTERVAL_MS, STALENESS_SAMPLE_MS } from './nova-measurements.js';

/**
 * Task intervals of the benchmark. Nova runs update_available_resource every 60 s, polls bandwidth every
 * bandwidth_poll_interval (600 s) and volumes every volume_usage_poll_interval, and checks the usage
 * audit every periodic tick; these are compressed so that every task runs many times in a 20 s phase.
 */
export const BENCH_INTERVALS: Readonly<NovaIntervals> = Object.freeze({
  update_available_resource: 600,
  _poll_bandwidth_usage: 1000,
  _instance_usage_audit: 1000,
  _poll_volume_usage: 1000,
  api_request: 100,
});

/** Length of an audit (and bandwidth) period in the benchmark: several audits per phase. */
export const BENCH_AUDIT_PERIOD_MS = 5000;

/**
 * Server settings over the cluster kit's. The kit turns synchronous_commit off for speed; then WAL
 * reaches the replicas only when the WAL writer flushes it (wal_writer_delay, 200 ms), so the replicas
 * trail by 100-400 ms, and tagged sessions spend their time waiting for read-your-writes after each
 * write. A production Nova database commits synchronously; with fsync still off that costs little here.
 */
export const BENCH_SERVER_SETTINGS: Readonly<Record<string, string>> = Object.freeze({ synchronous_commit: 'on' });

/** Share of periodic-task reads the tagged phase must run on replicas in oslo mode. */
export const OSLO_REPLICA_SHARE_TARGET = 0.9;

const TAG_QUERY = 'options=-c%20pgsplit.route%3Dreplica';

/** What {@link runNovaBench} runs. */
export interface NovaBenchOptions {
  /** Length of each phase (baseline, tagged) in seconds. */
  seconds: number;
  /** Simulated compute hosts: one session each, running the four periodic tasks. */
  computeHosts: number;
  /** Untagged API sessions (create, list, show, delete instances). */
  apiSessions: number;
  /** Instances seeded per compute host (default 20). */
  instancesPerHost?: number;
  /** Overrides of {@link BENCH_INTERVALS}. */
  intervals?: Partial<NovaIntervals>;
  /** Default {@link BENCH_AUDIT_PERIOD_MS}. */
  auditPeriodMs?: number;
  /**
   * The client modes to run, in this order, each with its own baseline and tagged phase (default
   * ['oslo']): `oslo` sends every unit of work as a transaction opened with a plain BEGIN, as oslo.db
   * does; `autocommit` sends one statement at a time.
   */
  clientModes?: readonly NovaClientMode[];
  /** When set, nova.md and nova.svg are written there (created if missing). */
  outDir?: string;
  /** Label of the configuration in the report (e.g. 'quick', 'full'); default 'custom'. */
  preset?: string;
  /** The command line, quoted in the report. */
  command?: string;
  /** Seed of the workload's random choices, the same in both phases (default 1). */
  seed?: number;
  /** Progress lines; default none. */
  log?: (line: string) => void;
}

// ---------------------------------------------------------------------------------------------------
// The phases
// ---------------------------------------------------------------------------------------------------

interface ProxySnapshot {
  byNode: Map<string, number>;
  byReason: Map<string, number>;
  reruns: number;
  retries: number;
}

function proxySnapshot(proxy: ProxyServer): ProxySnapshot {
  return {
    byNode: new Map(proxy.stats.routedByNode),
    byReason: new Map(proxy.stats.routedByReason),
    reruns: proxy.stats.rerunsOnPrimary,
    retries: [...proxy.stats.retriesByNode.values()].reduce((a, b) => a + b, 0),
  };
}

function mapDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** Drops and recreates the `nova` database (owned by the `nova` role), so both phases start alike. */
async function recreateNovaDatabase(cluster: LocalCluster): Promise<void> {
  await cluster.primary.query('DROP DATABASE IF EXISTS nova WITH (FORCE)');
  await cluster.primary.query('CREATE DATABASE nova OWNER nova');
}

/** pg_is_in_recovery() through a URL: whether that URL's sessions read from a replica. */
async function readsOnReplica(url: string): Promise<boolean> {
  const client = await urlClient(url, 'nova-bench-url-check');
  try {
    const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return rows[0]?.r === true;
  } finally {
    await client.end().catch(() => {});
  }
}

interface BenchContext {
  cluster: LocalCluster;
  proxy: ProxyServer;
  heartbeat: Heartbeat;
  connection: string;
  slaveConnection: string;
  /** The tagged URL of the staleness probe: slave_connection, on the `postgres` database. */
  probeConnection: string;
  opts: Required<Omit<NovaBenchOptions, 'outDir' | 'log' | 'intervals' | 'command' | 'clientModes'>> & { intervals: NovaIntervals };
  log: (line: string) => void;
}

async function runPhase(ctx: BenchContext, clientMode: NovaClientMode, name: 'baseline' | 'tagged'): Promise<PhaseReport> {
  const { cluster, proxy, opts } = ctx;
  const log = (line: string): void => ctx.log(`[${clientMode}] ${line}`);
  const tagged = name === 'tagged';
  log(`${name}: recreating the nova database and seeding ${opts.computeHosts} hosts x ${opts.instancesPerHost} instances (through pgsplit, untagged)`);
  await recreateNovaDatabase(cluster);
  // Seeded, so both phases make the same random choices.
  const rng = new Rng(opts.seed);
  const workload = new NovaWorkload({
    connection: ctx.connection,
    slaveConnection: ctx.slaveConnection,
    tagComputeSessions: tagged,
    clientMode,
    computeHosts: opts.computeHosts,
    apiSessions: opts.apiSessions,
    instancesPerHost: opts.instancesPerHost,
    intervals: opts.intervals,
    auditPeriodMs: opts.auditPeriodMs,
    random: () => rng.float(),
  });
  const harnessErrors: string[] = [];
  const probes: StalenessProbe[] = [];
  let lagSampler: { stop(): Record<string, Distribution> } | undefined;
  try {
    await workload.setup();
    // Fresh statistics for the planner, so plans do not change when autoanalyze runs mid-phase.
    await cluster.primary.query('ANALYZE', [], 'nova');
    await cluster.waitForReplication(15_000);
    const urlCheck = {
      connectionOnReplica: await readsOnReplica(ctx.connection),
      slaveConnectionOnReplica: await readsOnReplica(ctx.slaveConnection),
    };
    await quiesce(cluster, () => proxy.pools.closeIdle());

    const before = { primary: await sampleLoad(cluster.primary), replicas: await Promise.all(cluster.replicas.map(sampleLoad)) };
    const proxyBefore = proxySnapshot(proxy);
    probes.push(new StalenessProbe('tagged probe', await urlClient(ctx.probeConnection, 'nova-bench-probe'), ctx.heartbeat));
    for (const r of cluster.replicas) probes.push(new StalenessProbe(r.name, await directClient(r, 'postgres', 'nova-bench-probe'), ctx.heartbeat));
    for (const p of probes) p.start();
    lagSampler = sampleMonitorLag(proxy);

    log(`${name}: running ${opts.seconds} s, compute hosts through ${tagged ? 'slave_connection (tagged)' : 'connection (untagged)'}`);
    await workload.start();
    await sleep(opts.seconds * 1000);
    await workload.stop();
    const monitorLag = lagSampler.stop();
    lagSampler = undefined;
    const probeReports = await Promise.all(probes.map((p) => p.stop()));
    for (const p of probes) harnessErrors.push(...p.errors);
    probes.length = 0;
    const proxyAfter = proxySnapshot(proxy);
    await quiesce(cluster, () => proxy.pools.closeIdle());
    const after = { primary: await sampleLoad(cluster.primary), replicas: await Promise.all(cluster.replicas.map(sampleLoad)) };

    const stats = workload.snapshot();
    const compute = sumCounters(stats, COMPUTE_TASKS);
    const api = sumCounters(stats, API_REQUESTS);
    const computeReads = compute.readsOnReplica + compute.readsOnPrimary;
    const [taggedProbe, ...replicaProbes] = probeReports;
    if (!taggedProbe) throw new Error('internal: the tagged probe is missing');
    const routedByNode = mapDelta(proxyBefore.byNode, proxyAfter.byNode);
    const proxyReplicaUnits = cluster.replicas.reduce((sum, r) => sum + (routedByNode[r.name] ?? 0), 0) - taggedProbe.onReplica;
    const workloadReadsOnReplica = compute.readsOnReplica + api.readsOnReplica;
    // In oslo mode pgsplit may count the BEGIN and ROLLBACK/COMMIT of a transaction it ran on a replica as
    // units of that replica too: at most two per transaction in which a read reported a replica.
    const controlAllowance = 2 * (compute.replicaTransactions + api.replicaTransactions);
    const extraUnits = proxyReplicaUnits - workloadReadsOnReplica;
    return {
      name,
      computeUrl: tagged ? ctx.slaveConnection : ctx.connection,
      elapsedMs: stats.elapsedMs,
      workload: stats,
      compute,
      api,
      replicaShare: computeReads === 0 ? null : compute.readsOnReplica / computeReads,
      eligibleReplicaShare: compute.replicaReads === 0 ? null : compute.readsOnReplica / compute.replicaReads,
      apiReadsOnReplica: api.readsOnReplica,
      computePrimaryReadsOnReplica: compute.primaryReadsOnReplica,
      errors: compute.errors + api.errors + harnessErrors.length,
      harnessErrors,
      urlCheck,
      primary: loadDelta(before.primary, after.primary),
      replicas: Object.fromEntries(cluster.replicas.map((r, i) => [r.name, loadDelta(before.replicas[i] as ServerLoad, after.replicas[i] as ServerLoad)])),
      proxy: {
        routedByNode,
        routedByReason: mapDelta(proxyBefore.byReason, proxyAfter.byReason),
        rerunsOnPrimary: proxyAfter.reruns - proxyBefore.reruns,
        retries: proxyAfter.retries - proxyBefore.retries,
      },
      crossCheck: {
        proxyReplicaUnits,
        workloadReadsOnReplica,
        controlAllowance,
        exact: extraUnits === 0,
        consistent: extraUnits >= 0 && extraUnits <= controlAllowance,
      },
      staleness: {
        taggedSession: taggedProbe,
        byReplica: Object.fromEntries(cluster.replicas.map((r, i) => [r.name, replicaProbes[i] as ProbeReport])),
        monitorLag,
      },
    };
  } finally {
    lagSampler?.stop();
    await Promise.allSettled(probes.map((p) => p.stop()));
    await workload.stop().catch(() => {});
  }
}

/** Walks up from this module to the package root (the directory of pgsplit's package.json). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'pgsplit') return dir;
      } catch {
        // Not ours; keep looking.
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/**
 * Runs the benchmark end to end (cluster, pgsplit, a baseline and a tagged phase per client mode) and
 * returns one report per mode; with `outDir`, also writes nova.md and nova.svg there. Everything it
 * started is stopped before it returns or throws. Whether the run passed is `result.ok` (see each
 * report's `failures`).
 */
export async function runNovaBench(options: NovaBenchOptions): Promise<NovaBenchResult> {
  const log = options.log ?? (() => {});
  const opts: BenchContext['opts'] = {
    seconds: options.seconds,
    computeHosts: options.computeHosts,
    apiSessions: options.apiSessions,
    instancesPerHost: options.instancesPerHost ?? 20,
    intervals: { ...BENCH_INTERVALS, ...options.intervals },
    auditPeriodMs: options.auditPeriodMs ?? BENCH_AUDIT_PERIOD_MS,
    preset: options.preset ?? 'custom',
    seed: options.seed ?? 1,
  };
  const clientModes = options.clientModes ?? ['oslo'];
  if (clientModes.length === 0) throw new Error('clientModes must name at least one mode');
  if (!(opts.seconds > 0)) throw new Error(`seconds must be positive, got ${opts.seconds}`);
  for (const key of ['computeHosts', 'apiSessions', 'instancesPerHost'] as const) {
    if (!Number.isInteger(opts[key]) || opts[key] < 0) throw new Error(`${key} must be a non-negative integer, got ${opts[key]}`);
  }
  const date = new Date().toISOString();
  const loadAverageAtStart = os.loadavg()[0] ?? 0;
  log('starting a primary and 2 streaming replicas');
  const cluster = await LocalCluster.start({ replicas: 2, settings: BENCH_SERVER_SETTINGS, log: (m) => log(`  ${m}`) });
  let proxy: ProxyServer | undefined;
  const heartbeat = new Heartbeat();
  try {
    // The role the oslo.db URLs name; pgsplit logs in to the servers with it too (the URLs of its config).
    await cluster.primary.query('CREATE ROLE nova LOGIN');
    await cluster.primary.query(`CREATE TABLE ${HEARTBEAT_TABLE} (id int PRIMARY KEY, seq bigint NOT NULL, written_at timestamptz NOT NULL)`);
    await cluster.primary.query(`INSERT INTO ${HEARTBEAT_TABLE} VALUES (1, 0, clock_timestamp())`);
    await cluster.primary.query(`GRANT SELECT ON ${HEARTBEAT_TABLE} TO nova`);
    const [version] = await cluster.primary.query<{ server_version: string }>('SHOW server_version');

    const config = resolveConfig({
      listen: '127.0.0.1:0',
      // The `postgres` database in these URLs is only where pgsplit's monitor connects: sessions use the
      // database their client asked for (nova), so the monitor's queries stay out of nova's statistics.
      primary: cluster.primary.url({ user: 'nova' }),
      replicas: cluster.replicas.map((r) => r.url({ user: 'nova' })),
    });
    proxy = new ProxyServer(config, createLogger(process.env.PGSPLIT_LOG_LEVEL ?? 'error'));
    const { port } = await proxy.listen();
    const connection = `postgresql://nova@127.0.0.1:${port}/nova`;
    const slaveConnection = `${connection}?${TAG_QUERY}`;
    log(`pgsplit listening on 127.0.0.1:${port}`);
    log(`  connection       = ${connection}`);
    log(`  slave_connection = ${slaveConnection}`);
    await cluster.waitForReplication(15_000);
    await heartbeat.start(cluster.primary);

    const ctx: BenchContext = {
      cluster,
      proxy,
      heartbeat,
      connection,
      slaveConnection,
      probeConnection: `postgresql://nova@127.0.0.1:${port}/postgres?${TAG_QUERY}`,
      opts,
      log,
    };
    const reports: NovaReport[] = [];
    for (const clientMode of clientModes) {
      const heartbeatErrorsBefore = heartbeat.errors.length;
      const baseline = await runPhase(ctx, clientMode, 'baseline');
      log(`[${clientMode}] baseline: ${summaryLine(baseline)}`);
      const tagged = await runPhase(ctx, clientMode, 'tagged');
      log(`[${clientMode}] tagged: ${summaryLine(tagged)}`);
      reports.push(buildReport({
        date,
        command: options.command ?? '',
        postgres: version?.server_version ?? '?',
        opts,
        clientMode,
        replicas: cluster.replicas.length,
        connection,
        slaveConnection,
        pgsplit: { maxLagMs: config.routing.maxLagMs, readYourWritesTimeoutMs: config.routing.readYourWritesTimeoutMs, monitorIntervalMs: config.monitor.intervalMs },
        baseline,
        tagged,
        heartbeatErrors: heartbeat.errors.slice(heartbeatErrorsBefore),
        loadAverageAtStart,
      }));
    }
    await heartbeat.stop();

    const result: NovaBenchResult = { reports, failures: compareModes(reports), ok: false };
    result.ok = result.failures.length === 0 && reports.every((r) => r.ok);
    if (options.outDir !== undefined) {
      await fsp.mkdir(options.outDir, { recursive: true });
      const markdown = path.join(options.outDir, 'nova.md');
      const svg = path.join(options.outDir, 'nova.svg');
      result.files = { markdown, svg };
      await fsp.writeFile(markdown, formatNovaMarkdown(result));
      await fsp.writeFile(svg, renderNovaSvg(result));
    }
    return result;
  } finally {
    await heartbeat.stop().catch(() => {});
    await proxy?.close().catch(() => {});
    await cluster.stop();
  }
}

/**
 * Across modes: an oslo.db client must take at least as much read load off the primary as the
 * autocommit client does (the relative change of the primary's tuples read per second).
 */
function compareModes(reports: readonly NovaReport[]): string[] {
  const oslo = reports.find((r) => r.config.clientMode === 'oslo');
  const autocommit = reports.find((r) => r.config.clientMode === 'autocommit');
  if (!oslo || !autocommit) return [];
  const o = oslo.comparison.primaryTuplesReadPerSec.change;
  const a = autocommit.comparison.primaryTuplesReadPerSec.change;
  if (o === null || a === null || o <= a) return [];
  return [`oslo mode took less read load off the primary than autocommit mode (${formatChange(o)} against ${formatChange(a)} tuples read per second)`];
}

function summaryLine(p: PhaseReport): string {
  const share = p.replicaShare === null ? '-' : `${(100 * p.replicaShare).toFixed(1)} %`;
  return (
    `${p.compute.runs} periodic runs, ${p.api.runs} API requests; periodic reads on replicas ${share}; ` +
    `primary read ${Math.round(perSecond(p.primary.tuplesRead, p.elapsedMs))} tuples/s; errors ${p.errors}`
  );
}

function buildReport(r: {
  date: string;
  command: string;
  postgres: string;
  opts: BenchContext['opts'];
  clientMode: NovaClientMode;
  replicas: number;
  connection: string;
  slaveConnection: string;
  pgsplit: NovaReport['config']['pgsplit'];
  baseline: PhaseReport;
  tagged: PhaseReport;
  heartbeatErrors: string[];
  loadAverageAtStart: number;
}): NovaReport {
  const { baseline: b, tagged: t } = r;
  const rate = (p: PhaseReport, f: (l: ServerLoad) => number): number => perSecond(f(p.primary), p.elapsedMs);
  const both = (f: (l: ServerLoad) => number) => {
    const baseline = rate(b, f);
    const tagged = rate(t, f);
    return { baseline, tagged, change: relativeChange(baseline, tagged) };
  };
  const replicaTuples = (p: PhaseReport): number => perSecond(Object.values(p.replicas).reduce((s, l) => s + l.tuplesRead, 0), p.elapsedMs);
  const failures: string[] = [];
  const notes: string[] = [];
  for (const p of [b, t]) {
    if (p.errors > 0) failures.push(`${p.name}: ${p.errors} error(s)${p.harnessErrors.length > 0 ? ` (${p.harnessErrors.slice(0, 3).join('; ')})` : ''}`);
    for (const name of [...COMPUTE_TASKS, ...API_REQUESTS] as NovaTaskName[]) {
      const c = p.workload.tasks[name];
      if (c.errors > 0) failures.push(`${p.name}: ${name}: ${c.errors} error(s), last: ${c.lastError ?? '?'}`);
    }
    if (p.apiReadsOnReplica > 0) failures.push(`${p.name}: ${p.apiReadsOnReplica} API read(s) ran on a replica`);
    if (p.computePrimaryReadsOnReplica > 0) failures.push(`${p.name}: ${p.computePrimaryReadsOnReplica} periodic-task read(s) that had to see the primary ran on a replica`);
    if (p.workload.readYourWritesMisses > 0) failures.push(`${p.name}: ${p.workload.readYourWritesMisses} read-your-writes miss(es) in API sessions`);
    if (p.workload.duplicateAudits > 0) failures.push(`${p.name}: ${p.workload.duplicateAudits} duplicate usage audit(s)`);
    if (p.urlCheck.connectionOnReplica) failures.push(`${p.name}: a session through connection (untagged) read from a replica`);
    if (!p.urlCheck.slaveConnectionOnReplica) failures.push(`${p.name}: a session through slave_connection (tagged in the URL) did not read from a replica`);
    if (!p.crossCheck.consistent) {
      notes.push(
        `${p.name}: pgsplit routed ${p.crossCheck.proxyReplicaUnits} workload units to replicas, the workload saw ` +
          `${p.crossCheck.workloadReadsOnReplica} reads there` +
          `${p.crossCheck.controlAllowance > 0 ? ` (plus at most ${p.crossCheck.controlAllowance} BEGIN/ROLLBACK of transactions that read there)` : ''} ` +
          "(retries and re-runs count twice in pgsplit's counters)",
      );
    }
  }
  const work = relativeChange(perSecond(b.compute.runs, b.elapsedMs), perSecond(t.compute.runs, t.elapsedMs));
  if (work !== null && Math.abs(work) > 10) {
    notes.push(`the tagged phase ran ${formatChange(work)} periodic tasks per second compared with the baseline: per-second loads compare unequal work`);
  }
  if (b.compute.readsOnReplica > 0) failures.push(`baseline: ${b.compute.readsOnReplica} periodic-task read(s) of untagged sessions ran on a replica`);
  if (t.compute.readsOnReplica === 0) failures.push('tagged: no periodic-task read ran on a replica');
  else if (r.clientMode === 'oslo' && (t.replicaShare ?? 0) < OSLO_REPLICA_SHARE_TARGET) {
    failures.push(
      `tagged: ${((t.replicaShare ?? 0) * 100).toFixed(1)} % of periodic-task reads ran on replicas, below the ` +
        `${OSLO_REPLICA_SHARE_TARGET * 100} % an oslo.db client must reach`,
    );
  }
  if (r.heartbeatErrors.length > 0) failures.push(`heartbeat: ${r.heartbeatErrors.length} error(s): ${r.heartbeatErrors.slice(0, 3).join('; ')}`);
  return {
    date: r.date,
    command: r.command,
    machine: {
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model.trim() ?? '?',
      memoryGiB: os.totalmem() / 2 ** 30,
      node: process.version,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      postgres: r.postgres,
      loadAverage: { start: r.loadAverageAtStart, end: os.loadavg()[0] ?? 0 },
    },
    config: {
      preset: r.opts.preset,
      clientMode: r.clientMode,
      seconds: r.opts.seconds,
      computeHosts: r.opts.computeHosts,
      apiSessions: r.opts.apiSessions,
      instancesPerHost: r.opts.instancesPerHost,
      intervals: r.opts.intervals,
      auditPeriodMs: r.opts.auditPeriodMs,
      replicas: r.replicas,
      seed: r.opts.seed,
      connection: r.connection,
      slaveConnection: r.slaveConnection,
      pgsplit: r.pgsplit,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      stalenessSampleMs: STALENESS_SAMPLE_MS,
    },
    baseline: b,
    tagged: t,
    comparison: {
      primaryTuplesReadPerSec: both((l) => l.tuplesRead),
      primaryTupReturnedPerSec: both((l) => l.tupReturned),
      primaryTupFetchedPerSec: both((l) => l.tupFetched),
      primaryXactPerSec: both((l) => l.xactCommit),
      primaryTuplesPerUnitOfWork: (() => {
        const perUnit = (p: PhaseReport): number => {
          const units = p.compute.runs + p.api.runs;
          return units === 0 ? 0 : p.primary.tuplesRead / units;
        };
        return { baseline: perUnit(b), tagged: perUnit(t), change: relativeChange(perUnit(b), perUnit(t)) };
      })(),
      replicaTuplesReadPerSec: { baseline: replicaTuples(b), tagged: replicaTuples(t) },
      periodicRunsPerSec: { baseline: perSecond(b.compute.runs, b.elapsedMs), tagged: perSecond(t.compute.runs, t.elapsedMs) },
      apiRequestsPerSec: { baseline: perSecond(b.api.runs, b.elapsedMs), tagged: perSecond(t.api.runs, t.elapsedMs) },
    },
    failures,
    notes,
    ok: failures.length === 0,
  };
}

