/**
 * `node dist/bench/write-then-read.js`: what a tagged client feels of read-your-writes, and how close
 * pgsplit's lag estimate is to the truth. Starts a primary with two streaming replicas
 * (synchronous_commit on, as in production) and pgsplit in this process, then:
 *
 * 1. Write-then-read loop: N iterations of INSERT a row, then SELECT it back (autocommit), on a direct
 *    connection to the primary, on an untagged connection through pgsplit (everything on the primary: the
 *    proxy's own cost) and on a tagged one, in interleaved rounds. Reports the median time of each, the
 *    ratio tagged / direct, the share of the tagged reads that ran on a replica (every
 *    read returns pg_is_in_recovery()), and reads that missed their own write (must be 0).
 * 2. Lag estimate under steady writes: a heartbeat row is updated on the primary every few ms; a probe
 *    reads it on each replica directly, and at the moment each read starts pgsplit's estimate for that
 *    replica is taken. The truth is how long before the read the first heartbeat it missed had been
 *    acknowledged (a lower bound, to within one heartbeat). Reports |estimate - truth| p50/p95 per replica,
 *    and the share of a tagged session's reads (routing.max_lag 50 ms) that ran on a replica.
 *
 * Results (report.md, results.json) go to bench/results/runs/write-then-read-<time>/ (never replacing
 * committed results). Keep runs short on a shared machine: the defaults take about a minute.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { LocalCluster, stopAllClustersSync, type LocalNode } from '../src/cluster/local-cluster.js';
import { resolveConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/log/logger.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';

interface Args {
  rounds: number;
  iterations: number;
  lagSeconds: number;
  heartbeatMs: number;
  out: string | undefined;
  monitor: Record<string, string>;
}

const USAGE = `usage: node dist/bench/write-then-read.js [options]
  --rounds N        interleaved rounds of the loop, direct then tagged (default 5)
  --iterations N    INSERT-then-SELECT pairs per loop (default 300)
  --lag-seconds N   length of the lag-estimate phase (default 10)
  --heartbeat-ms N  heartbeat period on the primary during that phase (default 1: steady writes)
  --monitor K=V     a monitor.* setting for pgsplit (repeatable), e.g. --monitor lag_interval=10ms
  --out DIR         where report.md and results.json go (default bench/results/runs/write-then-read-<time>/)
`;

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { rounds: 5, iterations: 300, lagSeconds: 10, heartbeatMs: 1, out: undefined, monitor: {} };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === '--rounds') a.rounds = num(f, argv[++i]);
    else if (f === '--iterations') a.iterations = num(f, argv[++i]);
    else if (f === '--lag-seconds') a.lagSeconds = num(f, argv[++i]);
    else if (f === '--heartbeat-ms') a.heartbeatMs = num(f, argv[++i]);
    else if (f === '--out') a.out = argv[++i];
    else if (f === '--monitor') {
      const kv = argv[++i] ?? '';
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--monitor needs KEY=VALUE, got ${kv}`);
      a.monitor[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (f === '-h' || f === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${f}\n${USAGE}`);
  }
  return a;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

interface LoopResult {
  ms: number;
  reads: number;
  onReplica: number;
  missed: number;
}

/** INSERT a row then read it back, `iterations` times, on `c`. */
async function loop(c: pg.Client, table: string, tag: string, iterations: number): Promise<LoopResult> {
  const r: LoopResult = { ms: 0, reads: 0, onReplica: 0, missed: 0 };
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const val = `${tag}-${i}`;
    await c.query(`INSERT INTO ${table} (val) VALUES ($1)`, [val]);
    const row = (await c.query<{ n: number; r: boolean }>(`SELECT count(*)::int AS n, pg_is_in_recovery() AS r FROM ${table} WHERE val = $1`, [val])).rows[0]!;
    r.reads++;
    if (row.r) r.onReplica++;
    if (row.n !== 1) r.missed++;
  }
  r.ms = performance.now() - t0;
  return r;
}

