/**
 * npm run soak -- [--minutes N] [--fault-every S] [--sample-every S] [--tagged N] [--readers N] [--untagged N]
 *                  [--faults kill,stop,freeze,restart-primary,freeze-primary]
 *
 * A long run of the fault-injection load (test/fixtures/fault-load.ts) against pgsplit as an operator
 * runs it: a child process `node bin/pgsplit.js --listen ... --primary ... --replica ...` in front of a
 * local primary, two streaming replicas and a server that accepts TCP but never answers.
 *
 * Every --fault-every seconds (default 20) the next fault of the rotation is injected: by default a
 * replica killed, a replica stopped, a replica frozen (each replica in turn) and the primary restarted.
 * --faults picks the kinds; freeze-primary is off by default because writes then wait for the frozen
 * primary (a known pgsplit bug, see the todo tests in test/fault-injection.test.ts).
 *
 * Every --sample-every seconds (default 5) it samples pgsplit's resident memory (/proc/PID/status),
 * its V8 heap in use (its own metrics endpoint), its open file descriptors (/proc/PID/fd), its client
 * sessions (admin console SHOW CLIENTS) and the connections on the primary (pg_stat_activity, read
 * directly). At the end: the faults, the no-loss check on the primary, and whether the samples stayed
 * flat (first vs last vs max). Exits 1 if a write was lost or ran twice, a client hung, a read missed
 * its own write or lost its session's settings, or pgsplit exited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { LocalCluster, stopClustersOnSignal } from '../src/cluster/local-cluster.js';
import { claimFreePort } from '../src/cluster/local-node.js';
import {
  MixedLoad, attribute, createSchema, faultTable, formatCodes, primaryFrozen, primaryRestarted, replicaFrozen, replicaKilled,
  replicaStopped, silentServerRecord, startSilentServer, textTable, verificationSummary, verifyOnPrimary,
  type FaultContext, type FaultInjector, type FaultRecord,
} from '../test/fixtures/fault-load.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Options {
  minutes: number;
  faultEvery: number;
  sampleEvery: number;
  tagged: number;
  readers: number;
  untagged: number;
  faults: string[];
}

const FAULT_KINDS = ['kill', 'stop', 'freeze', 'restart-primary', 'freeze-primary'];

function parseArgs(argv: string[]): Options {
  const o: Options = { minutes: 10, faultEvery: 20, sampleEvery: 5, tagged: 4, readers: 3, untagged: 4, faults: ['kill', 'stop', 'freeze', 'restart-primary'] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): number => {
      const v = inline ?? argv[++i];
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number, got ${String(v)}`);
      return n;
    };
    switch (flag) {
      case '--minutes': o.minutes = value(); break;
      case '--fault-every': o.faultEvery = value(); break;
      case '--sample-every': o.sampleEvery = value(); break;
      case '--tagged': o.tagged = Math.round(value()); break;
      case '--untagged': o.untagged = Math.round(value()); break;
      case '--readers': o.readers = Math.round(value()); break;
      case '--faults': {
        const v = inline ?? argv[++i] ?? '';
        o.faults = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
        const bad = o.faults.filter((f) => !FAULT_KINDS.includes(f));
        if (bad.length > 0 || o.faults.length === 0) throw new Error(`--faults takes a list of ${FAULT_KINDS.join(', ')}; got ${v}`);
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write(`${fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]}*/\n`);
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a}; see npm run soak -- --help`);
    }
  }
  return o;
}

interface Sample {
  atS: number;
  phase: string;
  rssMiB: number;
  /** V8 heap in use (pgsplit_nodejs_heap_size_used_bytes from its metrics endpoint), MiB. */
  heapMiB: number | null;
  fds: number;
  sessions: number | null;
  /** Connections pgsplit holds on the primary: the load's sessions and its monitor. */
  primaryConns: number | null;
}

/** The admin console of the pgsplit child: pgsplit's own view of nodes and clients. */
class Admin {
  private client: pg.Client | null = null;
  constructor(private readonly port: number) {}

  private async conn(): Promise<pg.Client> {
    if (this.client) return this.client;
    const c = new pg.Client({ host: '127.0.0.1', port: this.port, user: 'postgres', database: 'pgsplit', connectionTimeoutMillis: 5000 });
    c.on('error', () => {
      if (this.client === c) this.client = null;
    });
    await c.connect();
    this.client = c;
    return c;
  }

  async rows<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
    const c = await this.conn();
    try {
      return (await c.query<T>(sql)).rows;
    } catch (e) {
      this.client = null;
      c.end().catch(() => undefined);
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => undefined);
    this.client = null;
  }
}

