import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { DurationHistogram } from './duration-histogram.js';
import type { ProxyStats } from './proxy-stats.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import { poolLabel } from '../pool/server-pool.js';

/** What the metrics read from a running proxy at scrape time (the ProxyServer provides it). */
export interface MetricsSource {
  /** The proxy's counters (plain numbers and maps, bumped on the hot path). */
  stats: Readonly<ProxyStats>;
  /** Client sessions now, by state (active, idle, idle_in_transaction), plus those still in startup. */
  clientStates(): Map<string, number>;
  /** Bytes received from and sent to clients by the live sessions. */
  liveClientBytes(): { in: number; out: number };
  /** Server connections now, by node and state (active, idle). */
  serverStates(): Map<string, Map<string, number>>;
  /** Each configured node with its role, health and, for replicas, lag. */
  nodes(): Array<{ name: string; role: 'primary' | 'replica'; up: boolean; lagSeconds: number | null; lagBytes: number | null }>;
  /** The server pools; absent or null while the proxy does not pool (the pool gauges then have no series). */
  pools?: () => PoolRegistry | null;
}

type Sample = { value: number; labels?: Record<string, string | number>; metricName?: string };

/**
 * A metric computed from the proxy's own counters when Prometheus scrapes: the hot path only bumps plain
 * numbers and maps, never prom-client's labelled children.
 */
function snapshot(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => Sample[]): Metric {
  const m = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
    reset: () => undefined,
  };
  return m as unknown as Metric;
}

/** One histogram's samples (buckets cumulative, then sum and count) with `labels` on each. */
function histogramSamples(name: string, labels: Record<string, string>, h: DurationHistogram): Sample[] {
  const out: Sample[] = [];
  let cum = 0;
  DurationHistogram.BOUNDS.forEach((le, i) => {
    cum += h.counts[i] as number;
    out.push({ metricName: `${name}_bucket`, value: cum, labels: { ...labels, le } });
  });
  out.push({ metricName: `${name}_bucket`, value: h.count, labels: { ...labels, le: '+Inf' } });
  out.push({ metricName: `${name}_sum`, value: h.sum, labels });
  out.push({ metricName: `${name}_count`, value: h.count, labels });
  return out;
}

/**
 * The Prometheus registry of one pgsplit process. Names start with `pgsplit_`, counters end in `_total`,
 * units are in the names (seconds, bytes). Node.js process metrics come with the `pgsplit_` prefix.
 */
