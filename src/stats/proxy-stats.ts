import type { PoolKey } from '../pool/server-pool.js';
import type { SessionEvents } from '../session/session-events.js';
import { DurationHistogram } from './duration-histogram.js';

/**
 * The proxy's plain counters: sessions bump them on the hot path (no label look-ups) through the
 * SessionEvents methods, and the metrics registry, the admin console, the demo and the tests read them.
 */
export class ProxyStats implements SessionEvents {
  clientsAccepted = 0;
  clientsRejected = 0;
  /** Units a replica refused with 25006 and pgsplit re-ran on the primary. */
  rerunsOnPrimary = 0;
  /** Read-your-writes guards ahead of replica reads, by result (see SessionEvents.guard). */
  readonly guards = { passed: 0, behind: 0, refused: 0 };
  /** Malformed pgsplit hint comments seen (ignored). */
  hintsMalformed = 0;
  /** Reads run again elsewhere because their replica failed before answering, by that replica. */
  readonly retriesByNode = new Map<string, number>();
  /** Units routed, by node, then by reason: the one record of routing (the totals below derive from it). */
  readonly routedUnits = new Map<string, Map<string, number>>();
  /** Time from sending a unit to its ReadyForQuery, by node. */
  readonly durations = new Map<string, DurationHistogram>();
  /** Errors sent to clients, by SQLSTATE. */
  readonly errorsBySqlState = new Map<string, number>();
  /** Well-formed pgsplit hints seen. */
  hintsSeen = 0;
  /** Bytes from and to clients whose sessions have closed. */
  closedClientBytesIn = 0;
  closedClientBytesOut = 0;
  /**
   * How long clients waited for a pooled server connection, by node (with its role): by node and not by
   * pool, so that the histogram's series stay few (a pool is a node × database × user).
   */
  readonly poolWaits = new Map<string, { role: PoolKey['role']; h: DurationHistogram }>();
  /** Sessions that kept their pooled connection past a transaction's end, by reason. */
  readonly pinsByReason = new Map<string, number>();

  /** Every unit routed so far, all nodes and reasons (summed when asked: nothing more on the hot path). */
  unitsRouted(): number {
    let n = 0;
    for (const byReason of this.routedUnits.values()) for (const c of byReason.values()) n += c;
    return n;
  }

  // SessionEvents: what sessions report, counted.

  routed(node: string, reason: string): void {
    let byReason = this.routedUnits.get(node);
    if (byReason === undefined) this.routedUnits.set(node, (byReason = new Map()));
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }

  retry(node: string): void {
    this.retriesByNode.set(node, (this.retriesByNode.get(node) ?? 0) + 1);
  }

  rerun(): void {
    this.rerunsOnPrimary++;
  }

  guard(result: 'passed' | 'behind' | 'refused'): void {
    this.guards[result]++;
  }

  hints(count: number): void {
    this.hintsSeen += count;
  }

  malformedHints(count: number): void {
    this.hintsMalformed += count;
  }

  unitDone(node: string, ms: number): void {
    let h = this.durations.get(node);
    if (h === undefined) this.durations.set(node, (h = new DurationHistogram()));
    h.observe(ms);
  }

  error(sqlState: string): void {
    this.errorsBySqlState.set(sqlState, (this.errorsBySqlState.get(sqlState) ?? 0) + 1);
  }

  pinned(reason: string): void {
    this.pinsByReason.set(reason, (this.pinsByReason.get(reason) ?? 0) + 1);
  }

  /** A pool handed out a lease after `ms` of waiting (PoolRegistry.onWaited). */
  poolWaited(key: PoolKey, ms: number): void {
    let w = this.poolWaits.get(key.node);
    if (w === undefined) this.poolWaits.set(key.node, (w = { role: key.role, h: new DurationHistogram() }));
    w.h.observe(ms);
  }

  /** Units routed, by node name (a fresh map each call). */
  get routedByNode(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [node, byReason] of this.routedUnits) {
      let n = 0;
      for (const v of byReason.values()) n += v;
      out.set(node, n);
    }
    return out;
  }

  /** Units routed, by reason (a fresh map each call). */
  get routedByReason(): Map<string, number> {
    const out = new Map<string, number>();
    for (const byReason of this.routedUnits.values()) for (const [reason, v] of byReason) out.set(reason, (out.get(reason) ?? 0) + v);
    return out;
  }
}
