import type { PoolRegistry } from '../pool/pool-registry.js';
import type { NodeSnapshot, ServerView } from '../proxy/server-view.js';
import type { ServerNodes } from '../server/server-nodes.js';
import type { Session } from '../session/session.js';
import type { MetricsSource } from './proxy-metrics.js';
import type { ProxyStats } from './proxy-stats.js';

/** The parts of the running proxy the metrics read at scrape time (the ProxyServer hands them over). */
export interface ProxyMetricsParts {
  stats: ProxyStats;
  pools: PoolRegistry;
  nodes: ServerNodes;
  view: ServerView;
  sessions: ReadonlyMap<number, Session>;
  /** Client sockets still in their startup handshake (no session or admin console yet). */
  handshaking(): number;
}

/** What Prometheus sees of the running proxy. */
export function proxyMetricsSource(p: ProxyMetricsParts): MetricsSource {
  return {
    stats: p.stats,
    pools: () => p.pools,
    clientStates: () => {
      const m = new Map<string, number>([['starting', 0], ['active', 0], ['idle', 0], ['idle_in_transaction', 0]]);
      for (const s of p.sessions.values()) m.set(s.activity, (m.get(s.activity) ?? 0) + 1);
      // Sockets still in their startup handshake have no session yet.
      m.set('starting', (m.get('starting') ?? 0) + Math.max(0, p.handshaking()));
      return m;
    },
    liveClientBytes: () => {
      let bytesIn = 0;
      let bytesOut = 0;
      for (const s of p.sessions.values()) {
        bytesIn += s.client.bytesRead;
        // Only what left: bytes still queued may be dropped when the session closes (counters never go down).
        bytesOut += Math.max(0, s.client.bytesWritten - s.client.writableLength);
      }
      return { in: bytesIn, out: bytesOut };
    },
    serverStates: () => {
      const m = new Map<string, Map<string, number>>();
      for (const n of p.nodes.all) m.set(n.endpoint.name, new Map([['active', 0], ['idle', 0]]));
      for (const l of p.view.serverLinks()) {
        const name = l.node.endpoint.name;
        const by = m.get(name) ?? new Map<string, number>();
        const state = l.busy ? 'active' : 'idle';
        by.set(state, (by.get(state) ?? 0) + 1);
        m.set(name, by);
      }
      return m;
    },
    // One series a name: a replica drained after a reload gives way to the one in service under its name.
    nodes: () => {
      const byName = new Map<string, NodeSnapshot>();
      for (const x of p.view.nodeSnapshots()) {
        const had = byName.get(x.node.endpoint.name);
        if (had === undefined || (had.node.retiring && !x.node.retiring)) byName.set(x.node.endpoint.name, x);
      }
      return [...byName.values()]
        .map(({ node: n, lagMs, lagBytes }) => ({ name: n.endpoint.name, role: n.role, up: n.health === 'up', lagSeconds: lagMs === null ? null : lagMs / 1000, lagBytes }));
    },
  };
}
