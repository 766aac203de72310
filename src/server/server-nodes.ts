import type { ServerEndpoint } from '../config/config.js';
import type { ServerTarget } from './server-connection.js';

/** A configured server and what sessions know about it right now. */
export interface NodeEntry {
  readonly endpoint: ServerEndpoint;
  readonly role: 'primary' | 'replica';
  /** Sessions currently attached to this node as their replica. */
  sessions: number;
  /** Until this time (ms since epoch) the node is skipped after a failed connection attempt. */
  downUntil: number;
  /** Taken out by hand (admin) or by configuration; never chosen while set. */
  disabled: boolean;
}

/**
 * The primary and the replicas, and the choice of a replica for a session: the healthy replica with the
 * fewest attached sessions per unit of weight (ties by configuration order). A replica that refused a
 * connection is skipped for `retryAfterMs`; the replica-awareness work replaces this with a monitor.
 */
export class ServerNodes {
  readonly primary: NodeEntry;
  readonly replicas: NodeEntry[];
  private readonly retryAfterMs: number;

  constructor(primary: ServerEndpoint, replicas: ServerEndpoint[], opts: { retryAfterMs?: number } = {}) {
    this.primary = { endpoint: primary, role: 'primary', sessions: 0, downUntil: 0, disabled: false };
    this.replicas = replicas.map((endpoint) => ({ endpoint, role: 'replica' as const, sessions: 0, downUntil: 0, disabled: false }));
    this.retryAfterMs = opts.retryAfterMs ?? 2000;
  }

  /** Chooses a replica for a session, or null when none is usable. `exclude` lists names already tried. */
  pickReplica(exclude: ReadonlySet<string> = new Set()): NodeEntry | null {
    const now = Date.now();
    let best: NodeEntry | null = null;
    let bestScore = Infinity;
    for (const r of this.replicas) {
      if (r.disabled || r.downUntil > now || exclude.has(r.endpoint.name) || r.endpoint.weight <= 0) continue;
      const score = (r.sessions + 1) / r.endpoint.weight;
      if (score < bestScore) {
        best = r;
        bestScore = score;
      }
    }
    return best;
  }

  byName(name: string): NodeEntry | undefined {
    if (this.primary.endpoint.name === name) return this.primary;
    return this.replicas.find((r) => r.endpoint.name === name);
  }

  /** Records a failed connection attempt so other sessions skip the node for a while. */
  markDown(name: string): void {
    const n = this.byName(name);
    if (n && n.role === 'replica') n.downUntil = Date.now() + this.retryAfterMs;
  }

  /** Connection target for a node: host, port and the URL's credentials. */
  static target(n: NodeEntry): ServerTarget {
    const e = n.endpoint;
    return { name: e.name, host: e.host, port: e.port, user: e.user, password: e.password };
  }
}
