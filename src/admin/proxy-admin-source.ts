import { errorFor } from '../codec/backend-messages.js';
import { SqlState, errors } from '../errors.js';
import type { PgsplitConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import type { ServerView } from '../proxy/server-view.js';
import type { ServerNodes } from '../server/server-nodes.js';
import type { Session } from '../session/session.js';
import type { SessionEvents } from '../session/session-events.js';
import type { ProxyStats } from '../stats/proxy-stats.js';
import { clientAddress } from '../client/client-address.js';
import { PGSPLIT_VERSION } from '../version.js';
import type { AdminSource } from './admin-console.js';
import { configRows } from './config-rows.js';

/** The parts of the running proxy the admin console reads and acts on (the ProxyServer hands them over). */
export interface ProxyAdminParts {
  sessions: ReadonlyMap<number, Session>;
  nodes: ServerNodes;
  view: ServerView;
  stats: ProxyStats;
  pools: PoolRegistry;
  /** PAUSE / RESUME: the object every session reads. */
  control: { paused: boolean };
  /** Where a KILL is counted by its SQLSTATE, as the sessions count theirs. */
  events: SessionEvents;
  log: Logger;
  /** The configuration in force (a reload replaces it). */
  config(): PgsplitConfig;
  /** RELOAD: reads the configuration again and applies it; throws the reason when it is refused. */
  reload: AdminSource['reload'];
}

/** What the admin console sees of, and may do to, the running proxy. */
export function proxyAdminSource(p: ProxyAdminParts): AdminSource {
  return {
    version: PGSPLIT_VERSION,
    nodes: () => {
      const all = p.view.serverLinks();
      return p.view.nodeSnapshots().map(({ node: n, state, lagMs, lagBytes }) => {
        const mine = all.filter((l) => l.node === n);
        return {
          name: n.endpoint.name, role: n.role, state, lagSeconds: lagMs === null ? null : lagMs / 1000, lagBytes,
          inFlight: mine.filter((l) => l.busy).length, connections: mine.length, lastError: n.failReason,
        };
      });
    },
    clients: () => [...p.sessions.values()].map((s) => ({
      id: s.id, user: s.user, database: s.database, state: s.activity, addr: s.client.remoteAddress ?? '', port: s.client.remotePort ?? 0,
      tagged: s.tagged, servers: s.serverLinks().map((l) => l.node.endpoint.name).join(','),
      applicationName: s.applicationName, tagSource: s.tagSource, connectedAt: s.connectedAt, lastActiveAt: s.lastActiveAt,
    })),
    servers: () => p.view.serverLinks().map((l) => ({ node: l.node.endpoint.name, state: l.busy ? 'active' : 'idle', client: l.client, backendPid: l.backendPid })),
    kill: (id) => {
      const s = p.sessions.get(id);
      if (s === undefined) return `no client with id ${id}`;
      p.log.warn({ session: id, user: s.user, client: clientAddress(s.client) }, 'client session closed by hand (admin console KILL)');
      p.events.error(SqlState.adminShutdown);
      // The FATAL first; close() then cancels what runs on the servers and drops the socket.
      if (!s.client.destroyed) s.client.write(errorFor(errors.terminatedByAdmin(id)));
      s.close();
      return null;
    },
    // By name, as counted (a replica drained after a reload shares its namesake's row).
    stats: () => [...new Set(p.nodes.all.map((n) => n.endpoint.name))].map((node) => {
      const h = p.stats.durations.get(node);
      return { node, queries: h?.count ?? 0, totalTimeUs: (h?.sum ?? 0) * 1e6 };
    }),
    config: () => configRows(p.config()),
    setPaused: (paused) => {
      p.control.paused = paused;
      p.log.warn({}, paused ? 'paused by hand (admin console): new work waits' : 'resumed (admin console)');
      if (!paused) for (const s of p.sessions.values()) s.kick();
    },
    reload: () => p.reload(),
    pools: () => p.pools,
    setDisabled: (name, disabled) => {
      if (name === p.nodes.primary.endpoint.name) return `${name} is the primary; only replicas can be disabled`;
      const n = p.nodes.byName(name);
      if (!n) return `no replica named "${name}"`;
      n.disabled = disabled;
      p.log.warn({ node: name }, disabled ? 'replica disabled by hand (admin console)' : 'replica enabled by hand (admin console)');
      return null;
    },
  };
}
