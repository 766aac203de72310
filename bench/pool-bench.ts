/**
 * `npm run bench:pool`: many clients through a small server pool. pgbench -S with 1,000 clients (by
 * default) through PgBouncer (transaction pooling, `default_pool_size` = the pool size) and through
 * pgsplit (untagged and tagged, configured with `pool: { size }` when its configuration accepts that
 * key), in -M simple, extended and prepared, on one primary with one streaming replica; then pgsplit's
 * memory with many idle clients (resource-scale.ts, beside PgBouncer's).
 *
 * Per case: tps, pgbench's failed transactions and aborted clients (a run that fails is reported, not
 * hidden: PgBouncer 1.18 cannot keep named prepared statements in transaction mode), the most backends
 * the proxy held on each server (backend-sampler.ts, every 200 ms, straight on the servers), and the
 * proxy's CPU time and largest resident memory during the run.
 *
 * Runs write pool.md and pool.json to bench/results/runs/pool-<time>/ (not committed); --publish writes
 * them to bench/results/. The same harness measures today's pgsplit (a server connection per client
 * session) and a pooled one: only the figures change.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFile, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import { resolveConfig } from '../src/config/load-config.js';
import { POOLED_MODES } from '../src/server/pooled-source.js';
import { BackendSampler, type BackendPeak } from './backend-sampler.js';
import { idleClients, machineInfo, root, startPgsplit, stopChild, track, versions, type BenchReport } from './bench-suite.js';
import { num } from './bench-report.js';
import { startPgBouncer, type PeerProxy } from './peer-proxies.js';
import { pgbenchOutcome, runPgbench } from './pgbench-run.js';
import { cpuSeconds, memoryMiB } from './process-usage.js';
import { openRunScope, stoppedBySignal } from './run-scope.js';

const execFileAsync = promisify(execFile);

type Mode = 'simple' | 'extended' | 'prepared';
const MODES: readonly Mode[] = ['simple', 'extended', 'prepared'];
const TARGETS = ['pgbouncer', 'pgsplit-untagged', 'pgsplit-tagged'] as const;
type TargetName = (typeof TARGETS)[number];
/** How tagged sessions are tagged: the startup option, or an application_name pattern in pgsplit's config. */
type TagBy = 'options' | 'application_name';
const TAGGED_APPLICATION_NAME = 'pgbench-tagged';

export const POOL_BENCH_USAGE = `usage: node dist/bench/pool-bench.js [options]     (npm run bench:pool -- [options])

  pgbench -S -c CLIENTS -j 2 through PgBouncer (transaction pooling) and pgsplit (untagged, tagged),
  both with a pool of --pool-size server connections, on a primary and one replica; then N idle clients.

  --clients N[,N]    pgbench clients per case (default 1000); e.g. 16,1000
  --seconds S        length of each pgbench run (default 30)
  --scale N          pgbench scale (default 10)
  --pool-size N      PgBouncer's default_pool_size and pgsplit's pool.size (default 20); pgsplit gets
                     pool.size only when its configuration accepts the key (the report says which)
  --modes M[,M]      pgbench -M modes (default simple,extended,prepared)
  --targets T[,T]    pgbouncer, pgsplit-untagged, pgsplit-tagged (default all three)
  --tag-by HOW       options (PGOPTIONS=-c pgsplit.route=replica, the default) or application_name
                     (application_name=${TAGGED_APPLICATION_NAME}, matched by routing.application_names)
  --warm S           seconds of warm-up per pgsplit path before measuring (default 3; 0: none)
  --idle-clients N   idle clients whose memory is measured after the pgbench cases (default 5000; 0: skip)
  --idle-only        only the idle-client measurement
  --idle-settle S    seconds the proxy is left alone before each idle-memory reading (default 60)
  --out DIR          write pool.md and pool.json to DIR
  --publish          write them to bench/results/ (the committed copy)
  -h, --help         print this and exit
Without --publish or --out, each run writes to bench/results/runs/pool-<time>/ (not committed).
Ctrl-C or SIGTERM stops every server the run started and removes its folders.`;

export interface PoolBenchOptions {
  clients: number[];
  seconds: number;
  scale: number;
  poolSize: number;
  modes: Mode[];
  targets: TargetName[];
  tagBy: TagBy;
  warmSeconds: number;
  idleClients: number;
  idleOnly: boolean;
  idleSettle: number;
  outDir: string;
  log?: (line: string) => void;
}

