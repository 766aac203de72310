import type { Logger } from '../log/logger.js';
import type { ReplicaMonitor } from '../monitor/replica-monitor.js';
import type { ServerNodes } from '../server/server-nodes.js';
import type { Session } from '../session/session.js';

/**
 * Replicas removed by a reload stay in the node list, marked retiring, while sessions still use them
 * (a statement or a transaction runs there); this drops each one once none does.
 */
export class RetireSweep {
  /** Runs while removed replicas still have sessions on them. */
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly nodes: ServerNodes,
    private readonly monitor: ReplicaMonitor,
    private readonly sessions: ReadonlyMap<number, Session>,
    private readonly log: Logger,
    private readonly isClosed: () => boolean,
  ) {}

  /** Drops retiring replicas no session uses; checks again every 100 ms while some still are in use. */
  sweep(): void {
    for (const n of [...this.nodes.replicas]) {
      if (!n.retiring) continue;
      let used = false;
      for (const s of this.sessions.values()) if (s.uses(n)) used = true;
      if (used) continue;
      this.nodes.removeReplica(n);
      this.monitor.removeNode(n);
      this.log.info({ node: n.endpoint.name }, 'removed replica drained: no session uses it any more');
    }
    const waiting = this.nodes.replicas.some((r) => r.retiring);
    if (waiting && this.timer === null && !this.isClosed()) {
      this.timer = setInterval(() => this.sweep(), 100);
      this.timer.unref();
    } else if (!waiting && this.timer !== null) {
      this.stop();
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
