/**
 * `pgsplit demo`: the first thing a new user runs. Starts a real PostgreSQL primary with streaming
 * replicas in a temporary directory, puts pgsplit in front of them, runs the Nova-like workload through
 * it, and prints where the proxy sent the traffic, with a check that a tagged session really reads from
 * a replica and an untagged one from the primary. Everything it started is stopped and removed at the end,
 * also on Ctrl-C / SIGTERM.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { LocalCluster, stopAllClustersSync } from '../cluster/local-cluster.js';
import type { CliCommand } from '../config/cli-args.js';
import { resolveConfig } from '../config/load-config.js';
import { parseListenAddress } from '../config/listen-address.js';
import { createLogger, type Logger } from '../log/logger.js';
import { ProxyServer, isLoopback } from '../proxy/proxy-server.js';
import { NovaWorkload } from './nova-workload.js';
import { sumCounters, type NovaWorkloadStats } from './nova-meter.js';
import { API_REQUESTS, COMPUTE_TASKS } from './nova-workload-options.js';

export type DemoCommand = Extract<CliCommand, { command: 'demo' }>;

const DEFAULT_LISTEN = '127.0.0.1:6432';
/** Interval of the interim reports when the demo runs until Ctrl-C. */
const REPORT_EVERY_MS = 10_000;
/** After a stop signal, how long a clean shutdown may take before servers are killed. */
const SHUTDOWN_GRACE_MS = 30_000;
const TAGGED_OPTIONS = '-c pgsplit.route=replica';
/**
 * Over the cluster kit's settings: the kit turns synchronous_commit off for speed, which lets replicas
 * trail by up to ~200 ms (the WAL writer's delay), so most reads after a write would wait for a replica
 * and then fall back to the primary. A real primary commits durably: so does the demo's.
 */
const DEMO_SERVER_SETTINGS = { synchronous_commit: 'on' };

/** What each routing reason means, one line each, for the report (a reason not listed is a write's). */
const REASON_MEANING: Readonly<Record<string, string>> = {
  'tagged-read': 'a read-only statement of a tagged session: a replica',
  untagged: 'any statement of an untagged session: the primary',
  transaction: 'inside a transaction: the server the transaction runs on',
  'hint-primary': 'a /* pgsplit:route=primary */ hint: the primary',
  'hint-replica': 'a /* pgsplit:route=replica */ hint on a read: a replica',
  'causal-wait': 'a tagged read after this session wrote: waited for a replica to replay the write, then ran there',
  'fallback-causal': 'a tagged read after this session wrote: no replica replayed the write in time (routing.read_your_writes_timeout), so the primary',
  'fallback-lag': 'a tagged read while every replica lagged past routing.max_lag: the primary',
  'fallback-no-replica': 'a tagged read with no replica up: the primary',
  'fallback-no-position': "a tagged read after a write while the primary's WAL position was unknown: the primary",
  'rerun-25006': 'a replica refused it as a write (SQLSTATE 25006): run again on the primary',
  'function-call': 'a fastpath function call: the primary',
  'no-statement': 'a message with no statement in it (e.g. Sync alone): the primary',
  begin: 'BEGIN: starts the transaction on the primary',
  commit: 'COMMIT: ends the transaction where it ran',
  rollback: 'ROLLBACK: ends the transaction where it ran',
  'tx-read': 'a read inside (or opening) a transaction of a tagged session: a replica, until the transaction writes',
  'tx-moved': 'the first statement of a tagged transaction that can write: the transaction moves to the primary',
  'tx-isolation': 'a REPEATABLE READ or SERIALIZABLE transaction: the primary from its start',
  'tx-cursor': 'a cursor or named portal in a tagged transaction: the primary',
  'sequence-read': 'a read of a sequence relation: the primary (a standby shows its own state of a sequence)',
};

/** Result of the routing check: what one session saw. */
interface RoutingCheck {
  label: string;
  inRecovery: boolean | undefined;
  servedBy: string;
  expected: boolean;
  error?: string;
}

function write(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function sleep(ms: number, signal: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
    signal.then(() => undefined),
  ]).finally(() => clearTimeout(timer));
}