export type PoolBenchArgs = { help: true } | { help: false; options: PoolBenchOptions };

function list<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const out: T[] = [];
  for (const v of value.split(',').map((x) => x.trim())) {
    const hit = allowed.find((a) => a === v);
    if (hit === undefined) throw new Error(`${flag} ${JSON.stringify(value)}: unknown ${JSON.stringify(v)}; use ${allowed.join(', ')}`);
    if (!out.includes(hit)) out.push(hit);
  }
  return out;
}

function whole(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} ${JSON.stringify(value)}: write a whole number of at least ${min}`);
  return n;
}

/** Parses the command line; throws an Error naming the bad argument. `now` names the run's folder. */
export function parsePoolBenchArgs(argv: readonly string[], now: Date = new Date()): PoolBenchArgs {
  if (argv.includes('--help') || argv.includes('-h')) return { help: true };
  const o: Omit<PoolBenchOptions, 'outDir'> = {
    clients: [1000], seconds: 30, scale: 10, poolSize: 20, modes: [...MODES], targets: [...TARGETS], tagBy: 'options',
    warmSeconds: 3, idleClients: 5000, idleOnly: false, idleSettle: 60,
  };
  let out: string | undefined;
  let publish = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--publish') {
      publish = true;
      continue;
    }
    if (a === '--idle-only') {
      o.idleOnly = true;
      continue;
    }
    const v = argv[i + 1];
    if (!['--clients', '--seconds', '--scale', '--pool-size', '--modes', '--targets', '--tag-by', '--warm', '--idle-clients', '--idle-settle', '--out'].includes(a)) {
      throw new Error(`unknown argument ${JSON.stringify(a)}`);
    }
    if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
    i++;
    switch (a) {
      case '--clients': o.clients = [...new Set(v.split(',').map((c) => whole(a, c, 1)))]; break;
      case '--seconds': o.seconds = whole(a, v, 1); break;
      case '--scale': o.scale = whole(a, v, 1); break;
      case '--pool-size': o.poolSize = whole(a, v, 1); break;
      case '--modes': o.modes = list(a, v, MODES); break;
      case '--targets': o.targets = list(a, v, TARGETS); break;
      case '--tag-by': o.tagBy = list(a, v, ['options', 'application_name'] as const)[0] ?? 'options'; break;
      case '--warm': o.warmSeconds = whole(a, v, 0); break;
      case '--idle-clients': o.idleClients = whole(a, v, 0); break;
      case '--idle-settle': o.idleSettle = whole(a, v, 0); break;
      default: out = path.resolve(v);
    }
  }
  if (publish && out !== undefined) throw new Error('--publish writes to bench/results/; drop --out, or drop --publish');
  if (o.idleOnly && o.idleClients === 0) throw new Error('--idle-only with --idle-clients 0 measures nothing; give a count');
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const results = path.join(root, 'bench/results');
  return { help: false, options: { ...o, outDir: out ?? (publish ? results : path.join(results, 'runs', `pool-${stamp}`)) } };
}

/**
 * Whether this build's configuration accepts `pool: { size }`: resolved as pgsplit would resolve its
 * file, so the benchmark follows the code without a flag day. The loader's message when it refuses.
 */
export function poolSupport(size: number): { accepted: true } | { accepted: false; reason: string } {
  try {
    const c = resolveConfig({ primary: 'postgres://postgres@127.0.0.1:5432/postgres', pool: { size } });
    // The key alone says nothing: a mode whose sessions open connections of their own pools nothing.
    if (!POOLED_MODES.has(c.pool.mode)) return { accepted: false, reason: `pool.mode ${c.pool.mode} borrows no pooled connections: its sessions open server connections of their own` };
    return { accepted: true };
  } catch (e) {
    return { accepted: false, reason: (e as Error).message };
  }
}

/** One pgbench run through one target. */
export interface PoolCase {
  target: TargetName;
  mode: Mode;
  clients: number;
  tps: number;
  transactions: number;
  /** pgbench's "number of failed transactions". */
  failed: number;
  /** Clients pgbench aborted after an error; their transactions never ran. */
  aborted: number;
  exitCode: number;
  errors: string[];
  /** Most backends of the proxy per server during the run (sessions; pgsplit's monitor apart). */
  backends: BackendPeak[];
  /** Session backends of the proxy per server when the run started (left by earlier runs, or a warm pool). */
  backendsBefore: Record<string, number>;
  /** The proxy's CPU time during the run: seconds, share of one core, microseconds per transaction. */
  cpuSeconds: number;
  cpuCoreShare: number;
  cpuUsPerTx: number | null;
  /** Largest resident memory of the proxy sampled during the run, MiB. */
  maxRssMiB: number;
  /**
   * pgsplit's warnings during the run, counted by message and server (e.g. "server out of rotation
   * (replica1)": its monitor got no answer in time, so tagged reads went to the primary meanwhile).
   */
  warnings: Record<string, number>;
  wallSeconds: number;
}

export interface PoolBenchReport {
  date: string;
  command: string;
  machine: BenchReport['machine'];
  versions: Record<string, string>;
  settings: Omit<PoolBenchOptions, 'outDir' | 'log'> & { maxConnections: number; openFilesLimit: number | null };
  /** Whether pgsplit ran with `pool: { size }`, and why not. */
  pgsplitPool: { configured: boolean; note: string };
  notes: string[];
  cases: PoolCase[];
  idle: BenchReport['idle'] | null;
}

/** This process's soft limit of open files (children inherit it), from /proc. */
function openFilesLimit(): number | null {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m === null ? null : m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

interface Target {
  name: TargetName;
  port: number;
  pid: number;
  env: NodeJS.ProcessEnv;
}

/** Runs the benchmark, writes pool.md and pool.json into opts.outDir, and returns the report. */
export async function runPoolBench(opts: PoolBenchOptions, command = 'npm run bench:pool'): Promise<PoolBenchReport> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const bin = (await execFileAsync('pg_config', ['--bindir'])).stdout.trim();
  const most = Math.max(...opts.clients);
  const fdLimit = openFilesLimit();
  // pgsplit today: a client socket and up to two server sockets per session; the idle run's own process
  // holds N client sockets.
  const fdNeed = Math.max(opts.idleOnly ? 0 : 3 * most, 2 * opts.idleClients) + 200;
  if (fdLimit !== null && fdLimit < fdNeed) {
    throw new Error(`open-file limit ${fdLimit} is below the ${fdNeed} this run needs (pgsplit: a client and up to two server sockets per session); raise it (ulimit -n ${fdNeed}) or lower --clients / --idle-clients`);
  }
  const pool = poolSupport(opts.poolSize);
  const poolNote = pool.accepted
    ? `pgsplit ran with pool: { size: ${opts.poolSize} }`
    : `pgsplit ran WITHOUT a pool (${pool.reason}): each client session holds a server connection of its own (a replica one too when tagged), so its backend counts show the unpooled figure`;
  log(poolNote);
  const notes: string[] = [];
  const env = { ...process.env };
  delete env.PGOPTIONS;
  delete env.PGAPPNAME;
  const taggedEnv = opts.tagBy === 'options' ? { ...env, PGOPTIONS: '-c pgsplit.route=replica' } : { ...env, PGAPPNAME: TAGGED_APPLICATION_NAME };
  const configLines = [
    `limits: { max_client_connections: ${Math.max(most, opts.idleClients) + 100} }`,
    ...(pool.accepted ? [`pool: { size: ${opts.poolSize} }`] : []),
    ...(opts.tagBy === 'application_name' ? [`routing: { application_names: ["${TAGGED_APPLICATION_NAME}"] }`] : []),
  ];
  // Enough for today's pgsplit (a backend per client, on each node a tagged session reads from); a pool
  // needs only pool.size plus pgsplit's monitor.
  const maxConnections = most + 100;
  const cases: PoolCase[] = [];
  const peers: PeerProxy[] = [];
  let vs: Record<string, string> = {};
  if (!opts.idleOnly) {
    const cluster = await LocalCluster.start({ replicas: 1, settings: { max_connections: String(maxConnections), shared_buffers: '128MB' } });
    log(`cluster: primary and 1 replica in ${cluster.baseDir}, max_connections ${maxConnections}`);
    let sampler: BackendSampler | undefined;
    // pgsplit's log lines are counted into the case that runs (none between cases).
    let countWarning: (key: string) => void = () => undefined;
    const onLogLine = (line: string): void => {
      const w = warningKey(line);
      if (w !== null) countWarning(w);
    };
    try {
      await execFileAsync(path.join(bin, 'pgbench'), ['-i', '-q', '-s', String(opts.scale), '-h', '127.0.0.1', '-p', String(cluster.primary.port), '-U', 'postgres', 'postgres'], { env });
      await cluster.waitForReplication(120_000);
      sampler = await BackendSampler.connect(cluster.nodes);
      const run = async (t: Target, mode: Mode, clients: number, floor: number): Promise<void> => {
        const before = await sampler!.settle(floor, 30_000);
        const warnings: Record<string, number> = {};
        countWarning = (key) => {
          warnings[key] = (warnings[key] ?? 0) + 1;
        };
        let maxRss = memoryMiB(t.pid).rss;
        const cpu0 = cpuSeconds(t.pid);
        const started = performance.now();
        sampler!.start(200, () => {
          try {
            maxRss = Math.max(maxRss, memoryMiB(t.pid).rss);
          } catch {
            // the proxy exited; the case reports what pgbench saw
          }
        });
        const o = await pgbenchOutcome({ bin, port: t.port, load: '-S', mode, clients, seconds: opts.seconds, env: t.env });
        const backends = await sampler!.stop();
        countWarning = () => undefined;
        const wall = (performance.now() - started) / 1000;
        const cpu = cpuSeconds(t.pid) - cpu0;
        const c: PoolCase = {
          target: t.name, mode, clients, tps: o.tps, transactions: o.transactions, failed: o.failed, aborted: o.aborted, exitCode: o.exitCode,
          errors: o.errors, backends, backendsBefore: Object.fromEntries(before.map((b) => [b.node, b.sessions])),
          cpuSeconds: cpu, cpuCoreShare: cpu / wall, cpuUsPerTx: o.transactions > 0 ? (cpu * 1e6) / o.transactions : null, maxRssMiB: maxRss, wallSeconds: wall,
          warnings,
        };
        cases.push(c);
        log(caseLine(c, opts.poolSize));
      };
      if (opts.targets.includes('pgbouncer')) {
        const b = await startPgBouncer(cluster, opts.poolSize, most + 100);
        if (typeof b === 'string') {
          notes.push(`PgBouncer left out: ${b}`);
          log(`PgBouncer left out: ${b}`);
        } else {
          b.stop = track(b.stop);
          peers.push(b);
          log(`peer: ${b.version} on port ${b.port}, pool_mode=transaction, default_pool_size=${opts.poolSize}`);
          if (opts.modes.includes('prepared')) notes.push(`${b.version} keeps no named prepared statements in transaction pooling (added in 1.21): its -M prepared case fails, shown as it ran`);
          const t: Target = { name: 'pgbouncer', port: b.port, pid: b.pid, env };
          // PgBouncer keeps its pool's server connections open between runs: wait down to the pool, not 0.
          for (const clients of opts.clients) for (const mode of opts.modes) await run(t, mode, clients, opts.poolSize);
          await b.stop();
        }
      }
      const pgsplitTargets = opts.targets.filter((t) => t !== 'pgbouncer');
      if (pgsplitTargets.length > 0) {
        const port = await claimFreePort();
        const config = path.join(cluster.baseDir, 'pgsplit-pool.yaml');
        await fsp.writeFile(config, `${configLines.join('\n')}\n`);
        const proxy: ChildProcess = await startPgsplit(cluster, port, false, config, onLogLine);
        const targets: Target[] = pgsplitTargets.map((name) => ({ name, port, pid: proxy.pid ?? 0, env: name === 'pgsplit-tagged' ? taggedEnv : env }));
        // Warm-up: every measured path once, so V8's compilation is not charged to the first case.
        if (opts.warmSeconds > 0) {
          for (const mode of opts.modes) {
            for (const t of targets) await runPgbench({ bin, port, load: '-S', mode, clients: Math.min(16, most), seconds: opts.warmSeconds, env: t.env });
          }
        }
        for (const clients of opts.clients) for (const mode of opts.modes) for (const t of targets) await run(t, mode, clients, pool.accepted ? opts.poolSize : 0);
        await stopChild(proxy);
      }
      vs = await versions(bin, peers);
    } finally {
      await sampler?.close();
      for (const p of peers) await p.stop();
      await cluster.stop();
    }
  } else {
    vs = await versions(bin, []);
  }
  let idle: BenchReport['idle'] | null = null;
  if (opts.idleClients > 0) {
    log(`idle clients: ${opts.idleClients} to pgsplit, then to PgBouncer (a primary of their own)`);
    idle = await idleClients([opts.idleClients], log, configLines.slice(1).map((l) => `${l}\n`).join(''), opts.idleSettle);
    if (idle.pgbouncer.length > 0 && vs.pgbouncer === undefined) vs.pgbouncer = (await execFileAsync('/usr/sbin/pgbouncer', ['--version'])).stdout.split('\n')[0]?.trim() ?? 'unknown';
  }
  const { log: _log, outDir, ...settings } = opts;
  const report: PoolBenchReport = {
    date: new Date().toISOString(),
    command,
    machine: machineInfo(),
    versions: vs,
    settings: { ...settings, maxConnections, openFilesLimit: fdLimit === Infinity ? null : fdLimit },
    pgsplitPool: { configured: pool.accepted, note: poolNote },
    notes,
    cases,
    idle,
  };
  await fsp.mkdir(outDir, { recursive: true });
  await fsp.writeFile(path.join(outDir, 'pool.json'), `${JSON.stringify(report, null, 2)}\n`);
  await fsp.writeFile(path.join(outDir, 'pool.md'), poolMarkdown(report));
  return report;
}

/** `message (node)` of one of pgsplit's JSON log lines at warning level or above; null for anything else. */
export function warningKey(line: string): string | null {
  let entry: { level?: unknown; msg?: unknown; node?: unknown };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return null;
  }
  if (typeof entry.level !== 'number' || entry.level < 40 || typeof entry.msg !== 'string') return null;
  return typeof entry.node === 'string' ? `${entry.msg} (${entry.node})` : entry.msg;
}

/** Whether a case held the goal: every node at most `poolSize` backends, no failed transaction, no aborted client. */
export function withinGoal(c: PoolCase, poolSize: number): boolean {
  return c.exitCode === 0 && c.failed === 0 && c.aborted === 0 && c.transactions > 0 && c.backends.every((b) => b.sessions <= poolSize);
}

/** One console line per case. */
export function caseLine(c: PoolCase, poolSize: number): string {
  const nodes = c.backends.map((b) => `${b.node} ${b.sessions}${b.monitor > 0 ? `+${b.monitor} monitor` : ''}`).join(', ');
  const fail = c.exitCode === 0 && c.aborted === 0 ? '' : `  FAILED (exit ${c.exitCode}, ${c.aborted} clients aborted: ${c.errors[0] ?? 'no message'})`;
  return `${c.target} -M ${c.mode} -c ${c.clients}: ${num(c.tps)} tps, ${c.failed} failed tx, max backends ${nodes}; ` +
    `CPU ${(c.cpuCoreShare * 100).toFixed(0)}% of a core, max RSS ${c.maxRssMiB.toFixed(1)} MiB; ${withinGoal(c, poolSize) ? 'within' : 'OUTSIDE'} the goal${fail}${warningText(c)}`;
}

function warningText(c: PoolCase): string {
  const w = Object.entries(c.warnings);
  return w.length === 0 ? '' : `; pgsplit warned: ${w.map(([k, n]) => `${k} x${n}`).join(', ')}`;
}

/** The Markdown report. */
export function poolMarkdown(r: PoolBenchReport): string {
  const s = r.settings;
  const L: string[] = ['# Many clients through a pool of server connections', ''];
  L.push(`Run ${r.date}: \`${r.command}\`.`, '');
  L.push(`Machine: ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memoryGiB.toFixed(1)} GiB, Linux ${r.machine.kernel}; ` +
    'the servers, the proxies and pgbench share these CPUs.', '');
  L.push(`Versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join('; ')}.`, '');
  L.push(`Setup: a primary and one streaming replica (max_connections ${s.maxConnections}); pgbench scale ${s.scale}, ` +
    `\`pgbench -S -M MODE -c CLIENTS -j 2 -T ${s.seconds}\`; pool size ${s.poolSize} (PgBouncer: pool_mode=transaction, ` +
    `default_pool_size=${s.poolSize}); tagged sessions: ${s.tagBy === 'options' ? '`PGOPTIONS=-c pgsplit.route=replica`' : `application_name \`${TAGGED_APPLICATION_NAME}\``}; ` +
    `open-file limit ${s.openFilesLimit ?? 'unlimited'}.`, '');
  L.push(`**${r.pgsplitPool.note}.**`, '');
  for (const n of r.notes) L.push(`- ${n}`);
  if (r.notes.length > 0) L.push('');
  L.push(`Goal: at most ${s.poolSize} proxy backends per node in pg_stat_activity, 0 failed transactions. Backends are counted on ` +
    'each server every 200 ms (client backends over TCP, i.e. the proxy\'s, other than the sampler; pgsplit\'s replica monitor ' +
    'apart, shown as +N); "before" is what the proxy held when the run started.', '');
  if (r.cases.length > 0) {
    L.push('| target | mode | clients | tps | failed tx | aborted clients | max backends primary | max backends replica | before | proxy CPU (share of a core) | CPU µs/tx | max RSS | goal |');
    L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const c of r.cases) {
      const mon = (node: string): string => {
        const b = c.backends.find((x) => x.node === node);
        return b === undefined ? '—' : `${num(b.sessions)}${b.monitor > 0 ? ` (+${b.monitor})` : ''}`;
      };
      const before = Object.values(c.backendsBefore).join(' / ');
      L.push(`| ${c.target} | ${c.mode} | ${num(c.clients)} | ${num(c.tps)} | ${num(c.failed)} | ${num(c.aborted)} | ${mon('primary')} | ${mon('replica1')} | ${before} | ` +
        `${(c.cpuCoreShare * 100).toFixed(0)}% | ${num(c.cpuUsPerTx ?? undefined, 1)} | ${c.maxRssMiB.toFixed(1)} MiB | ${withinGoal(c, s.poolSize) ? 'yes' : '**no**'} |`);
    }
    L.push('');
    const failures = r.cases.filter((c) => c.errors.length > 0);
    if (failures.length > 0) {
      L.push('Errors pgbench reported:', '');
      for (const c of failures) L.push(`- ${c.target} -M ${c.mode} -c ${c.clients} (exit ${c.exitCode}): ${c.errors.map((e) => `\`${e}\``).join('; ')}`);
      L.push('');
    }
    const warned = r.cases.filter((c) => Object.keys(c.warnings).length > 0);
    if (warned.length > 0) {
      L.push('pgsplit\'s warnings during the runs ("server out of rotation": its monitor got no answer within monitor.timeout; a replica out of rotation takes no tagged reads until it answers again, so they go to the primary when it is the only one):', '');
      for (const c of warned) L.push(`- ${c.target} -M ${c.mode} -c ${c.clients}: ${Object.entries(c.warnings).map(([k, n]) => `${k} x${n}`).join(', ')}`);
      L.push('');
    }
  }
  if (r.idle !== null) {
    L.push('## Idle clients', '');
    L.push('Clients that complete startup (and, in the second kind, run one `SELECT 1`) and then send nothing, on a primary of their own, each kind on a freshly started proxy; ' +
      'goal for pgsplit: at most 6 KiB of resident memory each. "Settled" is read after the proxy was left alone (the baseline too): ' +
      'V8 grows its young generation while thousands of clients arrive at once and hands it back once the process is idle; "at once" is 2 s after the last client connected.', '');
    L.push('| proxy | idle clients | kind | RSS before (settled) | RSS at once | per client at once | RSS settled | per client settled | primary backends |');
    L.push('|---|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const [name, rows] of [['pgsplit', r.idle.pgsplit], ['pgbouncer', r.idle.pgbouncer]] as const) {
      for (const m of rows) {
        L.push(`| ${name} | ${num(m.clients)} | ${m.queried ? 'after one query' : 'startup only'} | ${m.baseline.toFixed(1)} MiB | ${m.rssAfterConnect.toFixed(1)} MiB | ` +
          `${m.perClientAfterConnectKiB.toFixed(1)} KiB | ${m.rss.toFixed(1)} MiB | ${m.perClientKiB.toFixed(1)} KiB | ${num(m.serverBackends)} |`);
      }
    }
    L.push('');
  }
  return `${L.join('\n')}\n`;
}

/** The command line: parse, run inside a run scope (signals stop everything), print where the report went. */
async function main(): Promise<number> {
  let args: PoolBenchArgs;
  try {
    args = parsePoolBenchArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench:pool: ${(e as Error).message}\n${POOL_BENCH_USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${POOL_BENCH_USAGE}\n`);
    return 0;
  }
  const removeRunTmp = openRunScope('bench:pool');
  process.stdout.write(`bench:pool: report in ${args.options.outDir}\n`);
  try {
    const command = ['npm run bench:pool', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
    const r = await runPoolBench(args.options, command);
    process.stdout.write(`\nreport written to ${path.join(args.options.outDir, 'pool.md')} (${r.cases.length} cases)\n`);
    return 0;
  } finally {
    // After a signal its handler removes the folder, once the processes using it are stopped.
    if (!stoppedBySignal()) removeRunTmp();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      // After SIGINT/SIGTERM the signal handler finishes its cleanup and exits 130/143.
      if (stoppedBySignal()) return;
      process.stderr.write(`bench:pool failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
