/**
 * What a tagged client feels of read-your-writes, and how close pgsplit's lag estimate is to the truth
 * (`npm run bench:write-then-read`, and a part of `npm run bench`). Starts a primary with two streaming
 * replicas (synchronous_commit on, as in production), pgsplit and the bare Node relay (node-relay.ts) in
 * this process, then:
 *
 * 1. Write-then-read loop: N iterations of INSERT a row, then SELECT it back (autocommit), on a direct
 *    connection to the primary, through the bare relay to the primary (the cost of the extra hop alone),
 *    on an untagged connection through pgsplit (everything on the primary: the proxy's own cost) and on a
 *    tagged one, in interleaved rounds. Reports the median time of each, the ratios tagged / direct and
 *    tagged / relay, the share of the tagged reads that ran on a replica (every read returns
 *    pg_is_in_recovery()), and reads that missed their own write (must be 0).
 * 2. Lag estimate under steady writes: a heartbeat row is updated on the primary every few ms; a probe
 *    reads it on each replica directly, and at the moment each read starts pgsplit's estimate for that
 *    replica is taken. The truth is how long before the read the first heartbeat it missed had been
 *    acknowledged (a lower bound, to within one heartbeat). Reports |estimate - truth| p50/p95 per replica,
 *    and the share of a tagged session's reads (routing.max_lag 50 ms) that ran on a replica.
 *
 * The relay runs in process like pgsplit here (pgsplit must: phase 2 reads its monitor), so both share
 * the event loop with the clients alike and tagged / relay is pgsplit's cost beyond the hop.
 */
