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
import pg from 'pg';
import { NOVA_SCHEMA } from './nova-schema.js';
import { NovaComputeTasks, type ComputeHost } from './nova-compute-tasks.js';
import { CheckFailed, NovaMeter, type NovaWorkloadStats, type TaskCounters } from './nova-meter.js';
import {
  COMPUTE_TASKS,
  DEFAULT_NOVA_INTERVALS,
  NOVA_CLIENT_MODES,
  type ApiRequestName,
  type ComputeTaskName,
  type NovaIntervals,
  type NovaTaskName,
  type NovaWorkloadOptions,
  type ResolvedNovaWorkloadOptions,
} from './nova-workload-options.js';

export { NOVA_SCHEMA, NOVA_TABLES } from './nova-schema.js';

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

  /** The counters, and the statement and transaction wrappers that keep them. */
  readonly #meter: NovaMeter;
  readonly #compute: NovaComputeTasks;
  readonly #sleepers: Sleeper[] = [];
  readonly #loops: Promise<void>[] = [];
  readonly #clients: pg.Client[] = [];
  /** Instance uuids known to exist (seeded or created by an API session), for show requests. */
  readonly #knownInstances: string[] = [];
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
    this.#meter = new NovaMeter(options);
    this.#compute = new NovaComputeTasks(this.#meter, options);
  }

  get state(): 'created' | 'running' | 'stopping' | 'stopped' {
    return this.#state;
  }

  /** A copy of the counters. */
  snapshot(): NovaWorkloadStats {
    const tasks = Object.fromEntries(Object.entries(this.#meter.counters).map(([k, v]) => [k, { ...v }])) as Record<NovaTaskName, TaskCounters>;
    const end = this.#stoppedAt || Date.now();
    return {
      tasks,
      readYourWritesMisses: this.#meter.readYourWritesMisses,
      duplicateAudits: this.#meter.duplicateAudits,
      bandwidthRollovers: this.#meter.bandwidthRollovers,
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
      await this.#meter.run(next, () => this.#compute.run(next, client, host));
      // Like Nova's fixed-interval looping calls: the next run is an interval after this one began,
      // but never in the past (a slow run is not followed by a burst of catch-up runs).
      due.set(next, Math.max((due.get(next) ?? 0) + this.intervals[next], Date.now()));
    }
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
      await this.#meter.run(request, () => this.#apiRequest(request, client, mine));
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
        await this.#meter.transaction(client, request, 'writer', async () => {
          await this.#meter.exec(client, request, 'write',
            `INSERT INTO instances (uuid, display_name, host, node, vm_state, vcpus, memory_mb, launched_at, created_at)
             VALUES ($1, $2, $3, $4, 'active', $5, $6, now(), now())`,
            [uuid, `vm-${uuid.slice(0, 8)}`, host?.name ?? null, host?.node ?? null, vcpus, vcpus * 2048]);
          await this.#meter.exec(client, request, 'write',
            `INSERT INTO block_device_mapping (instance_uuid, device_name, source_type, destination_type, volume_id, boot_index)
             VALUES ($1, '/dev/vda', 'volume', 'volume', $2, 0)`,
            [uuid, crypto.randomUUID()]);
        });
        mine.push(uuid);
        this.#knownInstances.push(uuid);
        const shown = await this.#meter.transaction(client, request, 'reader', () => this.#meter.exec(client, request, 'primary-read',
          'SELECT uuid, vm_state, host FROM instances WHERE uuid = $1 AND deleted = 0', [uuid]));
        if (shown.rows.length !== 1) {
          this.#meter.readYourWritesMisses++;
          throw new CheckFailed(`created instance ${uuid} was not visible to the next statement of the same API session`);
        }
        return;
      }
      case 'api_show_instance': {
        if (this.#knownInstances.length === 0) return;
        const uuid = this.#pick(this.#knownInstances);
        await this.#meter.transaction(client, request, 'reader', () => this.#meter.exec(client, request, 'primary-read',
          `SELECT i.uuid, i.display_name, i.vm_state, i.host, i.vcpus, i.memory_mb, i.launched_at, b.volume_id
             FROM instances i LEFT JOIN block_device_mapping b ON b.instance_uuid = i.uuid AND b.deleted = 0
            WHERE i.uuid = $1`,
          [uuid]));
        return;
      }
      case 'api_list_instances':
        await this.#meter.transaction(client, request, 'reader', () => this.#meter.exec(client, request, 'primary-read',
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
        await this.#meter.transaction(client, request, 'writer', async () => {
          await this.#meter.exec(client, request, 'write',
            `UPDATE instances SET vm_state = 'deleted', deleted = id, deleted_at = now(), terminated_at = now(), updated_at = now()
              WHERE uuid = $1 AND deleted = 0`,
            [uuid]);
          await this.#meter.exec(client, request, 'write',
            'UPDATE block_device_mapping SET deleted = id, deleted_at = now() WHERE instance_uuid = $1 AND deleted = 0',
            [uuid]);
        });
        const shown = await this.#meter.transaction(client, request, 'reader', () => this.#meter.exec(client, request, 'primary-read',
          'SELECT uuid FROM instances WHERE uuid = $1 AND deleted = 0', [uuid]));
        if (shown.rows.length !== 0) {
          this.#meter.readYourWritesMisses++;
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