async function waitConnectable(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; ; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      return;
    } catch (e) {
      if (i > 150 || child.exitCode !== null) throw new Error(`pgsplit did not start: ${String(e)}\n${stderr()}`);
      await sleep(100);
    }
  }
}

function fdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

function rssMiB(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(text)?.[1] ?? 0) / 1024;
}

/** pgsplit's V8 heap in use, from its Prometheus endpoint (prom-client's default metrics). */
async function heapUsedMiB(metricsPort: number): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(3000) });
    const m = /^pgsplit_nodejs_heap_size_used_bytes\s+([0-9.e+]+)/m.exec(await res.text());
    return m?.[1] === undefined ? null : Number(m[1]) / (1024 * 1024);
  } catch {
    return null;
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<null>((r) => {
    timer = setTimeout(() => r(null), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const log = (msg: string): void => {
    process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  };
  log(`${opts.minutes} min, a fault every ${opts.faultEvery} s, samples every ${opts.sampleEvery} s, ${opts.tagged} tagged + ${opts.readers} tagged read-only + ${opts.untagged} untagged clients`);

  let child: ChildProcess | null = null;
  let silentServer: Awaited<ReturnType<typeof startSilentServer>> | null = null;
  let folder: string | null = null;
  // SIGINT/SIGTERM, from here on: stop what this run started (servers, pgsplit, the silent server, the
  // folder), then leave.
  const removeSignalHandlers = stopClustersOnSignal('soak', async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await silentServer?.close();
    if (folder !== null) await fsp.rm(folder, { recursive: true, force: true });
  });
  const cluster = await LocalCluster.start({ replicas: 2, log: (m) => log(`cluster: ${m}`) });
  const silent = await startSilentServer();
  silentServer = silent;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pgsplit-soak-'));
  folder = dir;
  let admin: Admin | null = null;
  let load: MixedLoad | null = null;
  try {
    await createSchema(cluster.primary);
    await cluster.waitForReplication();
    const port = await claimFreePort();
    const metricsPort = await claimFreePort();
    // Only what has no flag goes in the file: the monitor settings and the log level.
    const configFile = path.join(dir, 'pgsplit.yaml');
    await fsp.writeFile(configFile, 'monitor: { interval: 50ms, timeout: 1s, rise: 3 }\nlog: { level: warn }\n');
    const silentUrl = `postgres://postgres@127.0.0.1:${silent.port}/postgres`;
    const args = [
      path.join(repoRoot, 'bin/pgsplit.js'), '--config', configFile, '--listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`,
      '--primary', cluster.primary.url(),
      ...cluster.replicas.flatMap((r) => ['--replica', r.url()]), '--replica', silentUrl,
    ];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PGSPLIT_LOG_FORMAT: 'json' } });
    child = proc;
    let stderrText = '';
    let logLines = 0;
    let errorLines = 0;
    const lastLines: string[] = [];
    let partial = '';
    proc.stderr?.on('data', (c: Buffer) => {
      const text = partial + c.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        logLines++;
        if (/"level":(50|60)/.test(l)) errorLines++;
        lastLines.push(l);
        if (lastLines.length > 20) lastLines.shift();
      }
      if (stderrText.length < 100_000) stderrText += c.toString('utf8');
    });
    const pid = proc.pid as number;
    await waitConnectable(port, proc, () => stderrText);
    log(`pgsplit pid ${pid} listening on 127.0.0.1:${port}`);
    admin = new Admin(port);
    const adm = admin;
    const health = async (name: string): Promise<string | undefined> => {
      const rows = await adm.rows<{ name: string; state: string }>('SHOW NODES');
      return rows.find((r) => r.name === name)?.state;
    };
    const silentAtStart = await health('replica3');

    const samples: Sample[] = [];
    const started = performance.now();
    let phase = 'idle';
    const sample = async (): Promise<void> => {
      const clients = await withTimeout(adm.rows('SHOW CLIENTS').then((r) => r.length, () => null), 3000);
      const conns = cluster.primary.running && !cluster.primary.frozen
        ? await withTimeout(cluster.primary.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'fault-load-%' OR application_name = 'pgsplit-monitor'",
        ).then((r) => r[0]?.n ?? null, () => null), 3000)
        : null;
      samples.push({
        atS: (performance.now() - started) / 1000, phase, rssMiB: rssMiB(pid), heapMiB: await heapUsedMiB(metricsPort), fds: fdCount(pid),
        sessions: clients, primaryConns: conns,
      });
    };
    await sample();

    load = new MixedLoad({ port, tagged: opts.tagged, readers: opts.readers, untagged: opts.untagged, hangMs: 20_000, thinkMs: 5 }).start();
    phase = 'load';
    const ctx: FaultContext = { cluster, load, health, replicaName: (i) => `replica${i + 1}`, primaryName: 'primary', log };
    // Each replica in turn: replica1 gets the first kill, replica2 the first stop, and so on.
    const rotation: FaultInjector[] = [];
    for (let round = 0; round < 2; round++) {
      opts.faults.forEach((f, k) => {
        const replica = (round + k) % 2;
        if (f === 'kill') rotation.push(replicaKilled(replica));
        else if (f === 'stop') rotation.push(replicaStopped(replica));
        else if (f === 'freeze') rotation.push(replicaFrozen(replica, 3000));
        else if (f === 'restart-primary') rotation.push(primaryRestarted(1000));
        else if (f === 'freeze-primary') rotation.push(primaryFrozen(3000));
      });
    }
    const records: FaultRecord[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sleep(opts.sampleEvery * 1000);
        if (sampling) await sample();
      }
    })();
    const endAt = started + opts.minutes * 60_000;
    let next = 0;
    // The first fault after a stretch of plain load, so the first samples show pgsplit settled.
    let faultAt = performance.now() + Math.min(opts.faultEvery, 15) * 1000;
    while (performance.now() < endAt) {
      if (performance.now() >= faultAt) {
        const fault = rotation[next++ % rotation.length] as FaultInjector;
        phase = 'fault';
        const rec = await fault.run(ctx);
        phase = 'load';
        records.push(rec);
        log(`${rec.fault}: ${rec.window.errorCount} errors (${formatCodes(rec.window.errors)}), out after ${Math.round(rec.downAfterMs ?? -1)} ms, back after ${Math.round(rec.backAfterMs ?? -1)} ms`);
        faultAt += opts.faultEvery * 1000;
        // A fault that took longer than the period does not make the next ones pile up.
        if (faultAt < performance.now()) faultAt = performance.now() + 2000;
      }
      await sleep(Math.max(0, Math.min(500, faultAt - performance.now(), endAt - performance.now())));
    }
    phase = 'stopping';
    await load.stop();
    phase = 'idle after';
    // Clients gone: what pgsplit still holds now is what it keeps when idle.
    await sleep(5000);
    sampling = false;
    await sampler;
    await sample();
    records.push(silentServerRecord(load.quiet, silentAtStart === 'down' ? 0 : null,
      `out at start (SHOW NODES: ${silentAtStart}); ${silent.accepted()} monitor connections accepted, ${silent.open()} open at the end`));

    const totals = load.totals;
    const v = await verifyOnPrimary(cluster.primary, load.ledger);
    const outside = attribute(records, v.problems);

    process.stdout.write(`\n== faults (${records.length - 1} injected over ${opts.minutes} min) ==\n`);
    process.stdout.write(`${aggregate(records)}\n`);
    process.stdout.write(`\n== each fault ==\n${faultTable(records)}\n`);
    process.stdout.write(`\n== load ==\n${totals.ops} operations, ${totals.readsOk} reads, ${totals.writesAcked} writes acknowledged; worst operation ${Math.round(totals.worstOpMs)} ms\n`);
    process.stdout.write(`errors by client/operation/SQLSTATE: ${formatCodes(totals.errorKinds)}\n`);
    process.stdout.write(`errors while no fault was being injected: ${formatCodes(load.quiet.errors)}\n`);
    // The first few messages of each kind of fault, to tell what the clients were told.
    const shown = new Set<string>();
    for (const r of records) {
      const key = r.fault.replace(/^replica\d/, 'replica');
      if (shown.has(key) || r.window.samples.length === 0) continue;
      shown.add(key);
      for (const s of r.window.samples.slice(0, 40)) process.stdout.write(`  ${key}: ${s}\n`);
    }
    process.stdout.write(`\n== no loss, checked on the primary ==\n${verificationSummary(v, totals)}\n`);
    for (const p of v.problems.slice(0, 20)) process.stdout.write(`problem: ${p.kind}: ${p.detail}\n`);
    for (const p of outside.slice(0, 5)) process.stdout.write(`outside every fault window: ${p.detail}\n`);
    process.stdout.write(`\n== pgsplit resources (pid ${pid}) ==\n${resourceTable(samples)}\n`);
    process.stdout.write(`\nsamples (every ${Math.max(1, Math.round(samples.length / 20))}th):\n${sampleTable(samples)}\n`);
    process.stdout.write(`\npgsplit log: ${logLines} lines (${errorLines} error/fatal)\n`);
    if (errorLines > 0) process.stdout.write(`${lastLines.filter((l) => /"level":(50|60)/.test(l)).slice(-5).join('\n')}\n`);

    const bad = v.lost > 0 || v.twice > 0 || totals.hangs > 0 || totals.staleReads > 0 || totals.counterAnomalies > 0 || totals.settingsLost > 0 || proc.exitCode !== null;
    process.stdout.write(bad ? '\nSOAK FAILED\n' : '\nsoak ok\n');
    return bad ? 1 : 0;
  } finally {
    if (load && !load.stopping) await load.stop().catch(() => undefined);
    await admin?.close();
    if (child && child.exitCode === null) {
      const c = child;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      if ((await withTimeout(exited, 10_000)) === null) c.kill('SIGKILL');
    }
    await silent.close();
    await cluster.stop();
    await fsp.rm(dir, { recursive: true, force: true });
    removeSignalHandlers();
  }
}

