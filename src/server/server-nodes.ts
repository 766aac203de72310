import type { ServerEndpoint } from '../config/config.js';
import type { ServerTarget } from './server-connection.js';

/** What the monitor last found about a server: 'unknown' until its first check. */
export type NodeHealth = 'unknown' | 'up' | 'down';

/** A configured server and what the monitor and the sessions know about it right now. */
export interface NodeEntry {
  /** Replaced by a reload only when nothing but its weight changed (same server, same credentials). */
  endpoint: ServerEndpoint;
  readonly role: 'primary' | 'replica';
  /** Where it is in the configuration, for messages: 'primary' or 'replicas[i]' (a reload may renumber it). */
  configKey: string;
  /** Sessions currently attached to this node as their replica. */
  sessions: number;
  /** Taken out by hand (admin) or by configuration; never chosen while set. */
  disabled: boolean;
  /**
   * Removed from the configuration by a reload: never chosen again; the sessions still using it finish
   * what runs there (a transaction, a statement) and let it go, then it leaves the list.
   */
  retiring: boolean;
  health: NodeHealth;
  /** Why the last check failed (null after a pass). */
  failReason: string | null;
  /** Checks passed in a row since the last failure (hysteresis: monitor.rise). */
  okStreak: number;
  /** pg_is_in_recovery() at the last check; null before one. */
  inRecovery: boolean | null;
  /** A replica found out of recovery: no reads go to it. */
  promoted: boolean;
  /** Replica: WAL received and replayed at the last check. */
  receivedLsn: bigint | null;
  replayedLsn: bigint | null;
}

/** What a read needs of a replica: lag at most `maxLagMs`, and (read-your-writes) replayed at least `minLsn`. */
export interface ReadRequirement {
  maxLagMs: number;
  minLsn: bigint | null;
}

/** Reports a replica's lag in ms at this moment (an upper bound), or null when unknown. */
export type LagSource = (n: NodeEntry) => number | null;

function entry(endpoint: ServerEndpoint, role: 'primary' | 'replica', configKey: string): NodeEntry {
  return {
    endpoint, role, configKey, sessions: 0, disabled: false, retiring: false, health: 'unknown', failReason: null, okStreak: 0,
    inRecovery: null, promoted: false, receivedLsn: null, replayedLsn: null,
  };
}

/**
 * The primary and the replicas, and the choice of a replica for a read.
 *
 * Eligible: not disabled, weight above 0, health 'up' (see ReplicaMonitor), in recovery, lag known and
 * within the read's bound, and replayed at least the read's minimum position. Unknown lag counts as too
 * much. Among eligible replicas the choice is the one with the fewest attached sessions per unit of
 * weight (ties by configuration order): sessions are long-lived and stay on their replica while it
 * remains eligible, so attached sessions are the outstanding work.
 */
export class ServerNodes {
  readonly primary: NodeEntry;
  /** Configuration order; a reload adds at the end and removes retired entries once drained. */
  readonly replicas: NodeEntry[];
  /** Set by the monitor; without one every replica's lag is unknown, so none is eligible. */
  lagOf: LagSource = () => null;

  /** The primary, then the replicas in configuration order. */
  get all(): NodeEntry[] {
    return [this.primary, ...this.replicas];
  }

  constructor(primary: ServerEndpoint, replicas: ServerEndpoint[]) {
    this.primary = entry(primary, 'primary', 'primary');
    this.replicas = replicas.map((r, i) => entry(r, 'replica', `replicas[${i}]`));
  }

  /** Why replica `n` cannot serve a read with requirement `req` now, or null when it can. */
  ineligibility(n: NodeEntry, req: ReadRequirement): 'removed' | 'disabled' | 'down' | 'not-in-recovery' | 'lag' | 'position' | null {
    if (n.retiring) return 'removed';
    if (n.disabled || n.endpoint.weight <= 0) return 'disabled';
    if (n.health !== 'up') return 'down';
    if (n.inRecovery !== true || n.promoted) return 'not-in-recovery';
    const lag = this.lagOf(n);
    if (lag === null || lag > req.maxLagMs) return 'lag';
    if (req.minLsn !== null && (n.replayedLsn === null || n.replayedLsn < req.minLsn)) return 'position';
    return null;
  }

  /**
   * Chooses a replica for a read, or null when none is eligible. `exclude` lists replicas already tried.
   * With `ignorePosition`, a replica that only lacks the minimum position counts (the caller waits for it).
   */
  pickReplica(req: ReadRequirement, exclude: ReadonlySet<NodeEntry> = new Set(), ignorePosition = false): NodeEntry | null {
    let best: NodeEntry | null = null;
    let bestScore = Infinity;
    for (const r of this.replicas) {
      if (exclude.has(r)) continue;
      const why = this.ineligibility(r, req);
      if (why !== null && !(ignorePosition && why === 'position')) continue;
      const score = (r.sessions + 1) / r.endpoint.weight;
      if (score < bestScore) {
        best = r;
        bestScore = score;
      }
    }
    return best;
  }

  /** The node in service under that name (a retiring namesake of a replaced replica is not returned). */
  byName(name: string): NodeEntry | undefined {
    if (this.primary.endpoint.name === name) return this.primary;
    return this.replicas.find((r) => r.endpoint.name === name && !r.retiring);
  }

  /** A replica added by a reload; it serves reads once the monitor has checked it. */
  addReplica(endpoint: ServerEndpoint, configKey: string): NodeEntry {
    const n = entry(endpoint, 'replica', configKey);
    this.replicas.push(n);
    return n;
  }

  /** Drops a retired replica from the list (once nothing uses it any more). */
  removeReplica(n: NodeEntry): void {
    const i = this.replicas.indexOf(n);
    if (i >= 0) this.replicas.splice(i, 1);
  }

  /** Connection target for a node: host, port and the URL's credentials. */
  static target(n: NodeEntry): ServerTarget {
    const e = n.endpoint;
    return { name: e.name, configKey: n.configKey, host: e.host, port: e.port, user: e.user, password: e.password, tls: e.tls };
  }
}