async function connect(url: string, options?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, options });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Updates a heartbeat row every `periodMs` on the primary; remembers when each update was acknowledged. */
class Heartbeat {
  private readonly ackedAt = new Map<number, number>();
  private seq = 0;
  private running = true;
  private done: Promise<void> | undefined;
  constructor(private readonly c: pg.Client, private readonly periodMs: number) {}
  start(): void {
    this.done = (async () => {
      while (this.running) {
        const seq = this.seq + 1;
        await this.c.query('UPDATE wtr_heartbeat SET seq = $1 WHERE id = 1', [seq]);
        this.seq = seq;
        this.ackedAt.set(seq, performance.now());
        await sleep(this.periodMs);
      }
    })();
  }
  /** How long before `t0` the first heartbeat after `seen` was acknowledged; 0 if it was not yet. */
  stalenessAt(seen: number, t0: number): number {
    const missed = this.ackedAt.get(seen + 1);
    return missed !== undefined && missed <= t0 ? t0 - missed : 0;
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = args.out ?? path.join(root, 'bench', 'results', 'runs', `write-then-read-${stamp}`);
  const log = (m: string): void => void process.stderr.write(`${m}\n`);

  log('starting a primary and 2 replicas (synchronous_commit on)');
  const cluster = await LocalCluster.start({ replicas: 2, settings: { synchronous_commit: 'on' } });
  let proxy: ProxyServer | undefined;
  const clients: pg.Client[] = [];
  try {
    await cluster.primary.query('CREATE TABLE wtr (id bigserial PRIMARY KEY, val text NOT NULL)');
    await cluster.primary.query('CREATE INDEX ON wtr (val)');
    await cluster.primary.query('CREATE TABLE wtr_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL)');
    await cluster.primary.query('INSERT INTO wtr_heartbeat VALUES (1, 0)');
    await cluster.waitForReplication(15_000);
    const config = resolveConfig({
      listen: '127.0.0.1:0',
      primary: cluster.primary.url(),
      replicas: cluster.replicas.map((r) => r.url()),
      routing: { max_lag: '50ms' },
      monitor: args.monitor,
    });
    proxy = new ProxyServer(config, createLogger(process.env.PGSPLIT_LOG_LEVEL ?? 'error'));
    const { port } = await proxy.listen();
    const viaProxy = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const direct = await connect(cluster.primary.url());
    const tagged = await connect(viaProxy, '-c pgsplit.route=replica');
    const untagged = await connect(viaProxy);
    clients.push(direct, tagged, untagged);

    // 1. The loop, interleaved: direct, tagged, direct, tagged, ... (one warm-up pair first).
    await loop(direct, 'wtr', 'warm-d', 50);
    await loop(tagged, 'wtr', 'warm-t', 50);
    await loop(untagged, 'wtr', 'warm-u', 50);
    const directRuns: LoopResult[] = [];
    const taggedRuns: LoopResult[] = [];
    const untaggedRuns: LoopResult[] = [];
    for (let round = 0; round < args.rounds; round++) {
      directRuns.push(await loop(direct, 'wtr', `d${round}`, args.iterations));
      untaggedRuns.push(await loop(untagged, 'wtr', `u${round}`, args.iterations));
      taggedRuns.push(await loop(tagged, 'wtr', `t${round}`, args.iterations));
      log(`round ${round + 1}: direct ${directRuns.at(-1)!.ms.toFixed(0)} ms, untagged ${untaggedRuns.at(-1)!.ms.toFixed(0)} ms, tagged ${taggedRuns.at(-1)!.ms.toFixed(0)} ms, ` +
        `${taggedRuns.at(-1)!.onReplica}/${taggedRuns.at(-1)!.reads} on replicas, ${taggedRuns.at(-1)!.missed} missed`);
    }
    const directMs = quantile(directRuns.map((r) => r.ms), 0.5);
    const taggedMs = quantile(taggedRuns.map((r) => r.ms), 0.5);
    const untaggedMs = quantile(untaggedRuns.map((r) => r.ms), 0.5);
    const reads = taggedRuns.reduce((s, r) => s + r.reads, 0);
    const onReplica = taggedRuns.reduce((s, r) => s + r.onReplica, 0);
    const missed = taggedRuns.reduce((s, r) => s + r.missed, 0) + directRuns.reduce((s, r) => s + r.missed, 0);

    // 2. Lag estimate against a heartbeat, and tagged reads under max_lag 50 ms, under steady writes.
    const beatClient = await connect(cluster.primary.url());
    clients.push(beatClient);
    const beat = new Heartbeat(beatClient, args.heartbeatMs);
    const queriesBefore = proxy.monitor.queries;
    const lagStarted = performance.now();
    beat.start();
    await sleep(500);
    const errors = new Map<string, number[]>();
    const estimates = new Map<string, number[]>();
    const truths = new Map<string, number[]>();
    let stop = false;
    const probe = async (node: LocalNode, idx: number): Promise<void> => {
      const c = await connect(node.url());
      clients.push(c);
      const entry = proxy!.nodes.replicas[idx]!;
      const name = entry.endpoint.name;
      errors.set(name, []);
      estimates.set(name, []);
      truths.set(name, []);
      while (!stop) {
        const t0 = performance.now();
        const est = proxy!.monitor.lagMs(entry);
        const seq = Number((await c.query<{ seq: string }>('SELECT seq FROM wtr_heartbeat WHERE id = 1')).rows[0]!.seq);
        const truth = beat.stalenessAt(seq, t0);
        if (est !== null) {
          errors.get(name)!.push(Math.abs(est - truth));
          estimates.get(name)!.push(est);
        }
        truths.get(name)!.push(truth);
        await sleep(10);
      }
    };
    const taggedReads = { reads: 0, onReplica: 0 };
    const reader = (async () => {
      const c = await connect(viaProxy, '-c pgsplit.route=replica');
      clients.push(c);
      while (!stop) {
        const r = (await c.query<{ r: boolean }>('SELECT seq, pg_is_in_recovery() AS r FROM wtr_heartbeat WHERE id = 1')).rows[0]!;
        taggedReads.reads++;
        if (r.r) taggedReads.onReplica++;
        await sleep(10);
      }
    })();
    const probes = cluster.replicas.map((r, i) => probe(r, i));
    await sleep(args.lagSeconds * 1000);
    stop = true;
    await Promise.all([...probes, reader]);
    await beat.stop();
    const lagSeconds = (performance.now() - lagStarted) / 1000;
    const monitorQps = (proxy.monitor.queries - queriesBefore) / lagSeconds;

    const lagRows = [...errors].map(([name, e]) => ({
      replica: name,
      samples: e.length,
      errorP50: quantile(e, 0.5),
      errorP95: quantile(e, 0.95),
      estimateP50: quantile(estimates.get(name)!, 0.5),
      estimateP95: quantile(estimates.get(name)!, 0.95),
      truthP50: quantile(truths.get(name)!, 0.5),
      truthP95: quantile(truths.get(name)!, 0.95),
    }));
    const result = {
      date: new Date().toISOString(),
      args,
      monitor: config.monitor,
      loop: {
        iterations: args.iterations,
        rounds: args.rounds,
        directMs: directRuns.map((r) => r.ms),
        taggedMs: taggedRuns.map((r) => r.ms),
        untaggedMs: untaggedRuns.map((r) => r.ms),
        untaggedMedianMs: untaggedMs,
        directMedianMs: directMs,
        taggedMedianMs: taggedMs,
        ratio: taggedMs / directMs,
        taggedReads: reads,
        taggedOnReplica: onReplica,
        replicaShare: onReplica / reads,
        missedOwnWrite: missed,
      },
      lag: { heartbeatMs: args.heartbeatMs, replicas: lagRows, maxLag50: { ...taggedReads, replicaShare: taggedReads.onReplica / taggedReads.reads }, monitorQueriesPerSecond: monitorQps },
    };
    const f = (n: number, d = 1): string => n.toFixed(d);
    const md = [
      `# Write-then-read and lag estimate (${result.date})`,
      '',
      `Command: \`node dist/bench/write-then-read.js ${process.argv.slice(2).join(' ')}\``,
      `Monitor: ${JSON.stringify(config.monitor, (k, v: unknown) => (k === 'password' ? undefined : v))}`,
      '',
      `## Write-then-read loop (${args.iterations} INSERT + SELECT, ${args.rounds} interleaved rounds, medians)`,
      '',
      '| direct | untagged via pgsplit | tagged via pgsplit | tagged / direct | tagged reads on replicas | reads missing own write |',
      '|---:|---:|---:|---:|---:|---:|',
      `| ${f(directMs, 0)} ms | ${f(untaggedMs, 0)} ms | ${f(taggedMs, 0)} ms | ${f(taggedMs / directMs, 2)}× | ${onReplica}/${reads} (${f((100 * onReplica) / reads)} %) | ${missed} |`,
      '',
      `## Lag estimate under steady writes (heartbeat every ${args.heartbeatMs} ms, ${args.lagSeconds} s)`,
      '',
      '| replica | samples | error p50 | error p95 | estimate p50 / p95 | heartbeat p50 / p95 |',
      '|---|---:|---:|---:|---:|---:|',
      ...lagRows.map((r) => `| ${r.replica} | ${r.samples} | ${f(r.errorP50)} ms | ${f(r.errorP95)} ms | ${f(r.estimateP50)} / ${f(r.estimateP95)} ms | ${f(r.truthP50)} / ${f(r.truthP95)} ms |`),
      '',
      `Tagged reads with max_lag 50 ms: ${taggedReads.onReplica}/${taggedReads.reads} on replicas (${f((100 * taggedReads.onReplica) / taggedReads.reads)} %).`,
      `Monitor queries per second during this phase (all servers): ${f(monitorQps, 0)}.`,
      '',
    ].join('\n');
    await fsp.mkdir(outDir, { recursive: true });
    await fsp.writeFile(path.join(outDir, 'report.md'), md);
    await fsp.writeFile(path.join(outDir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${md}\nwritten to ${outDir}\n`);
  } finally {
    for (const c of clients) await c.end().catch(() => {});
    await proxy?.close().catch(() => {});
    await cluster.stop();
  }
}

process.on('SIGINT', () => {
  stopAllClustersSync();
  process.exit(130);
});
main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  stopAllClustersSync();
  process.exit(1);
});
