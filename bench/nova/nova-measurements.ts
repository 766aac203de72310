/**
 * How the Nova benchmark measures the servers around a phase: their own statistics (sampleLoad,
 * loadDelta, quiesce) and staleness (a heartbeat written on the primary, probes that read it, pgsplit's
 * lag estimates). The phases and the report are in nova-bench.ts and nova-report.ts.
 */
import pg from 'pg';
import type { LocalCluster, LocalNode } from '../../src/cluster/local-cluster.js';
import { NOVA_TABLES } from '../../src/demo/nova-schema.js';
import type { ProxyServer } from '../../src/proxy/proxy-server.js';
import type { Distribution, ProbeReport, ServerLoad } from './nova-report.js';

/** How often the heartbeat row is updated on the primary: the resolution of the staleness measurement. */
export const HEARTBEAT_INTERVAL_MS = 25;
/** How often the staleness probes read the heartbeat and pgsplit's lag estimates are sampled. */
export const STALENESS_SAMPLE_MS = 100;
/** The heartbeat's table, in the `postgres` database. */
export const HEARTBEAT_TABLE = 'pgsplit_bench_heartbeat';

// ---------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


export function distribution(values: readonly (number | null)[]): Distribution {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const at = (q: number): number | null => (known.length === 0 ? null : (known[Math.min(known.length - 1, Math.ceil(q * known.length) - 1)] ?? null));
  return {
    samples: values.length,
    unknown: values.length - known.length,
    mean: known.length === 0 ? null : known.reduce((a, b) => a + b, 0) / known.length,
    p50: at(0.5),
    p95: at(0.95),
    max: known.length === 0 ? null : (known[known.length - 1] ?? null),
  };
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A client straight to a cluster node (not through pgsplit), as the superuser. */
export async function directClient(node: LocalNode, database: string, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: node.host,
    port: node.port,
    user: node.superuser,
    database,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function urlClient(url: string, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  return client;
}

// ---------------------------------------------------------------------------------------------------
// Statistics of the servers
// ---------------------------------------------------------------------------------------------------

interface RawLoad {
  seq_tup_read: string;
  idx_tup_fetch: string;
  seq_scan: string;
  idx_scan: string;
  n_tup_ins: string;
  n_tup_upd: string;
}

interface RawDb {
  tup_returned: string;
  tup_fetched: string;
  xact_commit: string;
  xact_rollback: string;
}

/** One node's counters now: the `nova` database's row of pg_stat_database, then its Nova tables. */
export async function sampleLoad(node: LocalNode): Promise<ServerLoad> {
  const [db] = await node.query<RawDb>(
    "SELECT tup_returned, tup_fetched, xact_commit, xact_rollback FROM pg_stat_database WHERE datname = 'nova'",
  );
  const [tables] = await node.query<RawLoad>(
    `SELECT coalesce(sum(seq_tup_read), 0) AS seq_tup_read, coalesce(sum(idx_tup_fetch), 0) AS idx_tup_fetch,
            coalesce(sum(seq_scan), 0) AS seq_scan, coalesce(sum(idx_scan), 0) AS idx_scan,
            coalesce(sum(n_tup_ins), 0) AS n_tup_ins, coalesce(sum(n_tup_upd), 0) AS n_tup_upd
       FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = ANY($1::text[])`,
    [[...NOVA_TABLES]],
    'nova',
  );
  const n = (v: string | undefined): number => Number(v ?? 0);
  const seqTupRead = n(tables?.seq_tup_read);
  const idxTupFetch = n(tables?.idx_tup_fetch);
  return {
    seqTupRead,
    idxTupFetch,
    tuplesRead: seqTupRead + idxTupFetch,
    seqScan: n(tables?.seq_scan),
    idxScan: n(tables?.idx_scan),
    nTupIns: n(tables?.n_tup_ins),
    nTupUpd: n(tables?.n_tup_upd),
    tupReturned: n(db?.tup_returned),
    tupFetched: n(db?.tup_fetched),
    xactCommit: n(db?.xact_commit),
    xactRollback: n(db?.xact_rollback),
  };
}

export function loadDelta(before: ServerLoad, after: ServerLoad): ServerLoad {
  const out = { ...after };
  for (const k of Object.keys(out) as (keyof ServerLoad)[]) out[k] = after[k] - before[k];
  return out;
}

/**
 * Waits until no client backend uses the `nova` database on any node, then a little more: a backend
 * flushes its statistics when it exits, just after leaving pg_stat_activity (and an idle one only about
 * once a second), so counters read earlier could miss the end of a phase.
 */
export async function quiesce(cluster: LocalCluster, closeIdle: () => void = () => {}): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (const node of cluster.nodes) {
    for (;;) {
      // pgsplit's pools keep the connections its clients gave back: closed here, as they come back.
      closeIdle();
      const [row] = await node.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'nova' AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
      );
      if (Number(row?.n ?? 0) === 0) break;
      if (Date.now() > deadline) throw new Error(`${node.name}: sessions on the nova database did not end within 15 s`);
      await sleep(50);
    }
  }
  await sleep(1200);
}