export function createProxyMetrics(src: MetricsSource): Registry {
  const r = new Registry();
  collectDefaultMetrics({ register: r, prefix: 'pgsplit_' });
  const add = (m: Metric): void => r.registerMetric(m);

  add(snapshot('pgsplit_statements_routed_total', 'Units of work (a Query, or an extended batch up to Sync) routed, by target node and reason.', 'counter', () => {
    const out: Sample[] = [];
    for (const [node, byReason] of src.stats.routedUnits) for (const [reason, n] of byReason) out.push({ value: n, labels: { node, reason } });
    return out;
  }));
  add(snapshot('pgsplit_fallbacks_total', 'Tagged reads that went to the primary because no replica qualified, by reason (fallback-lag, fallback-causal, fallback-no-replica, ...).', 'counter', () => {
    return [...src.stats.routedByReason].filter(([reason]) => reason.startsWith('fallback-')).map(([reason, value]) => ({ value, labels: { reason } }));
  }));
  add(snapshot('pgsplit_query_duration_seconds', 'Time from sending a unit of work to a server until its ReadyForQuery, by node.', 'histogram', () =>
    [...src.stats.durations].flatMap(([node, h]) => histogramSamples('pgsplit_query_duration_seconds', { node }, h))));
  add(snapshot('pgsplit_client_connections', 'Client connections now, by state (starting, active, idle, idle_in_transaction).', 'gauge', () =>
    [...src.clientStates()].map(([state, value]) => ({ value, labels: { state } }))));
  add(snapshot('pgsplit_clients_accepted_total', 'Client connections that completed startup.', 'counter', () => [{ value: src.stats.clientsAccepted }]));
  add(snapshot('pgsplit_clients_rejected_total', 'Client connections refused (authentication, limits, bad startup).', 'counter', () => [{ value: src.stats.clientsRejected }]));
  add(snapshot('pgsplit_server_connections', 'Server connections now, by node and state (active, idle).', 'gauge', () => {
    const out: Sample[] = [];
    for (const [node, byState] of src.serverStates()) for (const [state, value] of byState) out.push({ value, labels: { node, state } });
    return out;
  }));
  add(snapshot('pgsplit_node_up', 'Whether the monitor finds the node healthy (1) or not (0), by node and role.', 'gauge', () =>
    src.nodes().map((n) => ({ value: n.up ? 1 : 0, labels: { node: n.name, role: n.role } }))));
  add(snapshot('pgsplit_replica_lag_seconds', 'How far behind the primary a replica is, in time (an upper bound within one monitor interval); absent while unknown.', 'gauge', () =>
    src.nodes().filter((n) => n.role === 'replica' && n.lagSeconds !== null).map((n) => ({ value: n.lagSeconds as number, labels: { node: n.name } }))));
  add(snapshot('pgsplit_replica_lag_bytes', 'How far behind the primary a replica is, in WAL bytes; absent while unknown.', 'gauge', () =>
    src.nodes().filter((n) => n.role === 'replica' && n.lagBytes !== null).map((n) => ({ value: n.lagBytes as number, labels: { node: n.name } }))));
  add(snapshot('pgsplit_retries_total', 'Reads run again elsewhere because their replica failed before answering, by that replica.', 'counter', () =>
    [...src.stats.retriesByNode].map(([node, value]) => ({ value, labels: { node } }))));
  add(snapshot('pgsplit_reruns_on_primary_total', 'Statements a replica refused as writes (SQLSTATE 25006) that pgsplit re-ran on the primary.', 'counter', () => [{ value: src.stats.rerunsOnPrimary }]));
  add(snapshot('pgsplit_read_guards_total', 'Read-your-writes checks sent ahead of tagged reads on replicas, by result: passed, behind (the read waited and ran again), refused (the session stopped checking so).', 'counter', () =>
    Object.entries(src.stats.guards).map(([result, value]) => ({ value, labels: { result } }))));
  add(snapshot('pgsplit_hints_total', 'pgsplit hint comments seen in statements.', 'counter', () => [{ value: src.stats.hintsSeen }]));
  add(snapshot('pgsplit_hints_malformed_total', 'pgsplit hint comments that did not parse (ignored).', 'counter', () => [{ value: src.stats.hintsMalformed }]));
  add(snapshot('pgsplit_errors_total', 'Error responses sent to clients, by SQLSTATE (from servers and from pgsplit).', 'counter', () =>
    [...src.stats.errorsBySqlState].map(([sqlstate, value]) => ({ value, labels: { sqlstate } }))));
  add(snapshot('pgsplit_client_bytes_received_total', 'Bytes received from clients.', 'counter', () => [{ value: src.stats.closedClientBytesIn + src.liveClientBytes().in }]));
  add(snapshot('pgsplit_client_bytes_sent_total', 'Bytes sent to clients.', 'counter', () => [{ value: src.stats.closedClientBytesOut + src.liveClientBytes().out }]));
  addPoolMetrics(add, src);
  return r;
}

/**
 * The pool metrics. Gauges are per pool (labels pool = database/user, node, role: as many series as
 * SHOW POOLS has rows, which the configured users and databases bound); the wait histogram is per node,
 * and pins per reason (a fixed set), so neither grows with the users.
 */
function addPoolMetrics(add: (m: Metric) => void, src: MetricsSource): void {
  const rows = () => src.pools?.()?.rows() ?? [];
  add(snapshot('pgsplit_pool_clients_waiting', 'Clients waiting for a server connection of a pool now, by pool (database/user), node and role.', 'gauge', () =>
    rows().map((p) => ({ value: p.clientsWaiting, labels: { pool: poolLabel(p), node: p.node, role: p.role } }))));
  add(snapshot('pgsplit_pool_servers', 'Server connections of a pool now, by pool (database/user), node, role and state (active: leased to a client; idle; pending: being opened or cleaned).', 'gauge', () =>
    rows().flatMap((p) => {
      const labels = { pool: poolLabel(p), node: p.node, role: p.role };
      return [
        { value: p.serversActive, labels: { ...labels, state: 'active' } },
        { value: p.serversIdle, labels: { ...labels, state: 'idle' } },
        { value: p.serversPending, labels: { ...labels, state: 'pending' } },
      ];
    })));
  add(snapshot('pgsplit_pool_wait_seconds', 'Time a client waited for a pooled server connection (0 when one was idle), by node and role.', 'histogram', () =>
    [...src.stats.poolWaits].flatMap(([node, w]) => histogramSamples('pgsplit_pool_wait_seconds', { node, role: w.role }, w.h))));
  add(snapshot('pgsplit_pool_pins_total', 'Times a session kept its pooled server connection past the end of a transaction, by reason.', 'counter', () =>
    [...src.stats.pinsByReason].map(([reason, value]) => ({ value, labels: { reason } }))));
}
