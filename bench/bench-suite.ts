/**
 * The side-by-side benchmark behind `npm run bench`: pgbench against the primary directly, through
 * PgBouncer (transaction pooling), pgpool-II (streaming replication, load balancing) and pgsplit
 * (untagged and tagged), on one local cluster with two replicas; then pgsplit's memory with many idle
 * clients and under a slow reader of a huge result; the classifier's own speed beside them; and the
 * write-then-read loop and lag estimate (write-then-read-run.ts). The report opens with a headline:
 * each speed goal, this run's figure and whether it holds (headline.ts).
 *
 * Runs interleave (A B C D E, A B C D E, ...) and repeat, so a noisy machine shifts every target alike;
 * medians and ratios are reported, never single runs. Before measuring, each pgsplit path runs briefly so
 * V8 has compiled it (PgBouncer and pgpool-II need no warm-up; the first seconds of a fresh Node process
 * would otherwise be charged to pgsplit).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { startPgBouncer, startPgpool, type PeerProxy } from './peer-proxies.js';
import { median, runPgbench } from './pgbench-run.js';
import { cpuSeconds } from './process-usage.js';
import { idleMemory, slowClient, type IdleMemory, type SlowClientResult } from './resource-scale.js';
import { writeReport } from './bench-report.js';
import { BackendSampler } from './backend-sampler.js';
import { runWriteThenRead, type WriteThenReadOptions, type WriteThenReadResult } from './write-then-read-run.js';

const execFileAsync = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root: this file runs compiled (dist/bench) and, in tests, from source (bench). */
export const root = path.resolve(here, path.basename(path.dirname(here)) === 'dist' ? '../..' : '..');

export type BenchMode = 'smoke' | 'quick' | 'full';

export const BENCH_USAGE = `usage: node dist/bench/run.js [--smoke | --full] [--only LOAD:MODE:CLIENTS] [--throughput-only]
                             [--no-write-then-read] [--idle N,N] [--rounds N] [--publish | --out DIR]
  (default)          quick mode: 3 rounds of 3 s, 1 and 16 clients, idle 1,000 and 5,000, slow read 1 GiB,
                     write-then-read 3 rounds of 300 pairs and 10 s of lag estimate (~16 min)
  --full             5 rounds of 10 s, 1/16/64 clients, idle 1,000 and 5,000, slow read 3 GiB, write-then-read 5 rounds
  --smoke            one 1 s round of -S simple and extended at 1 and 16 clients, small resource runs and
                     a short write-then-read: proves the harness works
  --only -S:simple:16  one cell of the matrix (parts may be *); implies --throughput-only
  --throughput-only  skip the idle-client, slow-client, classifier and write-then-read parts
  --no-write-then-read  skip the write-then-read loop and lag estimate (its headline rows say "not measured")
  --idle 1000,5000   idle-client counts for the memory measurement
  --rounds N         interleaved rounds per cell and of the write-then-read loop, instead of the mode's
                     (quick mode's 3 are noisy on a shared machine: a published run deserves 5 or more)
  --publish          write the report to bench/results/ (the committed summary the README links)
  --out DIR          write the report to DIR
  -h, --help         print this and exit
Without --publish or --out, each run writes to bench/results/runs/<time>/ (not committed).
Ctrl-C or SIGTERM stops every server the run started and removes its folders.`;

/** What the command line asks for; `help` when it asks for usage. */
export type BenchArgs = { help: true } | { help: false; options: Omit<BenchOptions, 'log'> };

/**
 * Parses bench/run.ts's command line; throws an Error naming the bad argument. `now` names the run's
 * folder under bench/results/runs/ when neither --publish nor --out is given.
 */
