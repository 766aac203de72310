/**
 * A workload shaped like OpenStack Nova's database traffic, the case pgsplit was built for.
 *
 * Every compute host runs periodic tasks that read a lot and can live with data a moment old
 * (resource tracking, bandwidth and volume polling, the usage audit); those sessions are TAGGED, so
 * their reads go to replicas while their writes still reach the primary. API requests (create, show,
 * list, delete) must see their own writes at once, so API sessions stay untagged and everything they
 * send goes to the primary. One read of the compute side gates a one-shot action (has this audit
 * period been done already?) and therefore carries the per-statement hint `/* pgsplit:route=primary *\/`.
 *
 * Sessions reach the proxy the way an oslo.db deployment does: two URLs, `connection` (untagged: API,
 * setup) and `slave_connection` (the same proxy, tagged in the URL with
 * `?options=-c%20pgsplit.route%3Dreplica`, which node-postgres sends as the `options` startup parameter).
 * A plain host and port with the tag passed as `options` works too (the demo uses that).
 *
 * And they speak the way oslo.db does ({@link NovaClientMode}, default `oslo`): oslo.db's enginefacade runs
 * on SQLAlchemy over psycopg, autocommit off, so every unit of work is a transaction opened with a plain
 * `BEGIN`. A reader context (`use_slave=True` in Nova: the `slave_connection` engine) sends `BEGIN`, its
 * reads, then `ROLLBACK` (the session is closed without a commit and the pool resets the connection); a
 * writer context (the `connection` engine) sends `BEGIN`, its statements, `COMMIT`. So in `oslo` mode each
 * compute host has two sessions, a reader through `slave_connection` and a writer through `connection`,
 * as Nova's two engines; the API sessions run each request as writer and reader transactions through
 * `connection`. The `autocommit` mode is the older client: every statement on its own, the compute
 * hosts' writes through their tagged session.
 *
 * Every read also reports where it ran (`pg_is_in_recovery()`, see {@link locateRead}), so the counters
 * say which reads a replica served, measured rather than inferred from the routing rules: an API read or
 * a hinted read that reached a replica shows up in `primaryReadsOnReplica`.
 *
 * The class is meant to be reused: the demo runs it for a few seconds, the Nova benchmark
 * (bench/nova/nova-bench.ts) runs it untagged and tagged, in each client mode. It knows nothing about clusters or the
 * proxy beyond where to connect; schema creation, host count, task intervals and counters are all
 * parameters or public state.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { NOVA_SCHEMA } from './nova-schema.js';

/** The periodic tasks of a compute host, named as in nova/compute/manager.py. */
export const COMPUTE_TASKS = ['update_available_resource', '_poll_bandwidth_usage', '_instance_usage_audit', '_poll_volume_usage'] as const;
/** How the sessions send their statements: as oslo.db (BEGIN ... COMMIT/ROLLBACK) or one autocommit statement at a time. */
export const NOVA_CLIENT_MODES = ['oslo', 'autocommit'] as const;
export type NovaClientMode = (typeof NOVA_CLIENT_MODES)[number];

/** The request kinds of an API session. */
export const API_REQUESTS = ['api_create_instance', 'api_show_instance', 'api_list_instances', 'api_delete_instance'] as const;

export type ComputeTaskName = (typeof COMPUTE_TASKS)[number];
export type ApiRequestName = (typeof API_REQUESTS)[number];
export type NovaTaskName = ComputeTaskName | ApiRequestName;

/** Milliseconds between runs of each periodic task on one host, and between requests of one API session. */
export interface NovaIntervals {
  update_available_resource: number;
  _poll_bandwidth_usage: number;
  _instance_usage_audit: number;
  _poll_volume_usage: number;
  /** Pause between two requests of one API session. */
  api_request: number;
}

/**
 * Nova runs these every 60 s to 10 min; the demo compresses time so a few seconds show every task
 * several times without loading a 2-core machine.
 */
export const DEFAULT_NOVA_INTERVALS: Readonly<NovaIntervals> = Object.freeze({
  update_available_resource: 500,
  _poll_bandwidth_usage: 1000,
  _instance_usage_audit: 1000,
  _poll_volume_usage: 1000,
  api_request: 150,
});

/**
 * Where the sessions connect: either `connection` (URLs, as oslo.db's `[database]` section) or `host` and
 * `port`. Exactly one of the two must be given.
 */
export interface NovaWorkloadOptions {
  /**
   * oslo.db `connection`: URL of the untagged sessions (API requests, setup, and the compute hosts when
   * tagComputeSessions is false), e.g. `postgresql://nova@127.0.0.1:6432/nova`. User, password and
   * database then come from the URL; the `user`, `password` and `database` options are ignored.
   */
  connection?: string;
  /**
   * oslo.db `slave_connection`: URL of the tagged compute sessions, normally the same proxy tagged in the
   * URL: `postgresql://nova@127.0.0.1:6432/nova?options=-c%20pgsplit.route%3Dreplica`. Default:
   * `connection` with `taggedOptions` as startup options.
   */
  slaveConnection?: string;
  /** Where the sessions connect when no `connection` is given: normally the pgsplit listener. */
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  /** Simulated compute hosts, one tagged session each (default 4). */
  computeHosts?: number;
  /** Untagged API sessions (default 2). */
  apiSessions?: number;
  /** Instances seeded on each compute host by {@link NovaWorkload.setup} (default 8). */
  instancesPerHost?: number;
  /** Overrides of {@link DEFAULT_NOVA_INTERVALS}. */
  intervals?: Partial<NovaIntervals>;
  /**
   * Length of one `_instance_usage_audit` period in ms (Nova: an hour or a month; default 2000); also the
   * bandwidth accounting period of `_poll_bandwidth_usage` (`start_period`).
   */
  auditPeriodMs?: number;
  /**
   * Startup options that tag the compute sessions (default `-c pgsplit.route=replica`); not used when
   * `slaveConnection` is given (its URL carries the tag).
   */
  taggedOptions?: string;
  /**
   * Tag the compute sessions (default true). False runs them untagged, as a baseline where everything
   * goes to the primary; their reads then count as primaryReads.
   */
  tagComputeSessions?: boolean;
  /**
   * `oslo` (default): reader transactions (`BEGIN`, reads, `ROLLBACK`) through slave_connection and writer
   * transactions (`BEGIN`, writes, `COMMIT`) through connection, as oslo.db's enginefacade sends them;
   * `autocommit`: every statement on its own, compute writes through the compute host's tagged session.
   */
  clientMode?: NovaClientMode;
  /** Default 10000. */
  connectTimeoutMs?: number;
  /**
   * Chance per bandwidth poll and instance that the simulated hypervisor counters restart from zero (a
   * rebooted guest), which `_poll_bandwidth_usage` must treat as a rollover (default 0.02).
   */
  counterResetProbability?: number;
  /** Source of randomness in [0, 1), for reproducible runs (default Math.random). */
  random?: () => number;
}