/** One line per kind of fault: how often, errors, and the spread of the times. */
function aggregate(records: FaultRecord[]): string {
  const by = new Map<string, FaultRecord[]>();
  for (const r of records) {
    const key = r.fault.replace(/^replica\d/, 'replica');
    let list = by.get(key);
    if (!list) by.set(key, (list = []));
    list.push(r);
  }
  const span = (xs: Array<number | null>): string => {
    const v = xs.filter((x): x is number => x !== null);
    if (v.length === 0) return '-';
    return `${Math.round(Math.min(...v))}-${Math.round(Math.max(...v))} ms`;
  };
  const rows = [...by].map(([fault, rs]) => {
    const codes = new Map<string, number>();
    for (const r of rs) for (const [k, n] of r.window.errors) codes.set(k, (codes.get(k) ?? 0) + n);
    let errors = 0;
    for (const n of codes.values()) errors += n;
    return [
      fault, String(rs.length), `${errors}: ${formatCodes(codes)}`, span(rs.map((r) => r.downAfterMs)), span(rs.map((r) => r.worstReadMs)),
      span(rs.map((r) => r.backAfterMs)), String(rs.reduce((n, r) => n + r.lost, 0)), String(rs.reduce((n, r) => n + r.twice, 0)),
    ];
  });
  return textTable(['fault', 'times', 'client errors', 'out of rotation after', 'worst tagged read', 'back in after', 'lost', 'twice'], rows);
}