// ---------------------------------------------------------------------------------------------------
// Staleness: heartbeat writer, probes, pgsplit's lag estimates
// ---------------------------------------------------------------------------------------------------

/** Updates the heartbeat row on the primary every {@link HEARTBEAT_INTERVAL_MS} and remembers when each write was acknowledged. */
export class Heartbeat {
  readonly errors: string[] = [];
  /** Sequence number -> local time (performance.now()) its write was acknowledged. */
  readonly #ackedAt = new Map<number, number>();
  #seq = 0;
  #running = true;
  #loop: Promise<void> | undefined;
  #client: pg.Client | undefined;

  async start(primary: LocalNode): Promise<void> {
    this.#client = await directClient(primary, 'postgres', 'nova-bench-heartbeat');
    const client = this.#client;
    this.#loop = (async () => {
      while (this.#running) {
        const seq = this.#seq + 1;
        try {
          await client.query(`UPDATE ${HEARTBEAT_TABLE} SET seq = $1, written_at = clock_timestamp() WHERE id = 1`, [seq]);
          this.#seq = seq;
          const now = performance.now();
          this.#ackedAt.set(seq, now);
          // Keep about a minute: probes never see anything older without failing anyway.
          this.#ackedAt.delete(seq - 2400);
        } catch (err) {
          this.errors.push(`heartbeat: ${errorText(err)}`);
          if (this.errors.length > 20) return;
        }
        await sleep(HEARTBEAT_INTERVAL_MS);
      }
    })();
  }

  /**
   * Staleness of a read that started at local time `t0` and saw heartbeat `seen`: how long before `t0`
   * the first write it missed (seen + 1) had been acknowledged; 0 if none had been. A lower bound.
   */
  stalenessAt(seen: number, t0: number): number {
    const missed = this.#ackedAt.get(seen + 1);
    return missed !== undefined && missed <= t0 ? t0 - missed : 0;
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}

/** Reads the heartbeat over one session every {@link STALENESS_SAMPLE_MS}, noting where it ran and how stale it was. */
export class StalenessProbe {
  readonly samples: number[] = [];
  onReplica = 0;
  onPrimary = 0;
  readonly errors: string[] = [];
  #running = true;
  #loop: Promise<void> | undefined;

  constructor(
    readonly label: string,
    private readonly client: pg.Client,
    private readonly heartbeat: Heartbeat,
  ) {}

  start(): void {
    this.#loop = (async () => {
      while (this.#running) {
        const t0 = performance.now();
        try {
          const { rows } = await this.client.query<{ seq: string; in_recovery: boolean }>(
            `SELECT seq, pg_is_in_recovery() AS in_recovery FROM ${HEARTBEAT_TABLE} WHERE id = 1`,
          );
          const row = rows[0];
          if (!row) throw new Error('no heartbeat row');
          if (row.in_recovery) this.onReplica++;
          else this.onPrimary++;
          this.samples.push(this.heartbeat.stalenessAt(Number(row.seq), t0));
        } catch (err) {
          this.errors.push(`${this.label}: ${errorText(err)}`);
          if (this.errors.length > 20) return;
        }
        await sleep(STALENESS_SAMPLE_MS);
      }
    })();
  }

  async stop(): Promise<ProbeReport> {
    this.#running = false;
    await this.#loop;
    await this.client.end().catch(() => {});
    return {
      reads: this.onReplica + this.onPrimary,
      onReplica: this.onReplica,
      onPrimary: this.onPrimary,
      staleReads: this.samples.filter((s) => s > 0).length,
      staleness: distribution(this.samples),
    };
  }
}

/** Samples pgsplit's lag estimate of each replica every {@link STALENESS_SAMPLE_MS}. */
export function sampleMonitorLag(proxy: ProxyServer): { stop(): Record<string, Distribution> } {
  const samples = new Map<string, (number | null)[]>(proxy.nodes.replicas.map((r) => [r.endpoint.name, []]));
  const timer = setInterval(() => {
    for (const r of proxy.nodes.replicas) samples.get(r.endpoint.name)?.push(proxy.monitor.lagMs(r));
  }, STALENESS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      return Object.fromEntries([...samples].map(([name, values]) => [name, distribution(values)]));
    },
  };
}