/** What happened in one task (or one API request kind). */
export interface TaskCounters {
  /** Times the task ran (or requests of this kind were made). */
  runs: number;
  /** Statements sent. */
  statements: number;
  /** Reads in a tagged session without a hint: the proxy may serve them from a replica (0 when tagComputeSessions is false). */
  replicaReads: number;
  /** Reads that must see the primary: hinted ones in tagged sessions, and every read of an untagged session. */
  primaryReads: number;
  writes: number;
  /** Transactions opened with `BEGIN` (oslo mode; 0 in autocommit mode). */
  transactions: number;
  /** Of those, reader transactions in which a read ran on a replica (their BEGIN/ROLLBACK may have gone there too). */
  replicaTransactions: number;
  /** Reads that ran on a replica, as the server itself answered (pg_is_in_recovery()): measured, not intended. */
  readsOnReplica: number;
  /** Reads that ran on the primary (pg_is_in_recovery() false). */
  readsOnPrimary: number;
  /**
   * Reads that had to see the primary (API reads, hinted reads, any read of an untagged session) but ran
   * on a replica: must stay 0. Counted, not thrown, so that a run shows how many there were.
   */
  primaryReadsOnReplica: number;
  /** Statements that failed, plus checks that failed (see readYourWritesMisses). */
  errors: number;
  /** Wall time of all runs, and of the slowest one, in ms. */
  totalMs: number;
  maxMs: number;
  lastError?: string;
}

export interface NovaWorkloadStats {
  tasks: Record<NovaTaskName, TaskCounters>;
  /** An API session did not see its own write on the next statement (must stay 0: API sessions use the primary). */
  readYourWritesMisses: number;
  /** `_instance_usage_audit` found its period already logged only when inserting (must stay 0 thanks to the hint). */
  duplicateAudits: number;
  /** Bandwidth counters found below their last value (a reset or wrap), handled as Nova does. */
  bandwidthRollovers: number;
  /** ms the workload has been running (until stop). */
  elapsedMs: number;
}

/** Sums of counters over a group of tasks. */
export type CounterTotals = Pick<
  TaskCounters,
  | 'runs' | 'statements' | 'replicaReads' | 'primaryReads' | 'writes' | 'transactions' | 'replicaTransactions' | 'readsOnReplica' | 'readsOnPrimary'
  | 'primaryReadsOnReplica' | 'errors'
>;

type StatementKind = 'replica-read' | 'primary-read' | 'write';

/** The per-statement hint that keeps one read of a tagged session on the primary. */
export const PRIMARY_HINT = '/* pgsplit:route=primary */';

export { NOVA_SCHEMA, NOVA_TABLES } from './nova-schema.js';

/** Migration states Nova treats as finished (migration_get_in_progress_by_host_and_node). */
const FINISHED_MIGRATION_STATES = ['confirmed', 'reverted', 'error', 'failed', 'completed', 'cancelled', 'done'];

function emptyCounters(): TaskCounters {
  return {
    runs: 0, statements: 0, replicaReads: 0, primaryReads: 0, writes: 0, transactions: 0, replicaTransactions: 0, readsOnReplica: 0,
    readsOnPrimary: 0, primaryReadsOnReplica: 0, errors: 0, totalMs: 0, maxMs: 0,
  };
}

/** Sums the counters of the given tasks (default: all). */
export function sumCounters(stats: NovaWorkloadStats, tasks: readonly NovaTaskName[] = [...COMPUTE_TASKS, ...API_REQUESTS]): CounterTotals {
  const out: CounterTotals = {
    runs: 0, statements: 0, replicaReads: 0, primaryReads: 0, writes: 0, transactions: 0, replicaTransactions: 0, readsOnReplica: 0,
    readsOnPrimary: 0, primaryReadsOnReplica: 0, errors: 0,
  };
  for (const name of tasks) {
    const c = stats.tasks[name];
    out.runs += c.runs;
    out.statements += c.statements;
    out.replicaReads += c.replicaReads;
    out.primaryReads += c.primaryReads;
    out.writes += c.writes;
    out.transactions += c.transactions;
    out.replicaTransactions += c.replicaTransactions;
    out.readsOnReplica += c.readsOnReplica;
    out.readsOnPrimary += c.readsOnPrimary;
    out.primaryReadsOnReplica += c.primaryReadsOnReplica;
    out.errors += c.errors;
  }
  return out;
}

/** A sleep that {@link Sleeper.wake} ends early; used so stop() does not wait for the next due time. */
class Sleeper {
  #timer: NodeJS.Timeout | undefined;
  #resolve: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#resolve = resolve;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#resolve = undefined;
        resolve();
      }, Math.max(0, ms));
    });
  }

  wake(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const r = this.#resolve;
    this.#resolve = undefined;
    r?.();
  }
}

/** One simulated compute host. */
interface ComputeHost {
  name: string;
  node: string;
  /** The session of the periodic tasks (tagged through slave_connection unless untagged as a baseline). */
  client?: pg.Client;
  /** oslo mode: the writer session through `connection` (Nova's main engine); autocommit mode: none, writes use `client`. */
  writer?: pg.Client;
  /** The hypervisor's interface counters per instance uuid (bytes in/out since the guest booted). */
  counters: Map<string, { in: number; out: number }>;
}

/** The options after defaults; the target is either the URLs or host and port. */
export type ResolvedNovaWorkloadOptions = Readonly<
  Required<Omit<NovaWorkloadOptions, 'password' | 'intervals' | 'connection' | 'slaveConnection' | 'host' | 'port'>>
> & {
  readonly password?: string;
  readonly connection?: string;
  readonly slaveConnection?: string;
  readonly host?: string;
  readonly port?: number;
};

