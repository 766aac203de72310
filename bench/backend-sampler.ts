/**
 * How many backends a proxy holds on each server, sampled while a benchmark runs: what a connection pool
 * is meant to bound. One connection of its own to each server (application_name `pgsplit-bench-sampler`)
 * reads pg_stat_activity every `intervalMs`.
 *
 * Which backends are the proxy's: client backends connected over TCP, other than the sampler itself.
 * While a case runs, the proxy is the only TCP client of the servers (pgbench connects to the proxy; the
 * replicas' WAL streams are walsenders, another backend_type), so this counts exactly the proxy's server
 * connections whatever application_name it gives them (pgsplit passes the client's on, PgBouncer
 * too, a pool may set its own). pgsplit's replica monitor (`pgsplit-monitor`) is counted apart: it is
 * not a session's connection, and stays at one or two per node whatever the load.
 */
import pg from 'pg';
import type { LocalNode } from '../src/cluster/local-cluster.js';

export const SAMPLER_APPLICATION_NAME = 'pgsplit-bench-sampler';
const MONITOR_APPLICATION_NAME = 'pgsplit-monitor';

const COUNT_SQL = `SELECT count(*) FILTER (WHERE application_name IS DISTINCT FROM '${MONITOR_APPLICATION_NAME}')::int AS sessions,
       count(*) FILTER (WHERE application_name = '${MONITOR_APPLICATION_NAME}')::int AS monitor
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND client_addr IS NOT NULL AND pid <> pg_backend_pid()`;

/** Backends of the proxy on one server at one moment. */
export interface BackendCount {
  /** Session connections (everything but the monitor). */
  sessions: number;
  /** pgsplit's replica-monitor connections. */
  monitor: number;
}

/** The largest counts seen on one server while sampling, and how many samples were taken. */
export interface BackendPeak extends BackendCount {
  node: string;
  samples: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class BackendSampler {
  readonly #clients: Array<{ node: string; client: pg.Client }>;
  #peaks: BackendPeak[] = [];
  #running: Promise<void> | null = null;
  #stop = false;
  #extra: (() => void) | undefined;

  private constructor(clients: Array<{ node: string; client: pg.Client }>) {
    this.#clients = clients;
  }

  /** Connects to every node (directly, not through the proxy). */
  static async connect(nodes: readonly LocalNode[]): Promise<BackendSampler> {
    const clients: Array<{ node: string; client: pg.Client }> = [];
    for (const n of nodes) {
      const client = new pg.Client({ host: n.host, port: n.port, user: n.superuser, database: 'postgres', application_name: SAMPLER_APPLICATION_NAME });
      client.on('error', () => {});
      await client.connect();
      clients.push({ node: n.name, client });
    }
    return new BackendSampler(clients);
  }

  /** The counts on every node now. */
  async countNow(): Promise<Array<BackendCount & { node: string }>> {
    return Promise.all(this.#clients.map(async ({ node, client }) => {
      const row = (await client.query<BackendCount>(COUNT_SQL)).rows[0];
      return { node, sessions: row?.sessions ?? 0, monitor: row?.monitor ?? 0 };
    }));
  }

  /**
   * Waits until every node holds at most `sessions` session backends of the proxy (the ones an earlier
   * case left are closing), or `timeoutMs` passed; returns the last counts.
   */
  async settle(sessions: number, timeoutMs: number): Promise<Array<BackendCount & { node: string }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = await this.countNow();
      if (now.every((c) => c.sessions <= sessions) || Date.now() > deadline) return now;
      await sleep(200);
    }
  }

  /** Starts sampling every `intervalMs`; `alsoEach` runs at every sample (e.g. reading the proxy's memory). */
  start(intervalMs: number, alsoEach?: () => void): void {
    if (this.#running) throw new Error('BackendSampler: already sampling');
    this.#stop = false;
    this.#extra = alsoEach;
    this.#peaks = this.#clients.map(({ node }) => ({ node, sessions: 0, monitor: 0, samples: 0 }));
    this.#running = (async () => {
      while (!this.#stop) {
        const started = Date.now();
        this.#extra?.();
        const counts = await this.countNow().catch(() => null);
        if (counts) {
          for (const [i, c] of counts.entries()) {
            const p = this.#peaks[i];
            if (p === undefined) continue;
            p.sessions = Math.max(p.sessions, c.sessions);
            p.monitor = Math.max(p.monitor, c.monitor);
            p.samples++;
          }
        }
        await sleep(Math.max(0, intervalMs - (Date.now() - started)));
      }
    })();
  }

  /** Stops sampling; returns the peaks per node since start(). */
  async stop(): Promise<BackendPeak[]> {
    this.#stop = true;
    await this.#running;
    this.#running = null;
    return this.#peaks;
  }

  async close(): Promise<void> {
    if (this.#running) await this.stop();
    await Promise.all(this.#clients.map(({ client }) => client.end().catch(() => undefined)));
  }
}
