import type { Logger } from '../log/logger.js';
import type { ReplicaMonitor } from '../monitor/replica-monitor.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import type { Router } from '../router/router.js';
import type { ServerNodes } from '../server/server-nodes.js';
import type { SessionEvents } from './session-events.js';

/** Everything a session needs from the proxy around it. */
export interface SessionContext {
  /** Shared with the proxy: while `paused` (admin PAUSE), no new work starts outside a transaction. */
  control: { paused: boolean };
  nodes: ServerNodes;
  router: Router;
  log: Logger;
  maxMessageSize: number;
  connectTimeoutMs: number;
  /** application_name globs whose sessions are tagged. */
  tagApplicationNames: readonly string[];
  defaultRoute: 'primary' | 'replica';
  /** Keeps each server's health, recovery state and replay position (see ReplicaMonitor). */
  monitor: ReplicaMonitor;
  /** routing.max_lag, ms. */
  maxLagMs: number;
  /** routing.read_your_writes_timeout, ms. */
  readYourWritesTimeoutMs: number;
  /** routing.when_no_replica. */
  whenNoReplica: 'primary' | 'error';
  /** routing.transactions: tagged READ COMMITTED transactions start on a replica and move at their first write. */
  transactions: 'replica-until-write' | 'primary';
  /** monitor.timeout, ms: how long a busy link to a replica taken out may stay silent. */
  monitorTimeoutMs: number;
  /** limits.max_pending_bytes: client input held behind running statements before reading pauses. */
  maxPendingBytes: number;
  /** What the session reports as it runs (the proxy's stats count it). */
  events: SessionEvents;
  /** The proxy's server pools (pool.*), one per (node, server role, database, user). */
  pools: PoolRegistry;
  /** pool.mode: 'session' borrows pooled connections for the session's length (see PooledSource). */
  poolMode: 'session' | 'transaction';
}