export function parseBenchArgs(argv: readonly string[], now: Date = new Date()): BenchArgs {
  if (argv.includes('--help') || argv.includes('-h')) return { help: true };
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (['--full', '--smoke', '--throughput-only', '--publish', '--no-write-then-read'].includes(a)) flags.add(a);
    else if (['--only', '--idle', '--out', '--rounds'].includes(a)) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
      values.set(a, v);
      i++;
    } else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  if (flags.has('--full') && flags.has('--smoke')) throw new Error('--full and --smoke exclude each other; give one');
  if (flags.has('--publish') && values.has('--out')) throw new Error('--publish writes to bench/results/; drop --out, or drop --publish');
  const idleText = values.get('--idle');
  const idleCounts = idleText?.split(',').map(Number);
  if (idleCounts !== undefined && idleCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--idle ${JSON.stringify(idleText)}: write whole numbers, e.g. --idle 1000,5000`);
  const roundsText = values.get('--rounds');
  const rounds = roundsText === undefined ? undefined : Number(roundsText);
  if (rounds !== undefined && (!Number.isInteger(rounds) || rounds < 1)) throw new Error(`--rounds ${JSON.stringify(roundsText)}: write a whole number of rounds, e.g. --rounds 5`);
  const only = values.get('--only')?.split(':');
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const outDir = flags.has('--publish') ? path.join(root, 'bench/results')
    : values.get('--out') !== undefined ? path.resolve(values.get('--out') as string)
    : path.join(root, 'bench/results/runs', stamp);
  const options: Omit<BenchOptions, 'log'> = {
    mode: flags.has('--full') ? 'full' : flags.has('--smoke') ? 'smoke' : 'quick',
    outDir,
    throughputOnly: only !== undefined || flags.has('--throughput-only'),
  };
  if (only !== undefined) options.only = only;
  if (flags.has('--no-write-then-read')) options.skipWriteThenRead = true;
  if (idleCounts !== undefined) options.idleCounts = idleCounts;
  if (rounds !== undefined) options.rounds = rounds;
  return { help: false, options };
}

/** Child processes and peer proxies a run has going, so that a signal handler can stop them. */
const running = new Set<() => Promise<void>>();

/** Stops every child process and peer proxy the current run started (and removes the peers' folders). */
export async function stopBenchProcesses(): Promise<void> {
  const stops = [...running];
  running.clear();
  await Promise.all(stops.map((stop) => stop().catch(() => undefined)));
}

/** Tracks `stop` until it runs: the returned function runs it once and forgets it. */
export function track(stop: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = (): Promise<void> => {
    running.delete(once);
    done ??= stop();
    return done;
  };
  running.add(once);
  return once;
}

export interface BenchOptions {
  mode: BenchMode;
  /** `LOAD:MODE:CLIENTS` filter (parts may be `*`), e.g. ['-S', 'simple', '16']. */
  only?: readonly string[];
  /** Where the Markdown report and SVG charts go (default bench/results/runs/<time>/; bench/results/ is the published one). */
  outDir?: string;
  /** Idle-client counts for the memory measurement, instead of the mode's. */
  idleCounts?: readonly number[];
  /** Skip the idle-connection, slow-client, classifier and write-then-read parts. */
  throughputOnly?: boolean;
  /** Skip the write-then-read loop and lag estimate. */
  skipWriteThenRead?: boolean;
  /** Interleaved rounds per cell and of the write-then-read loop, instead of the mode's. */
  rounds?: number;
  log?: (line: string) => void;
}

/** The median figures of one target in one cell of the matrix. */
export interface TargetFigures {
  tps: number;
  /** CPU time the proxy process (or process tree) used per transaction, microseconds. */
  cpuUsPerTx?: number;
  /** Latency percentiles at 1 client, milliseconds. */
  p50?: number;
  p99?: number;
}

export interface BenchCell {
  load: string;
  mode: 'simple' | 'extended' | 'prepared';
  clients: number;
  /** By target name; null where the target cannot run this load. */
  targets: Record<string, TargetFigures | null>;
}

export interface BenchReport {
  date: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; kernel: string };
  versions: Record<string, string>;
  settings: { mode: BenchMode; rounds: number; seconds: number; scale: number };
  targets: string[];
  peersLeftOut: string[];
  cells: BenchCell[];
  idle: { pgsplit: IdleMemory[]; pgbouncer: IdleMemory[] };
  slowClient: SlowClientResult | null;
  classifier: Array<{ workload: string; mode: string; opsPerSec: number }>;
  /** The write-then-read loop and lag estimate; null when skipped. */
  writeThenRead: WriteThenReadResult | null;
}

/** The write-then-read part's settings per mode (npm run bench:write-then-read's defaults are 5 rounds). */
const WTR: Pick<WriteThenReadOptions, 'heartbeatMs' | 'monitor'> = { heartbeatMs: 1, monitor: {} };
// Smoke runs the cells the headline reads (-S simple and extended at 1 and 16 clients), so that a smoke
// run proves the headline is complete.
const PLAN = {
  smoke: {
    rounds: 1, seconds: 1, clients: [1, 16], loads: ['-S'], modes: ['simple', 'extended'], idle: [50], idleSettle: 1, slowBytes: 16 << 20, warm: 1,
    wtr: { ...WTR, rounds: 1, iterations: 20, lagSeconds: 2 },
  },
  quick: {
    rounds: 3, seconds: 3, clients: [1, 16], loads: ['-S', '-N'], modes: ['simple', 'extended', 'prepared'], idle: [1000, 5000], idleSettle: 60, slowBytes: 1 << 30, warm: 3,
    wtr: { ...WTR, rounds: 3, iterations: 300, lagSeconds: 10 },
  },
  full: {
    rounds: 5, seconds: 10, clients: [1, 16, 64], loads: ['-S', '-N'], modes: ['simple', 'extended', 'prepared'], idle: [1000, 5000], idleSettle: 60, slowBytes: 3 * (1 << 30), warm: 5,
    wtr: { ...WTR, rounds: 5, iterations: 300, lagSeconds: 10 },
  },
} as const;

interface Target {
  name: string;
  port: number;
  env: NodeJS.ProcessEnv;
  /** Process whose CPU time is the proxy's (none for direct). */
  pid?: number;
  unsupported?: ReadonlySet<string>;
}

/**
 * Starts bin/pgsplit.js on `port` in front of the cluster (its replicas too unless `primaryOnly`); stopped
 * with the run. Its log (warnings and worse) goes to our stderr, and line by line to `onLogLine` if given.
 */
export async function startPgsplit(cluster: LocalCluster, port: number, primaryOnly = false, configFile?: string, onLogLine?: (line: string) => void): Promise<ChildProcess> {
  const args = [path.join(root, 'bin/pgsplit.js'), ...(configFile ? ['--config', configFile] : []), '--listen', `127.0.0.1:${port}`, '--primary', cluster.primary.url(),
    ...(primaryOnly ? [] : cluster.replicas.flatMap((r) => ['--replica', r.url()])), '--log-level', 'warn'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', onLogLine ? 'pipe' : 'inherit'] });
  if (onLogLine && child.stderr) {
    let partial = '';
    child.stderr.on('data', (d: Buffer) => {
      process.stderr.write(d);
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLogLine(l);
    });
  }
  track(() => stopChild(child));
  await waitForListener(port, child);
  return child;
}

/** Resolves once a PostgreSQL handshake through `port` completes (the relay forwards it to the primary). */
async function waitForListener(port: number, child: ChildProcess): Promise<void> {
  const { connectIdle } = await import('./wire-client.js');
  for (let i = 0; ; i++) {
    try {
      (await connectIdle(port)).destroy();
      return;
    } catch (e) {
      if (i > 100 || child.exitCode !== null) throw new Error(`${port} did not start: ${String(e)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export async function versions(bin: string, peers: PeerProxy[]): Promise<Record<string, string>> {
  const v: Record<string, string> = { node: process.version };
  v.postgresql = (await execFileAsync(path.join(bin, 'postgres'), ['--version'])).stdout.trim();
  v.pgbench = (await execFileAsync(path.join(bin, 'pgbench'), ['--version'])).stdout.trim();
  const pkg = JSON.parse(await fsp.readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  v.pgsplit = pkg.version;
  for (const p of peers) v[p.name] = p.version;
  return v;
}

/** The machine a report was measured on. */
export function machineInfo(): BenchReport['machine'] {
  return { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', memoryGiB: os.totalmem() / 2 ** 30, kernel: os.release() };
}

/** Runs the benchmark and writes the report; returns what it measured. */
export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const base = PLAN[opts.mode];
  const plan = opts.rounds === undefined ? base : { ...base, rounds: opts.rounds, wtr: { ...base.wtr, rounds: opts.rounds } };
  const only = opts.only ?? [];
  const wanted = (i: number, v: string): boolean => only[i] === undefined || only[i] === '*' || only[i] === v;
  const clientCounts = plan.clients.filter((c) => wanted(2, String(c)));
  const bin = (await execFileAsync('pg_config', ['--bindir'])).stdout.trim();
  const scale = opts.mode === 'smoke' ? 1 : 10;
  const maxClients = Math.max(...clientCounts, 8);
  const cluster = await LocalCluster.start({ replicas: 2, settings: { max_connections: String(Math.max(100, 4 * maxClients + 60)) } });
  log(`cluster: primary and 2 replicas in ${cluster.baseDir}`);
  const children: ChildProcess[] = [];
  const peers: PeerProxy[] = [];
  const peersLeftOut: string[] = [];
  try {
    const env = { ...process.env };
    delete env.PGOPTIONS;
    await execFileAsync(path.join(bin, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(cluster.primary.port), '-U', 'postgres', 'postgres'], { env });
    await cluster.waitForReplication(60_000);
    const port = await claimFreePort();
    const proxy = await startPgsplit(cluster, port);
    children.push(proxy);
    for (const start of [startPgBouncer, startPgpool]) {
      const p = await start(cluster, maxClients + 8);
      if (typeof p === 'string') {
        peersLeftOut.push(p);
        log(`peer left out: ${p}`);
      } else {
        p.stop = track(p.stop);
        peers.push(p);
        log(`peer: ${p.version} on port ${p.port}`);
      }
    }
    // The bare Node relay: Node's own I/O floor, beside the real proxies.
    const relayPort = await claimFreePort();
    const relay = spawn(process.execPath, [path.join(root, 'dist/bench/node-relay.js'), String(relayPort), String(cluster.primary.port)], { stdio: 'ignore' });
    track(() => stopChild(relay));
    children.push(relay);
    await waitForListener(relayPort, relay);
    const tagged = { ...env, PGOPTIONS: '-c pgsplit.route=replica' };
    const targets: Target[] = [
      { name: 'direct', port: cluster.primary.port, env },
      ...peers.map((p) => ({ name: p.name, port: p.port, env, pid: p.pid, unsupported: p.unsupported })),
      { name: 'node-relay', port: relayPort, env, pid: relay.pid },
      { name: 'pgsplit-untagged', port, env, pid: proxy.pid },
      { name: 'pgsplit-tagged', port, env: tagged, pid: proxy.pid },
    ];
    // Warm-up: every pgsplit path once, so V8's compilation is not charged to the first measured run.
    for (const mode of plan.modes) {
      for (const e of [env, tagged]) {
        await runPgbench({ bin, port, load: '-S', mode, clients: Math.min(16, maxClients), seconds: plan.warm, env: e });
        if (opts.mode !== 'smoke') await runPgbench({ bin, port, load: '-N', mode, clients: 4, seconds: 1, env: e });
      }
    }
    const cells: BenchCell[] = [];
    for (const load of plan.loads.filter((l) => wanted(0, l))) {
      for (const mode of plan.modes.filter((m) => wanted(1, m))) {
        for (const clients of clientCounts) {
          const runs = new Map<string, Array<{ tps: number; cpu?: number; p50?: number; p99?: number }>>(targets.map((t) => [t.name, []]));
          for (let r = 0; r < plan.rounds; r++) {
            for (const t of targets) {
              if (t.unsupported?.has(mode)) continue;
              const cpu0 = t.pid !== undefined ? cpuSeconds(t.pid) : 0;
              const res = await runPgbench({ bin, port: t.port, load, mode, clients, seconds: plan.seconds, env: t.env, latency: clients === 1 });
              const cpu = t.pid !== undefined ? ((cpuSeconds(t.pid) - cpu0) * 1e6) / Math.max(1, res.transactions) : undefined;
              runs.get(t.name)?.push({ tps: res.tps, cpu, p50: res.p50, p99: res.p99 });
            }
          }
          const cell: BenchCell = { load, mode, clients, targets: {} };
          for (const t of targets) {
            const xs = runs.get(t.name) ?? [];
            if (xs.length === 0) {
              cell.targets[t.name] = null;
              continue;
            }
            const f: TargetFigures = { tps: median(xs.map((x) => x.tps)) };
            const cpus = xs.map((x) => x.cpu).filter((x): x is number => x !== undefined);
            if (cpus.length > 0) f.cpuUsPerTx = median(cpus);
            if (clients === 1) {
              f.p50 = median(xs.map((x) => x.p50 ?? NaN));
              f.p99 = median(xs.map((x) => x.p99 ?? NaN));
            }
            cell.targets[t.name] = f;
          }
          cells.push(cell);
          log(cellLine(cell));
        }
      }
    }
    let slow: SlowClientResult | null = null;
    let idle: BenchReport['idle'] = { pgsplit: [], pgbouncer: [] };
    let classifier: BenchReport['classifier'] = [];
    if (!opts.throughputOnly) {
      log(`slow client: reading ${(plan.slowBytes / 1048576).toFixed(0)} MiB through pgsplit while 8 pgbench clients run`);
      slow = await slowClient({ port, pid: proxy.pid ?? 0, bytes: plan.slowBytes, bin, env, pgbenchSeconds: Math.max(2, plan.seconds) });
      log(`  ${JSON.stringify(slow)}`);
      classifier = await classifierFigures();
    }
    const vs = await versions(bin, peers);
    // The rest needs neither the replicas nor the peers running.
    for (const p of peers) await p.stop();
    peers.length = 0;
    await stopChild(proxy);
    // The write-then-read loop and lag estimate run here, on a cluster of their own, rather than the
    // headline reading the newest bench/results/runs/write-then-read-*/results.json: every headline
    // figure then comes from the same run (same code, same machine state), and a fresh checkout with no
    // earlier runs still gets a complete headline. They take ~1 minute in quick mode.
    let writeThenRead: WriteThenReadResult | null = null;
    if (!opts.throughputOnly && !opts.skipWriteThenRead) {
      writeThenRead = await runWriteThenRead({ ...plan.wtr, monitor: { ...plan.wtr.monitor } }, log);
      const w = writeThenRead.loop;
      log(`  write-then-read medians: direct ${w.directMedianMs.toFixed(0)} ms, relay ${w.relayMedianMs.toFixed(0)} ms, untagged ${w.untaggedMedianMs.toFixed(0)} ms, ` +
        `tagged ${w.taggedMedianMs.toFixed(0)} ms (${w.ratio.toFixed(2)}× direct, ${w.ratioToRelay.toFixed(2)}× relay)`);
    }
    if (!opts.throughputOnly) idle = await idleClients(opts.idleCounts ?? plan.idle, log, '', plan.idleSettle);
    const report: BenchReport = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      versions: vs,
      settings: { mode: opts.mode, rounds: plan.rounds, seconds: plan.seconds, scale },
      targets: targets.map((t) => t.name),
      peersLeftOut,
      cells,
      idle,
      slowClient: slow,
      classifier,
      writeThenRead,
    };
    await writeReport(report, opts.outDir ?? path.join(root, 'bench/results/runs', report.date.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')));
    return report;
  } finally {
    for (const p of peers) await p.stop();
    for (const c of children) await stopChild(c);
    await cluster.stop();
  }
}

/**
 * Memory of pgsplit (and of PgBouncer, for comparison) with many idle clients, on a primary of its own,
 * with the number of primary backends each held meanwhile: clients that only completed startup, then
 * clients that ran one query first, each kind on a freshly started proxy (a process keeps memory it has
 * used). `pgsplitConfig` adds lines to pgsplit's configuration file (e.g. a pool).
 */
export async function idleClients(counts: readonly number[], log: (l: string) => void, pgsplitConfig = '', settleSeconds?: number): Promise<BenchReport['idle']> {
  const most = Math.max(...counts);
  // Room for a backend per client, should pgsplit hold one per client session (pgsplitConfig with pool.mode session).
  const cluster = await LocalCluster.start({ replicas: 0, settings: { max_connections: String(most + 50), shared_buffers: '128MB' } });
  let sampler: BackendSampler | undefined;
  try {
    const port = await claimFreePort();
    // The default limits.max_client_connections (1000) would refuse the rest.
    const config = path.join(cluster.baseDir, 'pgsplit-idle.yaml');
    await fsp.writeFile(config, `limits: { max_client_connections: ${most + 100} }\n${pgsplitConfig}`);
    const counter = sampler = await BackendSampler.connect([cluster.primary]);
    const backends = async (): Promise<number> => (await counter.countNow())[0]?.sessions ?? 0;
    const line = (name: string, m: IdleMemory): string => `idle clients: ${name} ${m.clients}${m.queried ? ' after one query' : ''}: ` +
      `${m.rss.toFixed(1)} MiB settled (${m.perClientKiB.toFixed(1)} KiB per client), ${m.rssAfterConnect.toFixed(1)} MiB at once ` +
      `(${m.perClientAfterConnectKiB.toFixed(1)} KiB), ${m.serverBackends} primary backends`;
    const pgsplit: IdleMemory[] = [];
    const pgbouncer: IdleMemory[] = [];
    for (const query of [false, true]) {
      const proxy = await startPgsplit(cluster, port, true, config);
      try {
        pgsplit.push(...await idleMemory(port, proxy.pid ?? 0, counts, backends, { query, settleSeconds }));
      } finally {
        await stopChild(proxy);
      }
      for (const m of pgsplit.filter((x) => x.queried === query)) log(line('pgsplit', m));
      const b = await startPgBouncer(cluster, 20);
      if (typeof b === 'string') continue;
      b.stop = track(b.stop);
      try {
        pgbouncer.push(...await idleMemory(b.port, b.pid, counts, backends, { query, settleSeconds }));
      } finally {
        await b.stop();
      }
      for (const m of pgbouncer.filter((x) => x.queried === query)) log(line('pgbouncer', m));
    }
    return { pgsplit, pgbouncer };
  } finally {
    await sampler?.close();
    await cluster.stop();
  }
}

/** The classifier's speed on the statements the proxy sees (bench/classify.ts, quick mode). */
async function classifierFigures(): Promise<BenchReport['classifier']> {
  const { stdout } = await execFileAsync(process.execPath, [path.join(root, 'dist/bench/classify.js'), '--quick', '--json'], { maxBuffer: 1 << 24 });
  const parsed = JSON.parse(stdout) as { cells: Array<{ workload: string; mode: string; opsPerSec: number }> };
  return parsed.cells.filter((c) => !c.mode.trim().startsWith('(')).map((c) => ({ workload: c.workload, mode: c.mode, opsPerSec: c.opsPerSec }));
}

/** One line of console output for a cell: tps (ratio to direct) per target, then the two promised ratios. */
export function cellLine(c: BenchCell): string {
  const d = c.targets.direct?.tps ?? NaN;
  const parts = Object.entries(c.targets).map(([name, f]) => (f === null ? `${name}=n/a` : `${name}=${f.tps.toFixed(0)} (${(f.tps / d).toFixed(2)})`));
  const ratio = (a: string, b: string): string => {
    const x = c.targets[a]?.tps;
    const y = c.targets[b]?.tps;
    return x !== undefined && y !== undefined ? `  ${a}/${b}=${(x / y).toFixed(2)}` : '';
  };
  return `pgbench ${c.load} -M ${c.mode} -c ${c.clients}: ${parts.join('  ')}${ratio('pgsplit-untagged', 'pgbouncer')}${ratio('pgsplit-tagged', 'pgpool')}`;
}