/** The shell's convention for a process ended by a signal. */
function signalExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? 143 : 130;
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Starts the proxy on `listen`; when that port is taken, on a free port instead (saying so). */
async function startProxy(
  listen: { host: string; port: number },
  cluster: LocalCluster,
  log: Logger,
): Promise<{ proxy: ProxyServer; host: string; port: number }> {
  const make = (port: number) =>
    new ProxyServer(
      resolveConfig({
        listen: hostPort(listen.host, port),
        primary: cluster.primary.url(),
        replicas: cluster.replicas.map((r) => r.url()),
        // On a free port, so that a second demo or a real pgsplit on 9187 does not stop this one.
        metrics: { listen: hostPort(listen.host, 0) },
      }),
      log,
    );
  const proxy = make(listen.port);
  try {
    return { proxy, ...(await proxy.listen()) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || listen.port === 0) throw err;
    write(`port ${listen.port} on ${listen.host} is busy; using a free port instead`);
    const fallback = make(0);
    return { proxy: fallback, ...(await fallback.listen()) };
  }
}

/** Where to watch the proxy while it runs: the admin console and the metrics URL. */
function liveViews(host: string, port: number, metrics: { host: string; port: number } | null): string[] {
  return [
    'watch it live: the admin console (SHOW NODES, SHOW CLIENTS, SHOW STATS, SHOW HELP) and the metrics',
    `  psql "host=${host} port=${port} user=postgres dbname=pgsplit"`,
    ...(metrics !== null ? [`  curl http://${hostPort(metrics.host, metrics.port)}/metrics`] : []),
  ];
}