import type net from 'node:net';
import pg from 'pg';
import { LocalCluster, type LocalNode } from '../src/cluster/local-cluster.js';
import { resolveConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/log/logger.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { startNodeRelay } from './node-relay.js';

export interface WriteThenReadOptions {
  /** Interleaved rounds of the loop (direct, relay, untagged, tagged). */
  rounds: number;
  /** INSERT-then-SELECT pairs per loop. */
  iterations: number;
  /** Length of the lag-estimate phase, seconds. */
  lagSeconds: number;
  /** Heartbeat period on the primary during that phase, ms. */
  heartbeatMs: number;
  /** monitor.* settings for pgsplit. */
  monitor: Record<string, string>;
}

export interface LagRow {
  replica: string;
  samples: number;
  errorP50: number;
  errorP95: number;
  estimateP50: number;
  estimateP95: number;
  truthP50: number;
  truthP95: number;
}

export interface WriteThenReadResult {
  date: string;
  args: WriteThenReadOptions;
  monitor: unknown;
  loop: {
    iterations: number;
    rounds: number;
    directMs: number[];
    relayMs: number[];
    untaggedMs: number[];
    taggedMs: number[];
    /** The machine's floor for reading one's write on a replica, without pgsplit (see loopOnReplica). */
    replicaDirectMs?: number[];
    directMedianMs: number;
    relayMedianMs: number;
    untaggedMedianMs: number;
    taggedMedianMs: number;
    replicaDirectMedianMs?: number;
    /** Reads of the replica-direct loop that did not see the row yet and were asked again, per INSERT (median round). */
    replicaDirectRetries?: number;
    /** tagged / direct. */
    ratio: number;
    /** tagged / relay: what pgsplit's tagged path costs beyond the hop itself. */
    ratioToRelay: number;
    /** tagged / replica-direct: what pgsplit adds to reading one's write on a replica at all. */
    ratioToReplicaDirect?: number;
    taggedReads: number;
    taggedOnReplica: number;
    replicaShare: number;
    /** Reads that missed their own write, on every connection (any is a fault). */
    missedOwnWrite: number;
  };
  lag: {
    heartbeatMs: number;
    replicas: LagRow[];
    maxLag50: { reads: number; onReplica: number; replicaShare: number };
    monitorQueriesPerSecond: number;
  };
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

/**
 * The floor of reading one's write on a replica on this machine, with no proxy: INSERT on a direct
 * connection to the primary, then SELECT it on a direct connection to a replica, asked again until the
 * row is there (the replica replays it a moment after the commit). A tagged pgsplit read cannot be faster
 * than this and still see its write on a replica; `retries` counts the reads that came too early.
 */
async function loopOnReplica(primary: pg.Client, replica: pg.Client, table: string, tag: string, iterations: number): Promise<LoopResult & { retries: number }> {
  const r = { ms: 0, reads: 0, onReplica: 0, missed: 0, retries: 0 };
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const val = `${tag}-${i}`;
    await primary.query(`INSERT INTO ${table} (val) VALUES ($1)`, [val]);
    for (;;) {
      const row = (await replica.query<{ n: number; r: boolean }>(`SELECT count(*)::int AS n, pg_is_in_recovery() AS r FROM ${table} WHERE val = $1`, [val])).rows[0]!;
      if (row.n === 1) {
        r.reads++;
        if (row.r) r.onReplica++;
        break;
      }
      r.retries++;
    }
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

/** Runs both phases on a cluster of its own (stopped before returning); `log` gets a line per round. */
export async function runWriteThenRead(opts: WriteThenReadOptions, log: (line: string) => void): Promise<WriteThenReadResult> {
  log('write-then-read: starting a primary and 2 replicas (synchronous_commit on)');
  const cluster = await LocalCluster.start({ replicas: 2, settings: { synchronous_commit: 'on' } });
  let proxy: ProxyServer | undefined;
  let relay: net.Server | undefined;
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
      monitor: opts.monitor,
    });
    proxy = new ProxyServer(config, createLogger(process.env.PGSPLIT_LOG_LEVEL ?? 'error'));
    const { port } = await proxy.listen();
    relay = await startNodeRelay(0, cluster.primary.port);
    const relayPort = (relay.address() as net.AddressInfo).port;
    const viaProxy = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const loops = [
      { name: 'direct', client: await connect(cluster.primary.url()), runs: [] as LoopResult[] },
      { name: 'relay', client: await connect(`postgres://postgres@127.0.0.1:${relayPort}/postgres`), runs: [] as LoopResult[] },
      { name: 'untagged', client: await connect(viaProxy), runs: [] as LoopResult[] },
      { name: 'tagged', client: await connect(viaProxy, '-c pgsplit.route=replica'), runs: [] as LoopResult[] },
    ] as const;
    clients.push(...loops.map((l) => l.client));
    const floor = { primary: await connect(cluster.primary.url()), replica: await connect(cluster.replicas[0]!.url()), runs: [] as Array<LoopResult & { retries: number }> };
    clients.push(floor.primary, floor.replica);

    // 1. The loop, interleaved: direct, relay, untagged, tagged, direct, ... (one warm-up loop each first).
    for (const l of loops) await loop(l.client, 'wtr', `warm-${l.name}`, 50);
    await loopOnReplica(floor.primary, floor.replica, 'wtr', 'warm-floor', 50);
    for (let round = 0; round < opts.rounds; round++) {
      for (const l of loops) l.runs.push(await loop(l.client, 'wtr', `${l.name}${round}`, opts.iterations));
      floor.runs.push(await loopOnReplica(floor.primary, floor.replica, 'wtr', `floor${round}`, opts.iterations));
      const t = loops[3].runs.at(-1)!;
      log(`write-then-read round ${round + 1}: ${loops.map((l) => `${l.name} ${l.runs.at(-1)!.ms.toFixed(0)} ms`).join(', ')}, ` +
        `replica-direct ${floor.runs.at(-1)!.ms.toFixed(0)} ms, ` +
        `${t.onReplica}/${t.reads} tagged reads on replicas, ${loops.reduce((s, l) => s + l.runs.at(-1)!.missed, 0)} missed`);
    }
    const [direct, viaRelay, untagged, tagged] = loops;
    const medianMs = (l: (typeof loops)[number]): number => quantile(l.runs.map((r) => r.ms), 0.5);
    const taggedMs = medianMs(tagged);
    const reads = tagged.runs.reduce((s, r) => s + r.reads, 0);
    const onReplica = tagged.runs.reduce((s, r) => s + r.onReplica, 0);
    const missed = loops.reduce((s, l) => s + l.runs.reduce((m, r) => m + r.missed, 0), 0);
    const floorMs = quantile(floor.runs.map((r) => r.ms), 0.5);
    const floorRetries = quantile(floor.runs.map((r) => r.retries / opts.iterations), 0.5);

    // 2. Lag estimate against a heartbeat, and tagged reads under max_lag 50 ms, under steady writes.
    const beatClient = await connect(cluster.primary.url());
    clients.push(beatClient);
    const beat = new Heartbeat(beatClient, opts.heartbeatMs);
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
    await sleep(opts.lagSeconds * 1000);
    stop = true;
    await Promise.all([...probes, reader]);
    await beat.stop();
    const lagSeconds = (performance.now() - lagStarted) / 1000;
    const monitorQps = (proxy.monitor.queries - queriesBefore) / lagSeconds;

    const lagRows: LagRow[] = [...errors].map(([name, e]) => ({
      replica: name,
      samples: e.length,
      errorP50: quantile(e, 0.5),
      errorP95: quantile(e, 0.95),
      estimateP50: quantile(estimates.get(name)!, 0.5),
      estimateP95: quantile(estimates.get(name)!, 0.95),
      truthP50: quantile(truths.get(name)!, 0.5),
      truthP95: quantile(truths.get(name)!, 0.95),
    }));
    return {
      date: new Date().toISOString(),
      args: opts,
      monitor: config.monitor,
      loop: {
        iterations: opts.iterations,
        rounds: opts.rounds,
        directMs: direct.runs.map((r) => r.ms),
        relayMs: viaRelay.runs.map((r) => r.ms),
        untaggedMs: untagged.runs.map((r) => r.ms),
        taggedMs: tagged.runs.map((r) => r.ms),
        replicaDirectMs: floor.runs.map((r) => r.ms),
        directMedianMs: medianMs(direct),
        relayMedianMs: medianMs(viaRelay),
        untaggedMedianMs: medianMs(untagged),
        taggedMedianMs: taggedMs,
        replicaDirectMedianMs: floorMs,
        replicaDirectRetries: floorRetries,
        ratio: taggedMs / medianMs(direct),
        ratioToRelay: taggedMs / medianMs(viaRelay),
        ratioToReplicaDirect: taggedMs / floorMs,
        taggedReads: reads,
        taggedOnReplica: onReplica,
        replicaShare: onReplica / reads,
        missedOwnWrite: missed,
      },
      lag: {
        heartbeatMs: opts.heartbeatMs,
        replicas: lagRows,
        maxLag50: { ...taggedReads, replicaShare: taggedReads.onReplica / taggedReads.reads },
        monitorQueriesPerSecond: monitorQps,
      },
    };
  } finally {
    for (const c of clients) await c.end().catch(() => {});
    await proxy?.close().catch(() => {});
    await new Promise((r) => (relay ? relay.close(r) : r(undefined)));
    await cluster.stop();
  }
}

