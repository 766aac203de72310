/**
 * The knobs of the Nova-like workload (./nova-workload.ts): its task and request names, the intervals,
 * where the sessions connect and how they speak (oslo.db transactions or autocommit).
 */

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