/** Asks a tagged and an untagged session whether they talk to a server in recovery (a replica). */
async function checkRouting(host: string, port: number, replicas: number): Promise<RoutingCheck[]> {
  const one = async (label: string, tagged: boolean): Promise<RoutingCheck> => {
    const expected = tagged && replicas > 0;
    const client = new pg.Client({
      host,
      port,
      user: 'postgres',
      database: 'postgres',
      application_name: 'pgsplit-demo-check',
      connectionTimeoutMillis: 10_000,
      ...(tagged ? { options: TAGGED_OPTIONS } : {}),
    });
    client.on('error', () => {});
    try {
      await client.connect();
      const { rows } = await client.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
      let servedBy = '?';
      try {
        const shown = await client.query<{ cluster_name: string }>('SHOW cluster_name');
        servedBy = shown.rows[0]?.cluster_name ?? '?';
      } catch {
        // Only decoration; the check itself is pg_is_in_recovery().
      }
      return { label, inRecovery: rows[0]?.in_recovery, servedBy, expected };
    } catch (err) {
      return { label, inRecovery: undefined, servedBy: '?', expected, error: (err as Error).message };
    } finally {
      await client.end().catch(() => {});
    }
  };
  return [await one('tagged session  ', true), await one('untagged session', false)];
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function lpad(s: string | number, n: number): string {
  const t = String(s);
  return t.length >= n ? t : ' '.repeat(n - t.length) + t;
}

function nodeNames(cluster: LocalCluster): string[] {
  return cluster.nodes.map((n) => n.name);
}

/** One line for the interim reports. */
function shortReport(proxy: ProxyServer, cluster: LocalCluster, stats: NovaWorkloadStats): string {
  const routed = nodeNames(cluster).map((n) => `${n} ${proxy.stats.routedByNode.get(n) ?? 0}`).join(', ');
  const compute = sumCounters(stats, COMPUTE_TASKS);
  const api = sumCounters(stats, API_REQUESTS);
  const errors = compute.errors + api.errors;
  return (
    `[${(stats.elapsedMs / 1000).toFixed(0)} s] routed: ${routed} | tagged: ${compute.replicaReads} reads, ${compute.writes} writes` +
    ` | api: ${api.runs} requests | errors: ${errors}`
  );
}

/** The final report; returns its lines. */
function finalReport(proxy: ProxyServer, cluster: LocalCluster, stats: NovaWorkloadStats, workload: NovaWorkload, checks: RoutingCheck[]): string[] {
  const lines: string[] = [];
  const seconds = (stats.elapsedMs / 1000).toFixed(1);
  lines.push(`=== pgsplit demo report (workload ran ${seconds} s) ===`);
  lines.push('A routed statement is what pgsplit sends to one server in one go: a query string (usually one');
  lines.push('statement), or an extended-protocol batch up to its Sync. Each goes whole to one server.');
  lines.push('routed statements, by server:');
  for (const name of nodeNames(cluster)) {
    lines.push(`  ${pad(name, 10)} ${lpad(proxy.stats.routedByNode.get(name) ?? 0, 7)} statements`);
  }
  const total = [...proxy.stats.routedByNode.values()].reduce((a, b) => a + b, 0);
  const onReplicas = cluster.replicas.reduce((sum, r) => sum + (proxy.stats.routedByNode.get(r.name) ?? 0), 0);
  if (total > 0 && cluster.replicas.length > 0) lines.push(`  replicas served ${onReplicas} of ${total} (${((100 * onReplicas) / total).toFixed(0)}%)`);
  lines.push('routed statements, by reason (why pgsplit chose that server):');
  const reasons = [...proxy.stats.routedByReason].sort((a, b) => b[1] - a[1]);
  if (reasons.length === 0) lines.push('  (none)');
  for (const [reason, count] of reasons) {
    lines.push(`  ${pad(reason, 22)} ${lpad(count, 7)}  ${REASON_MEANING[reason] ?? 'a statement that writes or may write: always the primary'}`);
  }

  const compute = sumCounters(stats, COMPUTE_TASKS);
  const api = sumCounters(stats, API_REQUESTS);
  lines.push('workload (the statements it sent, by what they must see):');
  const computeReads = workload.options.tagComputeSessions
    ? `tagged nova-compute sessions (${workload.hosts.length} hosts): ${compute.replicaReads} reads for replicas, ${compute.primaryReads} hinted reads for the primary`
    : `untagged nova-compute sessions (${workload.hosts.length} hosts): ${compute.primaryReads} reads`;
  lines.push(`  ${computeReads}, ${compute.writes} writes, ${compute.errors} errors`);
  lines.push(
    `  untagged nova-api sessions (${workload.options.apiSessions}): ${api.runs} requests, ${api.primaryReads} reads, ` +
      `${api.writes} writes, ${api.errors} errors, ${stats.readYourWritesMisses} read-your-writes misses`,
  );
  lines.push(`  ${pad('task', 28)} ${lpad('runs', 6)} ${lpad('stmts', 7)} ${lpad('errors', 6)} ${lpad('avg ms', 7)}`);
  for (const name of [...COMPUTE_TASKS, ...API_REQUESTS]) {
    const c = stats.tasks[name];
    const avg = c.runs === 0 ? '-' : (c.totalMs / c.runs).toFixed(1);
    lines.push(`  ${pad(name, 28)} ${lpad(c.runs, 6)} ${lpad(c.statements, 7)} ${lpad(c.errors, 6)} ${lpad(avg, 7)}`);
    if (c.lastError) lines.push(`    last error: ${c.lastError}`);
  }
  lines.push('routing check (one tagged and one untagged session ask the server they reach whether it is a replica):');
  for (const c of checks) {
    const got = c.inRecovery === undefined ? `failed: ${c.error ?? 'no row'}` : String(c.inRecovery);
    const ok = c.inRecovery === c.expected;
    lines.push(`  ${c.label} SELECT pg_is_in_recovery() -> ${got} (served by ${c.servedBy}; expected ${c.expected}) ${ok ? 'OK' : 'FAILED'}`);
  }
  lines.push('to watch a run live, start the demo without --duration (it runs until Ctrl-C); while it runs:');
  lines.push(...liveViews(proxy.address.host, proxy.address.port, proxy.metricsAddress).slice(1));
  return lines;
}

/**
 * Runs the demo; resolves with the process exit code: 0 when the workload ran without errors and the
 * routing check passed (also when Ctrl-C ended an unlimited run), 1 otherwise, 2 for an unusable
 * --listen, 130/143 when SIGINT/SIGTERM came before the workload started. The proxy logs to stderr at
 * level 'error' unless PGSPLIT_LOG_LEVEL says otherwise.
 */
export async function runDemo(cmd: DemoCommand): Promise<number> {
  let listen: { host: string; port: number };
  try {
    listen = parseListenAddress(cmd.listen ?? DEFAULT_LISTEN, '--listen');
  } catch (err) {
    process.stderr.write(`pgsplit demo: ${(err as Error).message}\n`);
    return 2;
  }
  if (!isLoopback(listen.host)) {
    process.stderr.write(
      `pgsplit demo: --listen ${cmd.listen ?? ''} is not a loopback address; the demo trusts every client, so it only listens on 127.0.0.1, ::1 or localhost\n`,
    );
    return 2;
  }

  // Signals: the first one ends the run and starts a clean shutdown, a second one (or a shutdown that
  // hangs) kills the servers synchronously and exits at once.
  let stopSignal: NodeJS.Signals | undefined;
  let resolveStop!: () => void;
  const stopRequested = new Promise<void>((resolve) => {
    resolveStop = resolve;
  });
  let forceTimer: NodeJS.Timeout | undefined;
  const force = (why: string) => {
    process.stderr.write(`pgsplit demo: ${why}; killing the servers\n`);
    stopAllClustersSync();
    process.exit(signalExitCode(stopSignal ?? 'SIGINT'));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopSignal !== undefined) {
      force(`${signal} received again`);
      return;
    }
    stopSignal = signal;
    write(`\n${signal} received: stopping (press Ctrl-C again to kill the servers at once)`);
    forceTimer = setTimeout(() => force(`shutdown took longer than ${SHUTDOWN_GRACE_MS / 1000} s`), SHUTDOWN_GRACE_MS);
    forceTimer.unref();
    resolveStop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const started = Date.now();
  const log = createLogger(process.env.PGSPLIT_LOG_LEVEL ?? 'error');
  let cluster: LocalCluster | undefined;
  let proxy: ProxyServer | undefined;
  let workload: NovaWorkload | undefined;
  let reportTimer: NodeJS.Timeout | undefined;
  let code = 0;
  const baseDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pgsplit-demo-'));
  try {
    write(`starting a primary and ${cmd.replicas} replica${cmd.replicas === 1 ? '' : 's'} in ${baseDir}`);
    cluster = await LocalCluster.start({ replicas: cmd.replicas, baseDir, settings: DEMO_SERVER_SETTINGS, log: (msg) => write(`  ${msg}`) });
    if (stopSignal !== undefined) return signalExitCode(stopSignal);

    const bound = await startProxy(listen, cluster, log);
    proxy = bound.proxy;
    const { host, port } = bound;
    write(`pgsplit listening on ${hostPort(host, port)}`);
    const conninfo = `host=${host} port=${port} user=postgres dbname=postgres`;
    write('');
    write('connect while the demo runs (untagged: every statement goes to the primary):');
    write(`  psql "${conninfo}"`);
    write('tagged for replicas (reads go to a replica, writes still to the primary):');
    write(`  PGOPTIONS='${TAGGED_OPTIONS}' psql "${conninfo}"`);
    for (const line of liveViews(host, port, proxy.metricsAddress)) write(line);
    write('');

    if (cluster.replicas.length === 0) write('no replicas: tagged sessions fall back to the primary, so everything goes there');
    workload = new NovaWorkload({ host, port });
    write('creating a slice of the Nova schema on the primary (through pgsplit, untagged) and seeding hosts');
    await workload.setup();
    await cluster.waitForReplication(15_000);
    if (stopSignal !== undefined) return signalExitCode(stopSignal);

    await workload.start();
    const forHow = cmd.duration === undefined ? 'until Ctrl-C' : `for ${cmd.duration} s`;
    write(
      `running the Nova-like workload ${forHow}: ${workload.hosts.length} compute hosts ` +
        '(tagged sessions, periodic tasks), ' +
        `${workload.options.apiSessions} API sessions (untagged)`,
    );
    if (cmd.duration === undefined) {
      const w = workload;
      const p = proxy;
      const c = cluster;
      reportTimer = setInterval(() => write(shortReport(p, c, w.snapshot())), REPORT_EVERY_MS);
      await stopRequested;
    } else {
      await sleep(cmd.duration * 1000, stopRequested);
    }
    clearInterval(reportTimer);
    reportTimer = undefined;

    await workload.stop();
    const checks = await checkRouting(host, port, cluster.replicas.length);
    const stats = workload.snapshot();
    write('');
    for (const line of finalReport(proxy, cluster, stats, workload, checks)) write(line);
    const errors = sumCounters(stats).errors;
    const checksOk = checks.every((c) => c.inRecovery === c.expected);
    if (errors > 0) write(`the workload saw ${errors} error(s); see "last error" above`);
    if (!checksOk) write('the routing check FAILED');
    code = errors > 0 || !checksOk ? 1 : 0;
  } catch (err) {
    if (stopSignal !== undefined) {
      // Ctrl-C in a terminal also reaches the server tools we were running (initdb, pg_basebackup).
      process.stderr.write(`pgsplit demo: interrupted by ${stopSignal} (${firstLine((err as Error).message)})\n`);
      code = signalExitCode(stopSignal);
    } else {
      process.stderr.write(`pgsplit demo: ${(err as Error).message}\n`);
      code = 1;
    }
  } finally {
    clearInterval(reportTimer);
    write('');
    write('stopping the workload, pgsplit and the servers');
    await workload?.stop().catch(() => {});
    await proxy?.close().catch(() => {});
    if (cluster) await cluster.stop();
    else await fsp.rm(baseDir, { recursive: true, force: true }).catch(() => {});
    write(`stopped; removed ${baseDir} (total ${((Date.now() - started) / 1000).toFixed(1)} s)`);
    clearTimeout(forceTimer);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  return code;
}
