import type { DurationHistogram } from './duration-histogram.js';

/**
 * The proxy's plain counters: sessions bump them on the hot path (no label look-ups), and the metrics
 * registry, the admin console, the demo and the tests read them.
 */
export class ProxyStats {
  clientsAccepted = 0;
  clientsRejected = 0;
  /** Units a replica refused with 25006 and pgsplit re-ran on the primary. */
  rerunsOnPrimary = 0;
  /** Malformed pgsplit hint comments seen (ignored). */
  hintsMalformed = 0;
  /** Reads run again elsewhere because their replica failed before answering, by that replica. */
  readonly retriesByNode = new Map<string, number>();
  /** Units routed, by node, then by reason: the one record of routing (the totals below derive from it). */
  readonly routed = new Map<string, Map<string, number>>();
  /** Time from sending a unit to its ReadyForQuery, by node. */
  readonly durations = new Map<string, DurationHistogram>();
  /** Errors sent to clients, by SQLSTATE. */
  readonly errorsBySqlState = new Map<string, number>();
  /** Well-formed pgsplit hints seen. */
  hintsSeen = 0;
  /** Bytes from and to clients whose sessions have closed. */
  closedClientBytesIn = 0;
  closedClientBytesOut = 0;

  /** Counts one routed unit. */
  onRouted(node: string, reason: string): void {
    let byReason = this.routed.get(node);
    if (byReason === undefined) this.routed.set(node, (byReason = new Map()));
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }

  /** Units routed, by node name (a fresh map each call). */
  get routedByNode(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [node, byReason] of this.routed) {
      let n = 0;
      for (const v of byReason.values()) n += v;
      out.set(node, n);
    }
    return out;
  }

  /** Units routed, by reason (a fresh map each call). */
  get routedByReason(): Map<string, number> {
    const out = new Map<string, number>();
    for (const byReason of this.routed.values()) for (const [reason, v] of byReason) out.set(reason, (out.get(reason) ?? 0) + v);
    return out;
  }
}