/** The Markdown of a result; `command` is shown as the command line that produced it. */
export function writeThenReadMarkdown(result: WriteThenReadResult, command: string): string {
  return [
    `# Write-then-read and lag estimate (${result.date})`,
    '',
    `Command: \`${command}\``,
    `Monitor: ${JSON.stringify(result.monitor, (k, v: unknown) => (k === 'password' ? undefined : v))}`,
    '',
    ...writeThenReadSections(result),
  ].join('\n');
}

/** The loop's and the lag estimate's sections (level-2 headings), as Markdown lines; also in npm run bench's report. */
export function writeThenReadSections(result: WriteThenReadResult): string[] {
  const f = (n: number, d = 1): string => n.toFixed(d);
  const l = result.loop;
  const lag = result.lag;
  return [
    `## Write-then-read loop (${l.iterations} INSERT + SELECT, ${l.rounds} interleaved rounds, medians)`,
    '',
    'The bare Node relay (bench/node-relay.ts) only forwards bytes to the primary: relay / direct is what the extra hop ' +
      'costs by itself, tagged / relay what pgsplit adds beyond it. Replica-direct is the floor of reading one\'s write on a ' +
      'replica here, without pgsplit: INSERT on the primary, then SELECT on a replica directly, asked again until the row is there. ' +
      'The relay and pgsplit run inside the benchmark\'s own process, beside the clients: on a machine with few cores that is the ' +
      'kinder setting for both (as processes of their own they each add a wake-up per hop).',
    '',
    '| direct | bare relay | untagged via pgsplit | tagged via pgsplit | replica-direct | relay / direct | replica-direct / direct | tagged / direct | tagged / relay | tagged / replica-direct | tagged reads on replicas | reads missing own write |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${f(l.directMedianMs, 0)} ms | ${f(l.relayMedianMs, 0)} ms | ${f(l.untaggedMedianMs, 0)} ms | ${f(l.taggedMedianMs, 0)} ms | ` +
      `${l.replicaDirectMedianMs === undefined ? 'n/a' : `${f(l.replicaDirectMedianMs, 0)} ms`} | ` +
      `${f(l.relayMedianMs / l.directMedianMs, 2)}× | ${l.replicaDirectMedianMs === undefined ? 'n/a' : `${f(l.replicaDirectMedianMs / l.directMedianMs, 2)}×`} | ${f(l.ratio, 2)}× | ${f(l.ratioToRelay, 2)}× | ` +
      `${l.ratioToReplicaDirect === undefined ? 'n/a' : `${f(l.ratioToReplicaDirect, 2)}×`} | ` +
      `${l.taggedOnReplica}/${l.taggedReads} (${f(100 * l.replicaShare)} %) | ${l.missedOwnWrite} |`,
    ...(l.replicaDirectRetries === undefined ? [] : ['', `Replica-direct asked again ${f(l.replicaDirectRetries, 2)} times per INSERT before the row was there (median round).`]),
    '',
    `## Lag estimate under steady writes (heartbeat every ${lag.heartbeatMs} ms, ${result.args.lagSeconds} s)`,
    '',
    '| replica | samples | error p50 | error p95 | estimate p50 / p95 | heartbeat p50 / p95 |',
    '|---|---:|---:|---:|---:|---:|',
    ...lag.replicas.map((r) => `| ${r.replica} | ${r.samples} | ${f(r.errorP50)} ms | ${f(r.errorP95)} ms | ${f(r.estimateP50)} / ${f(r.estimateP95)} ms | ${f(r.truthP50)} / ${f(r.truthP95)} ms |`),
    '',
    `Tagged reads with max_lag 50 ms: ${lag.maxLag50.onReplica}/${lag.maxLag50.reads} on replicas (${f(100 * lag.maxLag50.replicaShare)} %).`,
    `Monitor queries per second during this phase (all servers): ${f(lag.monitorQueriesPerSecond, 0)}.`,
    '',
  ];
}