function resourceTable(samples: Sample[]): string {
  const loaded = samples.filter((s) => s.phase === 'load' || s.phase === 'fault');
  const idleBefore = samples[0];
  const idleAfter = samples[samples.length - 1];
  const firstLoaded = loaded[0];
  const lastLoaded = loaded[loaded.length - 1];
  const metric = (name: string, get: (s: Sample) => number | null, unit: string, digits = 0): string[] => {
    const vals = loaded.map(get).filter((x): x is number => x !== null && x >= 0);
    const f = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${x.toFixed(digits)}${unit}`);
    return [
      name, f(idleBefore ? get(idleBefore) : null), f(firstLoaded ? get(firstLoaded) : null), f(lastLoaded ? get(lastLoaded) : null),
      f(vals.length ? Math.max(...vals) : null), f(vals.length ? Math.min(...vals) : null), f(idleAfter ? get(idleAfter) : null),
    ];
  };
  return textTable(
    ['metric', 'idle before load', 'first (load)', 'last (load)', 'max (load)', 'min (load)', 'idle after load'],
    [
      metric('RSS', (s) => s.rssMiB, ' MiB', 1),
      metric('V8 heap used', (s) => s.heapMiB, ' MiB', 1),
      metric('open fds', (s) => s.fds, ''),
      metric('client sessions', (s) => s.sessions, ''),
      metric('connections on the primary', (s) => s.primaryConns, ''),
    ],
  ) + `\n(${loaded.length} samples under load; a sample taken while the primary was down has no connection count)`;
}

function sampleTable(samples: Sample[]): string {
  const step = Math.max(1, Math.round(samples.length / 20));
  const picked = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  return textTable(['t', 'phase', 'RSS MiB', 'heap MiB', 'fds', 'sessions', 'primary conns'], picked.map((s) => [
    `${s.atS.toFixed(0)} s`, s.phase, s.rssMiB.toFixed(1), s.heapMiB === null ? '-' : s.heapMiB.toFixed(1), String(s.fds), s.sessions === null ? '-' : String(s.sessions), s.primaryConns === null ? '-' : String(s.primaryConns),
  ]));
}

main().then((code) => {
  process.exitCode = code;
}, (e: unknown) => {
  process.stderr.write(`soak: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