/** The columns {@link locateRead} adds to a read's result. */
interface LocatedRow {
  pgsplit_in_recovery: boolean;
  pgsplit_row: boolean | null;
  [column: string]: unknown;
}

const LOCATION_COLUMNS = new Set(['pgsplit_in_recovery', 'pgsplit_row']);
/** A comment at the start of a statement: pgsplit's hint, kept in front of the wrapper. */
const LEADING_COMMENT = /^\s*(\/\*[\s\S]*?\*\/)\s*/;

/**
 * Wraps a read so that it also says where it ran: one column `pgsplit_in_recovery` (true on a replica),
 * and exactly one row even when the read finds nothing (`pgsplit_row` is null then), because the reads
 * that matter most (has this audit period been logged? is the deleted instance gone?) usually return
 * none. A leading hint comment stays in front. The wrapper only reads, so pgsplit routes it exactly as it
 * routes the read inside.
 */
export function locateRead(sql: string): string {
  const m = LEADING_COMMENT.exec(sql);
  const hint = m ? `${m[1] ?? ''} ` : '';
  const body = m ? sql.slice(m[0].length) : sql;
  return (
    `${hint}SELECT w.pgsplit_in_recovery, q.* FROM (SELECT pg_is_in_recovery() AS pgsplit_in_recovery) w ` +
    `LEFT JOIN LATERAL (SELECT true AS pgsplit_row, r.* FROM (${body}) r) q ON true`
  );
}

/** 2^32: hypervisors report interface counters that wrap like 32-bit counters. */
const COUNTER_WRAP = 2 ** 32;

/** Error raised for a failed workload check (not a SQL error). */
class CheckFailed extends Error {}

/**
 * The Nova-like workload. Typical use:
 *
 * ```ts
 * const w = new NovaWorkload({
 *   connection: 'postgresql://nova@127.0.0.1:6432/nova',
 *   slaveConnection: 'postgresql://nova@127.0.0.1:6432/nova?options=-c%20pgsplit.route%3Dreplica',
 * });                         // or { host: '127.0.0.1', port: 6432 }: the tag then goes in as options
 * await w.setup();            // schema + seed, through an untagged session (so on the primary)
 * await w.start();            // opens the sessions and starts the periodic tasks and API requests
 * ...
 * await w.stop();             // waits for running tasks, closes the sessions
 * const stats = w.snapshot();
 * ```
 */
export class NovaWorkload {
  readonly options: ResolvedNovaWorkloadOptions;
  readonly intervals: Readonly<NovaIntervals>;
  readonly hosts: readonly ComputeHost[];

  readonly #counters: Record<NovaTaskName, TaskCounters>;
  readonly #sleepers: Sleeper[] = [];
  readonly #loops: Promise<void>[] = [];
  readonly #clients: pg.Client[] = [];
  /** The transaction a session has open (oslo mode), with how many of its reads ran on a replica so far. */
  readonly #openTx = new WeakMap<pg.Client, { readsOnReplica: number }>();
  /** Instance uuids known to exist (seeded or created by an API session), for show requests. */
  readonly #knownInstances: string[] = [];
  #readYourWritesMisses = 0;
  #duplicateAudits = 0;
  #bandwidthRollovers = 0;
  #startedAt = 0;
  #stoppedAt = 0;
  #state: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  #stopping: Promise<void> | undefined;

