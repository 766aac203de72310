import type { ReplicaMonitor } from '../monitor/replica-monitor.js';
import type { NodeEntry, ServerNodes } from '../server/server-nodes.js';
import type { Session } from '../session/session.js';

/** One server as the metrics and the admin console show it. */
export interface NodeSnapshot {
  node: NodeEntry;
  /** 'disabled' (by hand), 'draining' (removed by a reload, still in use), else the monitor's health. */
  state: string;
  lagMs: number | null;
  lagBytes: number | null;
}

/** One server connection of one client session. */
export interface ServerLinkView {
  node: NodeEntry;
  busy: boolean;
  backendPid: number;
  /** The session's id. */
  client: number;
}

/**
 * The servers and the sessions' server connections, read when the metrics are scraped or the admin
 * console asks: one reading for both, so that they never disagree on a server's state.
 */
export class ServerView {
  constructor(
    private readonly nodes: ServerNodes,
    private readonly monitor: ReplicaMonitor,
    private readonly sessions: ReadonlyMap<number, Session>,
  ) {}

  /** Every server with what the monitor knows of it. */
  nodeSnapshots(): NodeSnapshot[] {
    return this.nodes.all.map((node) => {
      const replica = node.role === 'replica';
      return {
        node,
        state: node.retiring ? 'draining' : node.disabled ? 'disabled' : node.health,
        lagMs: replica ? this.monitor.lagMs(node) : null,
        lagBytes: replica ? this.monitor.lagBytes(node) : null,
      };
    });
  }

  /** Every server connection of every session. */
  serverLinks(): ServerLinkView[] {
    return [...this.sessions.values()].flatMap((s) => s.serverLinks().map((l) => ({ ...l, client: s.id })));
  }
}
