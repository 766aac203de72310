import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { DurationHistogram } from './duration-histogram.js';
import type { ProxyStats } from './proxy-stats.js';

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
  add(snapshot('pgsplit_query_duration_seconds', 'Time from sending a unit of work to a server until its ReadyForQuery, by node.', 'histogram', () => {
    const out: Sample[] = [];
    for (const [node, h] of src.stats.durations) {
      let cum = 0;
      DurationHistogram.BOUNDS.forEach((le, i) => {
        cum += h.counts[i] as number;
        out.push({ metricName: 'pgsplit_query_duration_seconds_bucket', value: cum, labels: { node, le } });
      });
      out.push({ metricName: 'pgsplit_query_duration_seconds_bucket', value: h.count, labels: { node, le: '+Inf' } });
      out.push({ metricName: 'pgsplit_query_duration_seconds_sum', value: h.sum, labels: { node } });
      out.push({ metricName: 'pgsplit_query_duration_seconds_count', value: h.count, labels: { node } });
    }
    return out;
  }));
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
  add(snapshot('pgsplit_hints_total', 'pgsplit hint comments seen in statements.', 'counter', () => [{ value: src.stats.hintsSeen }]));
  add(snapshot('pgsplit_hints_malformed_total', 'pgsplit hint comments that did not parse (ignored).', 'counter', () => [{ value: src.stats.hintsMalformed }]));
  add(snapshot('pgsplit_errors_total', 'Error responses sent to clients, by SQLSTATE (from servers and from pgsplit).', 'counter', () =>
    [...src.stats.errorsBySqlState].map(([sqlstate, value]) => ({ value, labels: { sqlstate } }))));
  add(snapshot('pgsplit_client_bytes_received_total', 'Bytes received from clients.', 'counter', () => [{ value: src.stats.closedClientBytesIn + src.liveClientBytes().in }]));
  add(snapshot('pgsplit_client_bytes_sent_total', 'Bytes sent to clients.', 'counter', () => [{ value: src.stats.closedClientBytesOut + src.liveClientBytes().out }]));
  return r;
}
