import type { PgsplitConfig, ServerEndpoint } from '../config/config.js';
import type { NodeEntry } from '../server/server-nodes.js';

/**
 * What a reload changes, worked out before anything is touched: the configuration that will be in
 * force, the keys that changed, the keys whose new value waits for a restart, and what happens to each
 * replica.
 */
export interface ReloadPlan {
  /** The new configuration, with the restart-only keys kept at their running values. */
  config: PgsplitConfig;
  /** Dotted keys (as in the file) whose new value applies now. */
  changed: string[];
  /** Dotted keys changed in the file that only a restart applies (PostgreSQL's "pending restart"). */
  needsRestart: string[];
  /** Replicas staying: the same server and credentials (URL); name or weight may be new. */
  keep: Array<{ node: NodeEntry; endpoint: ServerEndpoint }>;
  /** Replicas to start using. */
  add: ServerEndpoint[];
  /** Replicas to drain and drop. */
  remove: NodeEntry[];
}

/**
 * Keys a running pgsplit cannot change: its listening sockets, and the primary (sessions hold
 * connections to it, and every read-your-writes position is one of its WAL positions).
 */
const RESTART_ONLY = ['listen', 'primary', 'metrics.listen'] as const;

/** routing.maxLagMs -> routing.max_lag: the file's spelling of a resolved key. */
function fileKey(section: string, key: string): string {
  return `${section}.${key.replace(/Ms$/, '').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function restartValue(c: PgsplitConfig, key: (typeof RESTART_ONLY)[number]): unknown {
  if (key === 'listen') return c.listen;
  if (key === 'primary') return { name: c.primary.name, url: c.primary.url };
  return c.metrics.listen;
}

/**
 * Plans a reload from `current` (in force) to `next` (just loaded and validated) for the replica
 * entries `running` (those not already retiring).
 *
 * A replica is the same one when its URL is the same (same server, same credentials): its sessions keep
 * their connections, and a new name or weight simply applies. Any other URL is a new replica, and a
 * running one whose URL is no longer listed is removed; so a changed password or port drains the old
 * connections and opens new ones, as PgBouncer does for a changed database entry.
 */
export function planReload(current: PgsplitConfig, next: PgsplitConfig, running: readonly NodeEntry[]): ReloadPlan {
  const needsRestart = RESTART_ONLY.filter((k) => !same(restartValue(current, k), restartValue(next, k)));
  const config: PgsplitConfig = { ...next, listen: current.listen, primary: current.primary, metrics: current.metrics };

  const changed: string[] = [];
  const single: Array<[string, (c: PgsplitConfig) => unknown]> = [
    ['users', (c) => c.users], ['auth.method', (c) => c.auth.method], ['admin.users', (c) => c.admin.users], ['log.level', (c) => c.log.level],
    ['tls', (c) => c.tls],
    // Server logins: decided when a client connects, so a change applies to the next connection.
    ['databases', (c) => c.databases],
  ];
  for (const [key, get] of single) if (!same(get(current), get(next))) changed.push(key);
  for (const section of ['routing', 'monitor', 'limits', 'pool'] as const) {
    const a = current[section] as Record<string, unknown>;
    const b = next[section] as Record<string, unknown>;
    for (const k of Object.keys(b)) if (!same(a[k], b[k])) changed.push(fileKey(section, k));
  }

  const keep: ReloadPlan['keep'] = [];
  const add: ServerEndpoint[] = [];
  const unmatched = new Set(running);
  for (const e of next.replicas) {
    const n = [...unmatched].find((r) => r.endpoint.url === e.url);
    if (n) {
      unmatched.delete(n);
      keep.push({ node: n, endpoint: e });
    } else add.push(e);
  }
  const remove = [...unmatched];
  if (add.length > 0 || remove.length > 0 || keep.some((k) => k.endpoint.name !== k.node.endpoint.name || k.endpoint.weight !== k.node.endpoint.weight)) {
    changed.push('replicas');
  }
  return { config, changed, needsRestart: [...needsRestart], keep, add, remove };
}