  constructor(opts: NovaWorkloadOptions) {
    if ((opts.connection === undefined) === (opts.host === undefined || opts.port === undefined)) {
      throw new Error('NovaWorkload: give either connection (a URL, optionally with slaveConnection) or host and port');
    }
    if (opts.slaveConnection !== undefined && opts.connection === undefined) {
      throw new Error('NovaWorkload: slaveConnection needs connection too (the API sessions use it)');
    }
    const options = {
      ...(opts.connection !== undefined ? { connection: opts.connection } : {}),
      ...(opts.slaveConnection !== undefined ? { slaveConnection: opts.slaveConnection } : {}),
      ...(opts.host !== undefined ? { host: opts.host } : {}),
      ...(opts.port !== undefined ? { port: opts.port } : {}),
      user: opts.user ?? 'postgres',
      database: opts.database ?? 'postgres',
      computeHosts: opts.computeHosts ?? 4,
      apiSessions: opts.apiSessions ?? 2,
      instancesPerHost: opts.instancesPerHost ?? 8,
      auditPeriodMs: opts.auditPeriodMs ?? 2000,
      taggedOptions: opts.taggedOptions ?? '-c pgsplit.route=replica',
      tagComputeSessions: opts.tagComputeSessions ?? true,
      clientMode: opts.clientMode ?? 'oslo',
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      counterResetProbability: opts.counterResetProbability ?? 0.02,
      random: opts.random ?? Math.random,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
    };
    for (const key of ['computeHosts', 'apiSessions', 'instancesPerHost'] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 0) throw new Error(`NovaWorkload: ${key} must be a non-negative integer, got ${options[key]}`);
    }
    if (!(NOVA_CLIENT_MODES as readonly string[]).includes(options.clientMode)) {
      throw new Error(`NovaWorkload: clientMode must be one of ${NOVA_CLIENT_MODES.join(', ')}, got ${String(options.clientMode)}`);
    }
    if (!(options.auditPeriodMs > 0)) throw new Error(`NovaWorkload: auditPeriodMs must be positive, got ${options.auditPeriodMs}`);
    if (!(options.counterResetProbability >= 0 && options.counterResetProbability <= 1)) {
      throw new Error(`NovaWorkload: counterResetProbability must be in [0, 1], got ${options.counterResetProbability}`);
    }
    const intervals = { ...DEFAULT_NOVA_INTERVALS, ...opts.intervals };
    for (const [key, ms] of Object.entries(intervals)) {
      if (!(typeof ms === 'number' && ms > 0)) throw new Error(`NovaWorkload: interval ${key} must be a positive number of ms, got ${String(ms)}`);
    }
    this.options = options;
    this.intervals = Object.freeze(intervals);
    this.hosts = Array.from({ length: options.computeHosts }, (_, i) => ({
      name: `compute-${i + 1}`,
      node: `compute-${i + 1}.nova.local`,
      counters: new Map(),
    }));
    this.#counters = Object.fromEntries([...COMPUTE_TASKS, ...API_REQUESTS].map((n) => [n, emptyCounters()])) as Record<NovaTaskName, TaskCounters>;
  }

  get state(): 'created' | 'running' | 'stopping' | 'stopped' {
    return this.#state;
  }

  /** A copy of the counters. */
  snapshot(): NovaWorkloadStats {
    const tasks = Object.fromEntries(Object.entries(this.#counters).map(([k, v]) => [k, { ...v }])) as Record<NovaTaskName, TaskCounters>;
    const end = this.#stoppedAt || Date.now();
    return {
      tasks,
      readYourWritesMisses: this.#readYourWritesMisses,
      duplicateAudits: this.#duplicateAudits,
      bandwidthRollovers: this.#bandwidthRollovers,
      elapsedMs: this.#startedAt === 0 ? 0 : end - this.#startedAt,
    };
  }

  /**
   * A new connected session through the target: untagged through `connection` (or host and port),
   * tagged through `slaveConnection` (or with `taggedOptions` as startup options).
   */
  async connect(applicationName: string, tagged: boolean): Promise<pg.Client> {
    const o = this.options;
    const common = { application_name: applicationName, connectionTimeoutMillis: o.connectTimeoutMs };
    let config: pg.ClientConfig;
    if (o.connection !== undefined) {
      // node-postgres copies every query parameter of the URL into its config, and sends `options` as the
      // startup parameter of that name: the tag in slave_connection reaches pgsplit like PGOPTIONS would.
      // (Values parsed from the URL win over the ones given here, so a URL's own options are kept.)
      const url = tagged ? (o.slaveConnection ?? o.connection) : o.connection;
      const addTag = tagged && o.slaveConnection === undefined;
      config = { connectionString: url, ...common, ...(addTag ? { options: o.taggedOptions } : {}) };
    } else {
      config = {
        host: o.host,
        port: o.port,
        user: o.user,
        password: o.password,
        database: o.database,
        ...common,
        ...(tagged ? { options: o.taggedOptions } : {}),
      };
    }
    const client = new pg.Client(config);
    // Without a listener, a connection dropped between statements would crash the process.
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  /**
   * Creates the schema (if missing) and seeds every compute host that has no instances yet: a service,
   * a compute node, instances with a root volume each, and one migration in progress. Runs through an
   * untagged session, so on the primary. Idempotent.
   */
  async setup(): Promise<void> {
    const client = await this.connect('nova-manage', false);
    try {
      for (const ddl of NOVA_SCHEMA) await client.query(ddl);
      for (const host of this.hosts) await this.#seedHost(client, host);
      const { rows } = await client.query<{ uuid: string }>('SELECT uuid FROM instances WHERE deleted = 0');
      this.#knownInstances.push(...rows.map((r) => r.uuid));
    } finally {
      await client.end().catch(() => {});
    }
  }

  async #seedHost(client: pg.Client, host: ComputeHost): Promise<void> {
    const service = await client.query<{ id: number }>(
      `INSERT INTO services (host, "binary", topic, updated_at) VALUES ($1, 'nova-compute', 'compute', now())
       ON CONFLICT (host, "binary", deleted) DO UPDATE SET updated_at = now() RETURNING id`,
      [host.name],
    );
    const serviceId = service.rows[0]?.id ?? null;
    await client.query(
      `INSERT INTO compute_nodes (service_id, host, hypervisor_hostname, vcpus, memory_mb, updated_at)
       VALUES ($1, $2, $3, 64, 262144, now()) ON CONFLICT (host, hypervisor_hostname, deleted) DO NOTHING`,
      [serviceId, host.name, host.node],
    );
    const existing = await client.query<{ n: string }>('SELECT count(*) AS n FROM instances WHERE host = $1', [host.name]);
    if (Number(existing.rows[0]?.n ?? 0) > 0) return;
    const n = this.options.instancesPerHost;
    const uuids = Array.from({ length: n }, () => crypto.randomUUID());
    const vcpus = uuids.map(() => this.#pick([1, 2, 4]));
    const memory = vcpus.map((v) => v * 2048);
    const volumes = uuids.map(() => crypto.randomUUID());
    await client.query(
      `INSERT INTO instances (uuid, display_name, host, node, vm_state, vcpus, memory_mb, launched_at, created_at)
       SELECT u, 'seed-' || left(u, 8), $1, $2, 'active', v, m, now() - interval '1 day', now() - interval '1 day'
         FROM unnest($3::varchar[], $4::int[], $5::int[]) AS t(u, v, m)`,
      [host.name, host.node, uuids, vcpus, memory],
    );
    await client.query(
      `INSERT INTO block_device_mapping (instance_uuid, device_name, source_type, destination_type, volume_id, boot_index)
       SELECT u, '/dev/vda', 'volume', 'volume', vol, 0 FROM unnest($1::varchar[], $2::varchar[]) AS t(u, vol)`,
      [uuids, volumes],
    );
    const migrating = uuids[0];
    if (migrating !== undefined && this.hosts.length > 1) {
      const dest = this.hosts[(this.hosts.indexOf(host) + 1) % this.hosts.length] as ComputeHost;
      await client.query(
        `INSERT INTO migrations (source_compute, dest_compute, source_node, dest_node, instance_uuid, status, migration_type)
         VALUES ($1, $2, $3, $4, $5, 'running', 'live-migration')`,
        [host.name, dest.name, host.node, dest.node, migrating],
      );
    }
  }

  /** Opens one tagged session per compute host and the untagged API sessions, then starts their loops. */
  async start(): Promise<void> {
    if (this.#state !== 'created') throw new Error(`NovaWorkload.start: already ${this.#state}`);
    this.#state = 'running';
    try {
      for (const host of this.hosts) {
        host.client = await this.connect('nova-compute', this.options.tagComputeSessions);
        this.#clients.push(host.client);
        if (this.options.clientMode === 'oslo') {
          host.writer = await this.connect('nova-compute', false);
          this.#clients.push(host.writer);
        }
      }
      const apiClients: pg.Client[] = [];
      for (let i = 0; i < this.options.apiSessions; i++) {
        const c = await this.connect('nova-api', false);
        this.#clients.push(c);
        apiClients.push(c);
      }
      // stop() may have been called while we were connecting; it has not seen the late clients.
      if (!this.#running) {
        await Promise.allSettled(this.#clients.map(endClient));
        return;
      }
      this.#startedAt = Date.now();
      for (const host of this.hosts) this.#loops.push(this.#computeLoop(host));
      for (const c of apiClients) this.#loops.push(this.#apiLoop(c));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops the loops (a task that is running finishes first) and closes every session. Idempotent. */
  async stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#state = 'stopping';
      for (const s of this.#sleepers) s.wake();
      await Promise.allSettled(this.#loops);
      if (this.#startedAt !== 0) this.#stoppedAt = Date.now();
      await Promise.allSettled(this.#clients.map(endClient));
      this.#state = 'stopped';
    })();
    return this.#stopping;
  }

  get #running(): boolean {
    return this.#state === 'running';
  }

  #pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.options.random() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /**
   * Sends one statement and counts it under `task`. A read is sent wrapped by {@link locateRead}, and
   * counted by where it ran; the caller gets the read's own rows and columns only.
   */
  async #exec<R extends pg.QueryResultRow = Record<string, unknown>>(
    client: pg.Client,
    task: NovaTaskName,
    kind: StatementKind,
    sql: string,
    params: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    const c = this.#counters[task];
    c.statements++;
    if (kind === 'write') {
      c.writes++;
      return client.query<R>(sql, params);
    }
    // Only unhinted reads of tagged compute sessions may run on a replica; 'replica-read' is used by
    // compute tasks only, so an untagged (baseline) run counts them as reads for the primary.
    const mayUseReplica = kind === 'replica-read' && this.options.tagComputeSessions;
    if (mayUseReplica) c.replicaReads++;
    else c.primaryReads++;
    const res = await client.query<LocatedRow>(locateRead(sql), params);
    const first = res.rows[0];
    if (first === undefined) throw new CheckFailed(`${task}: a located read returned no row`);
    if (first.pgsplit_in_recovery === true) {
      c.readsOnReplica++;
      const tx = this.#openTx.get(client);
      if (tx) tx.readsOnReplica++;
      if (!mayUseReplica) c.primaryReadsOnReplica++;
    } else {
      c.readsOnPrimary++;
    }
    const rows: R[] = [];
    for (const row of res.rows) {
      if (row.pgsplit_row !== true) continue;
      const own: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(row)) if (!LOCATION_COLUMNS.has(k)) own[k] = v;
      rows.push(own as R);
    }
    return { ...res, rows, rowCount: rows.length, fields: res.fields.filter((f) => !LOCATION_COLUMNS.has(f.name)) };
  }

  /**
   * One unit of work as oslo.db's enginefacade sends it. oslo mode: `BEGIN`, the body, then `COMMIT` for a
   * writer or `ROLLBACK` for a reader (a reader session is closed uncommitted and the pool rolls the
   * connection back); on an error, `ROLLBACK` and the error goes on. autocommit mode: the body alone.
   * The location column of each read ({@link locateRead}) runs inside the transaction, so it reports the
   * server the transaction is on.
   */
  async #transaction<T>(client: pg.Client, task: NovaTaskName, kind: 'reader' | 'writer', body: () => Promise<T>): Promise<T> {
    if (this.options.clientMode === 'autocommit') return body();
    const c = this.#counters[task];
    const tx = { readsOnReplica: 0 };
    await client.query('BEGIN');
    c.transactions++;
    this.#openTx.set(client, tx);
    try {
      const result = await body();
      await client.query(kind === 'writer' ? 'COMMIT' : 'ROLLBACK');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      this.#openTx.delete(client);
      if (tx.readsOnReplica > 0) c.replicaTransactions++;
    }
  }

  /** The session a compute host writes through: its writer (oslo mode) or its only session. */
  #writerOf(host: ComputeHost, client: pg.Client): pg.Client {
    return host.writer ?? client;
  }

  /** Runs one task, timing it and counting a failure (SQL error or failed check) as an error. */
  async #run(task: NovaTaskName, body: () => Promise<void>): Promise<void> {
    const c = this.#counters[task];
    const started = Date.now();
    c.runs++;
    try {
      await body();
    } catch (err) {
      c.errors++;
      c.lastError = err instanceof CheckFailed ? err.message : `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.trim();
    } finally {
      const ms = Date.now() - started;
      c.totalMs += ms;
      if (ms > c.maxMs) c.maxMs = ms;
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Compute hosts: periodic tasks, serially per host (one session), each on its own interval
  // -------------------------------------------------------------------------------------------------

  async #computeLoop(host: ComputeHost): Promise<void> {
    const client = host.client;
    if (!client) return;
    const sleeper = new Sleeper();
    this.#sleepers.push(sleeper);
    const now = Date.now();
    // Staggered first runs, so the hosts do not all fire at the same instant.
    const due = new Map<ComputeTaskName, number>(COMPUTE_TASKS.map((t) => [t, now + this.options.random() * this.intervals[t]]));
    while (this.#running) {
      let next: ComputeTaskName = COMPUTE_TASKS[0];
      for (const t of COMPUTE_TASKS) if ((due.get(t) ?? 0) < (due.get(next) ?? 0)) next = t;
      const wait = (due.get(next) ?? 0) - Date.now();
      if (wait > 0) {
        await sleeper.sleep(wait);
        continue;
      }
      await this.#run(next, () => this.#computeTask(next, client, host));
      // Like Nova's fixed-interval looping calls: the next run is an interval after this one began,
      // but never in the past (a slow run is not followed by a burst of catch-up runs).
      due.set(next, Math.max((due.get(next) ?? 0) + this.intervals[next], Date.now()));
    }
  }

  #computeTask(task: ComputeTaskName, client: pg.Client, host: ComputeHost): Promise<void> {
    switch (task) {
      case 'update_available_resource':
        return this.#updateAvailableResource(client, host);
      case '_poll_bandwidth_usage':
        return this.#pollBandwidthUsage(client, host);
      case '_instance_usage_audit':
        return this.#instanceUsageAudit(client, host);
      case '_poll_volume_usage':
        return this.#pollVolumeUsage(client, host);
    }
  }

  /** The resource tracker: read the node, its instances and migrations (replica), write the usage (primary). */
  async #updateAvailableResource(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = 'update_available_resource';
    const instances = await this.#transaction(client, task, 'reader', async () => {
      await this.#exec(client, task, 'replica-read',
        `SELECT id, vcpus, vcpus_used, memory_mb, memory_mb_used, running_vms
           FROM compute_nodes WHERE host = $1 AND hypervisor_hostname = $2 AND deleted = 0`,
        [host.name, host.node]);
      const found = await this.#exec<{ uuid: string; vcpus: number; memory_mb: number }>(client, task, 'replica-read',
        `SELECT uuid, vcpus, memory_mb, vm_state, task_state
           FROM instances WHERE host = $1 AND node = $2 AND deleted = 0`,
        [host.name, host.node]);
      await this.#exec(client, task, 'replica-read',
        `SELECT id, instance_uuid, source_compute, dest_compute, status
           FROM migrations
          WHERE (source_compute = $1 OR dest_compute = $1) AND deleted = 0 AND NOT (status = ANY($2::varchar[]))`,
        [host.name, FINISHED_MIGRATION_STATES]);
      return found;
    });
    let vcpus = 0;
    let memory = 0;
    for (const i of instances.rows) {
      vcpus += i.vcpus;
      memory += i.memory_mb;
    }
    const writer = this.#writerOf(host, client);
    await this.#transaction(writer, task, 'writer', () => this.#exec(writer, task, 'write',
      `UPDATE compute_nodes SET vcpus_used = $3, memory_mb_used = $4, running_vms = $5, updated_at = now()
        WHERE host = $1 AND hypervisor_hostname = $2 AND deleted = 0`,
      [host.name, host.node, vcpus, memory, instances.rows.length]));
  }

  /** The start of the audit period containing `t` (Nova's bandwidth and usage periods). */
  #periodStart(t: number): Date {
    const p = this.options.auditPeriodMs;
    return new Date(Math.floor(t / p) * p);
  }

  /**
   * The hypervisor's counters for one instance: they grow with traffic, wrap at 2^32, and restart from
   * zero when the guest reboots (with probability counterResetProbability), which is what makes Nova's
   * rollover handling necessary.
   */
  #hypervisorCounters(host: ComputeHost, uuid: string): { in: number; out: number } {
    const r = this.options.random;
    const prev = host.counters.get(uuid);
    let next: { in: number; out: number };
    if (prev === undefined) {
      // A guest that has been up for a while: counters anywhere in their range.
      next = { in: Math.floor(r() * COUNTER_WRAP), out: Math.floor(r() * COUNTER_WRAP) };
    } else if (r() < this.options.counterResetProbability) {
      next = { in: Math.floor(r() * 100_000), out: Math.floor(r() * 50_000) };
    } else {
      next = { in: (prev.in + Math.floor(r() * 1_000_000)) % COUNTER_WRAP, out: (prev.out + Math.floor(r() * 500_000)) % COUNTER_WRAP };
    }
    host.counters.set(uuid, next);
    return next;
  }

  /**
   * Bandwidth polling, as nova/compute/manager.py _poll_bandwidth_usage: read the host's instances and
   * the cached usage of this period, or else the last counters of the previous period (replica); add
   * each counter's growth since the last poll (a counter below its last value has rolled over: the whole
   * value is new traffic); upsert the usage and the new counters (primary).
   */
  async #pollBandwidthUsage(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = '_poll_bandwidth_usage';
    const startPeriod = this.#periodStart(Date.now());
    const prevPeriod = new Date(startPeriod.getTime() - this.options.auditPeriodMs);
    type Usage = { uuid: string; mac: string; bw_in: string; bw_out: string; last_ctr_in: string; last_ctr_out: string };
    const key = (uuid: string, mac: string): string => `${uuid}/${mac}`;
    const read = await this.#transaction(client, task, 'reader', async () => {
      const instances = await this.#exec<{ uuid: string }>(client, task, 'replica-read',
        `SELECT uuid FROM instances WHERE host = $1 AND deleted = 0 AND vm_state = 'active'`,
        [host.name]);
      if (instances.rows.length === 0) return undefined;
      const counters = instances.rows.map((row) => ({ uuid: row.uuid, mac: macFor(row.uuid), ...this.#hypervisorCounters(host, row.uuid) }));
      const uuids = counters.map((c) => c.uuid);
      // Nova reads these one instance at a time (BandwidthUsage.get_by_instance_uuid_and_mac, use_slave);
      // one statement per host and period keeps the same rows and the same replica/primary split.
      const current = await this.#exec<Usage>(client, task, 'replica-read',
        `SELECT uuid, mac, bw_in, bw_out, last_ctr_in, last_ctr_out
           FROM bw_usage_cache WHERE start_period = $1 AND uuid = ANY($2::varchar[]) AND deleted = 0`,
        [startPeriod, uuids]);
      const thisPeriod = new Map(current.rows.map((r) => [key(r.uuid, r.mac), r]));
      const missing = counters.filter((c) => !thisPeriod.has(key(c.uuid, c.mac))).map((c) => c.uuid);
      let lastPeriod = new Map<string, Usage>();
      if (missing.length > 0) {
        const previous = await this.#exec<Usage>(client, task, 'replica-read',
          `SELECT uuid, mac, bw_in, bw_out, last_ctr_in, last_ctr_out
             FROM bw_usage_cache WHERE start_period = $1 AND uuid = ANY($2::varchar[]) AND deleted = 0`,
          [prevPeriod, missing]);
        lastPeriod = new Map(previous.rows.map((r) => [key(r.uuid, r.mac), r]));
      }
      return { counters, thisPeriod, lastPeriod };
    });
    if (read === undefined) return;
    const { counters, thisPeriod, lastPeriod } = read;
    // Counters read from a replica may be a moment old; Nova's bandwidth accounting tolerates that.
    const rows = counters.map((ctr) => {
      const usage = thisPeriod.get(key(ctr.uuid, ctr.mac));
      const previous = usage ?? lastPeriod.get(key(ctr.uuid, ctr.mac));
      // A new period starts at 0 but continues from the previous period's counters.
      let bwIn = usage ? Number(usage.bw_in) : 0;
      let bwOut = usage ? Number(usage.bw_out) : 0;
      if (previous !== undefined) {
        const lastIn = Number(previous.last_ctr_in);
        const lastOut = Number(previous.last_ctr_out);
        if (ctr.in < lastIn || ctr.out < lastOut) this.#bandwidthRollovers++;
        bwIn += ctr.in < lastIn ? ctr.in : ctr.in - lastIn;
        bwOut += ctr.out < lastOut ? ctr.out : ctr.out - lastOut;
      }
      // Without any earlier counters (a new instance) there is nothing to compare with: Nova records 0.
      return { uuid: ctr.uuid, mac: ctr.mac, bwIn, bwOut, ctrIn: ctr.in, ctrOut: ctr.out };
    });
    // One statement for the whole host (Nova calls bw_usage_update per instance; batching keeps the
    // read/write mix close to Nova's, where reads of instance data dominate).
    const writer = this.#writerOf(host, client);
    await this.#transaction(writer, task, 'writer', () => this.#exec(writer, task, 'write',
      `INSERT INTO bw_usage_cache (uuid, mac, start_period, bw_in, bw_out, last_ctr_in, last_ctr_out, last_refreshed, updated_at)
       SELECT u, m, $1, bi, bo, ci, co, now(), now()
         FROM unnest($2::varchar[], $3::varchar[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[]) AS t(u, m, bi, bo, ci, co)
       ON CONFLICT (uuid, mac, start_period) DO UPDATE
          SET bw_in = EXCLUDED.bw_in, bw_out = EXCLUDED.bw_out, last_ctr_in = EXCLUDED.last_ctr_in,
              last_ctr_out = EXCLUDED.last_ctr_out, last_refreshed = EXCLUDED.last_refreshed, updated_at = EXCLUDED.updated_at`,
      [startPeriod, rows.map((r) => r.uuid), rows.map((r) => r.mac), rows.map((r) => r.bwIn), rows.map((r) => r.bwOut),
        rows.map((r) => r.ctrIn), rows.map((r) => r.ctrOut)]));
  }

  /**
   * The usage audit: once per period and host. Whether the period was already audited gates a one-shot
   * action, so that read carries the primary hint; a stale answer from a replica would audit twice.
   */
  async #instanceUsageAudit(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = '_instance_usage_audit';
    const now = Date.now();
    const ending = this.#periodStart(now);
    const beginning = new Date(ending.getTime() - this.options.auditPeriodMs);
    // Each step is its own unit of work in Nova (TaskLog.get, InstanceList.get_active_by_window_joined,
    // task_log_begin_task, task_log_end_task). Nova reads task_log through its main engine; here the read
    // goes through slave_connection with the hint, so the run also shows the hint holding in a transaction.
    const done = await this.#transaction(client, task, 'reader', () => this.#exec(client, task, 'primary-read',
      `${PRIMARY_HINT} SELECT id, state FROM task_log
        WHERE task_name = 'instance_usage_audit' AND host = $1 AND period_beginning = $2 AND period_ending = $3 AND deleted = 0`,
      [host.name, beginning, ending]));
    if (done.rows.length > 0) return;
    const active = await this.#transaction(client, task, 'reader', () => this.#exec(client, task, 'replica-read',
      `SELECT uuid, vm_state, launched_at, terminated_at FROM instances
        WHERE host = $1 AND (terminated_at IS NULL OR terminated_at > $2) AND (launched_at IS NULL OR launched_at < $3)`,
      [host.name, beginning, ending]));
    const writer = this.#writerOf(host, client);
    const begun = await this.#transaction(writer, task, 'writer', () => this.#exec(writer, task, 'write',
      `INSERT INTO task_log (task_name, state, host, period_beginning, period_ending, message, task_items)
       VALUES ('instance_usage_audit', 'RUNNING', $1, $2, $3, 'Instance usage audit started', $4)
       ON CONFLICT (task_name, host, period_beginning, period_ending) DO NOTHING`,
      [host.name, beginning, ending, active.rows.length]));
    if (begun.rowCount === 0) {
      this.#duplicateAudits++;
      throw new CheckFailed(`${host.name}: audit period ${beginning.toISOString()} was already logged although the hinted read found nothing`);
    }
    await this.#transaction(writer, task, 'writer', () => this.#exec(writer, task, 'write',
      `UPDATE task_log SET state = 'DONE', message = $4, updated_at = now()
        WHERE task_name = 'instance_usage_audit' AND host = $1 AND period_beginning = $2 AND period_ending = $3`,
      [host.name, beginning, ending, `Instance usage audit ran for ${active.rows.length} instances`]));
  }

  /**
   * Volume polling, as _poll_volume_usage: the host's instances, then their block-device mappings, then
   * the cached usage of those volumes (replica, like _get_host_volume_bdms with use_slave); upsert each
   * volume's usage (primary).
   */
  async #pollVolumeUsage(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = '_poll_volume_usage';
    const read = await this.#transaction(client, task, 'reader', async () => {
      const instances = await this.#exec<{ uuid: string }>(client, task, 'replica-read',
        'SELECT uuid FROM instances WHERE host = $1 AND deleted = 0',
        [host.name]);
      if (instances.rows.length === 0) return undefined;
      const volumes = await this.#exec<{ instance_uuid: string; volume_id: string }>(client, task, 'replica-read',
        `SELECT instance_uuid, volume_id, device_name FROM block_device_mapping
          WHERE instance_uuid = ANY($1::varchar[]) AND deleted = 0 AND destination_type = 'volume' AND volume_id IS NOT NULL`,
        [instances.rows.map((i) => i.uuid)]);
      if (volumes.rows.length === 0) return undefined;
      const cached = await this.#exec<{ volume_id: string; curr_reads: string; curr_writes: string }>(client, task, 'replica-read',
        `SELECT volume_id, curr_reads, curr_read_bytes, curr_writes, curr_write_bytes
           FROM volume_usage_cache WHERE volume_id = ANY($1::varchar[])`,
        [volumes.rows.map((v) => v.volume_id)]);
      return { volumes, cached };
    });
    if (read === undefined) return;
    const { volumes, cached } = read;
    const previous = new Map(cached.rows.map((r) => [r.volume_id, r]));
    const rows = volumes.rows.map((v) => {
      const prev = previous.get(v.volume_id);
      const reads = Number(prev?.curr_reads ?? 0) + Math.floor(this.options.random() * 100);
      const writes = Number(prev?.curr_writes ?? 0) + Math.floor(this.options.random() * 50);
      return { volume: v.volume_id, instance: v.instance_uuid, reads, writes };
    });
    const writer = this.#writerOf(host, client);
    await this.#transaction(writer, task, 'writer', () => this.#exec(writer, task, 'write',
      `INSERT INTO volume_usage_cache (volume_id, instance_uuid, availability_zone, curr_last_refreshed,
                                       curr_reads, curr_read_bytes, curr_writes, curr_write_bytes, updated_at)
       SELECT v, i, 'nova', now(), r, r * 4096, w, w * 4096, now()
         FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::bigint[]) AS t(v, i, r, w)
       ON CONFLICT (volume_id) DO UPDATE
          SET curr_last_refreshed = EXCLUDED.curr_last_refreshed, curr_reads = EXCLUDED.curr_reads,
              curr_read_bytes = EXCLUDED.curr_read_bytes, curr_writes = EXCLUDED.curr_writes,
              curr_write_bytes = EXCLUDED.curr_write_bytes, updated_at = EXCLUDED.updated_at`,
      [rows.map((r) => r.volume), rows.map((r) => r.instance), rows.map((r) => r.reads), rows.map((r) => r.writes)]));
  }

  // -------------------------------------------------------------------------------------------------
  // API sessions: request-like work, untagged (primary only), checking read-your-writes
  // -------------------------------------------------------------------------------------------------

  async #apiLoop(client: pg.Client): Promise<void> {
    const sleeper = new Sleeper();
    this.#sleepers.push(sleeper);
    /** Instances this session created and has not deleted; only these are deleted, so sessions never race. */
    const mine: string[] = [];
    await sleeper.sleep(this.options.random() * this.intervals.api_request);
    while (this.#running) {
      const r = this.options.random();
      // Mostly reads, like a real API; deletes only of our own instances, and more of them once many pile up.
      let request: ApiRequestName;
      if (mine.length > 20 || (mine.length > 0 && r < 0.15)) request = 'api_delete_instance';
      else if (r < 0.35) request = 'api_create_instance';
      else if (r < 0.7) request = 'api_show_instance';
      else request = 'api_list_instances';
      await this.#run(request, () => this.#apiRequest(request, client, mine));
      if (!this.#running) break;
      // Jittered pause: between half and one and a half times the configured interval.
      await sleeper.sleep(this.intervals.api_request * (0.5 + this.options.random()));
    }
  }

  async #apiRequest(request: ApiRequestName, client: pg.Client, mine: string[]): Promise<void> {
    switch (request) {
      case 'api_create_instance': {
        const uuid = crypto.randomUUID();
        const host = this.hosts.length > 0 ? this.#pick(this.hosts) : undefined;
        const vcpus = this.#pick([1, 2, 4]);
        // One writer transaction for the instance and its root volume, committed; then the answer is read
        // back in a reader transaction of its own, which must see the commit (the primary has it).
        await this.#transaction(client, request, 'writer', async () => {
          await this.#exec(client, request, 'write',
            `INSERT INTO instances (uuid, display_name, host, node, vm_state, vcpus, memory_mb, launched_at, created_at)
             VALUES ($1, $2, $3, $4, 'active', $5, $6, now(), now())`,
            [uuid, `vm-${uuid.slice(0, 8)}`, host?.name ?? null, host?.node ?? null, vcpus, vcpus * 2048]);
          await this.#exec(client, request, 'write',
            `INSERT INTO block_device_mapping (instance_uuid, device_name, source_type, destination_type, volume_id, boot_index)
             VALUES ($1, '/dev/vda', 'volume', 'volume', $2, 0)`,
            [uuid, crypto.randomUUID()]);
        });
        mine.push(uuid);
        this.#knownInstances.push(uuid);
        const shown = await this.#transaction(client, request, 'reader', () => this.#exec(client, request, 'primary-read',
          'SELECT uuid, vm_state, host FROM instances WHERE uuid = $1 AND deleted = 0', [uuid]));
        if (shown.rows.length !== 1) {
          this.#readYourWritesMisses++;
          throw new CheckFailed(`created instance ${uuid} was not visible to the next statement of the same API session`);
        }
        return;
      }
      case 'api_show_instance': {
        if (this.#knownInstances.length === 0) return;
        const uuid = this.#pick(this.#knownInstances);
        await this.#transaction(client, request, 'reader', () => this.#exec(client, request, 'primary-read',
          `SELECT i.uuid, i.display_name, i.vm_state, i.host, i.vcpus, i.memory_mb, i.launched_at, b.volume_id
             FROM instances i LEFT JOIN block_device_mapping b ON b.instance_uuid = i.uuid AND b.deleted = 0
            WHERE i.uuid = $1`,
          [uuid]));
        return;
      }
      case 'api_list_instances':
        await this.#transaction(client, request, 'reader', () => this.#exec(client, request, 'primary-read',
          `SELECT uuid, display_name, vm_state, host, created_at FROM instances
            WHERE deleted = 0 ORDER BY created_at DESC, id DESC LIMIT 50`));
        return;
      case 'api_delete_instance': {
        const index = Math.floor(this.options.random() * mine.length);
        const uuid = mine[index];
        if (uuid === undefined) return;
        mine.splice(index, 1);
        const known = this.#knownInstances.indexOf(uuid);
        if (known >= 0) this.#knownInstances.splice(known, 1);
        // Nova soft-deletes: deleted = id marks the row deleted while keeping it for the audit.
        await this.#transaction(client, request, 'writer', async () => {
          await this.#exec(client, request, 'write',
            `UPDATE instances SET vm_state = 'deleted', deleted = id, deleted_at = now(), terminated_at = now(), updated_at = now()
              WHERE uuid = $1 AND deleted = 0`,
            [uuid]);
          await this.#exec(client, request, 'write',
            'UPDATE block_device_mapping SET deleted = id, deleted_at = now() WHERE instance_uuid = $1 AND deleted = 0',
            [uuid]);
        });
        const shown = await this.#transaction(client, request, 'reader', () => this.#exec(client, request, 'primary-read',
          'SELECT uuid FROM instances WHERE uuid = $1 AND deleted = 0', [uuid]));
        if (shown.rows.length !== 0) {
          this.#readYourWritesMisses++;
          throw new CheckFailed(`deleted instance ${uuid} was still visible to the next statement of the same API session`);
        }
        return;
      }
    }
  }
}

/** Ends a session, giving up after a few seconds: stop() must not hang on a server that does not answer. */
async function endClient(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 3000);
    }),
  ]);
  clearTimeout(timer);
}

/** A stable fake MAC address for an instance (Nova keys bandwidth by instance and MAC). */
function macFor(uuid: string): string {
  const h = crypto.createHash('sha1').update(uuid).digest();
  return ['fa', '16', '3e', ...[0, 1, 2].map((i) => (h[i] ?? 0).toString(16).padStart(2, '0'))].join(':');
}
