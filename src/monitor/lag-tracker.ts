import { lsnBytesBehind } from './lsn.js';

/**
 * Replication lag in time, measured without comparing clocks and correct on an idle primary.
 *
 * The method: the monitor records the primary's WAL position and the local time it saw it, often
 * (monitor.lag_interval): a history with one entry per position, holding the first and the last time the
 * primary was seen at it. A replica that has replayed up to position R holds everything the primary had
 * written by the moment the primary reached R. That moment lies between the last time the primary was
 * seen at or before R and the first time it was seen past R; it is placed in between in proportion to the
 * bytes (the primary writes at a steady rate over one short sampling gap), and the lag is `now` minus
 * that moment: how long ago the primary was where the replica is now. When R has reached the primary's
 * latest recorded position the lag is 0.
 *
 * Error: within one sampling gap either way for the moment the primary passed R (the bytes need not
 * have come at a steady rate), plus how old the replica's own position is (it may have replayed more
 * since), so about one monitor.lag_interval. A replica that reached the latest position counts as
 * current although the primary may have moved on since that sample (again at most one gap). Only local
 * monotonic time is used: no clock on the servers is read, so skew between machines does not matter.
 *
 * `pg_last_xact_replay_timestamp()` is not used: on an idle primary `now() - replay_timestamp` grows
 * without bound although the replica is current, and it compares two machines' clocks.
 */
export class LagTracker {
  /** For each recorded position, the last local time the primary was seen at it. */
  private readonly seenUntil: number[] = [];
  private readonly positions: bigint[] = [];
  private readonly maxSamples: number;
  private minSpacingMs: number;
  /** For each recorded position, the first local time the primary was seen at it. */
  private readonly firstSeen: number[] = [];
  /** Local time of the latest primary sample, even when its position had not changed. */
  private lastSeenAt = -Infinity;

  /**
   * `maxSamples` bounds the history (one entry per position change): when it is full, every second entry
   * of its older half goes, so the history keeps its whole span with a coarser grain for old positions
   * (a large lag is known less finely, a small one as finely as it was sampled).
   * `minSpacingMs`: a new position seen less than this after the last entry began replaces that entry's
   * position instead of adding one, so that positions asked for very often do not fill the history.
   */
  constructor(opts: { maxSamples?: number; minSpacingMs?: number } = {}) {
    this.maxSamples = Math.max(4, opts.maxSamples ?? 8192);
    this.minSpacingMs = opts.minSpacingMs ?? 0;
  }

  /** A new minSpacingMs (a reload changed the sampling interval); entries kept stay as they are. */
  setMinSpacing(ms: number): void {
    this.minSpacingMs = ms;
  }

  /** Records the primary's WAL position `lsn` as seen at local time `at` (ms, monotonic). */
  recordPrimary(lsn: bigint, at: number): void {
    const n = this.positions.length;
    if (at > this.lastSeenAt) this.lastSeenAt = at;
    if (n > 0 && lsn <= this.positions[n - 1]!) {
      // Idle (or an answer that raced a newer one): the primary is still where it was.
      if (lsn === this.positions[n - 1]! && at > this.seenUntil[n - 1]!) this.seenUntil[n - 1] = at;
      return;
    }
    if (n > 1 && at - this.firstSeen[n - 1]! < this.minSpacingMs) {
      this.positions[n - 1] = lsn;
      this.seenUntil[n - 1] = at;
      return;
    }
    this.positions.push(lsn);
    this.seenUntil.push(at);
    this.firstSeen.push(at);
    if (this.positions.length > this.maxSamples) this.thin();
  }

  /** Drops every second entry of the older half (amortised O(1) per sample: a quarter of the entries go). */
  private thin(): void {
    const half = Math.floor(this.positions.length / 2);
    let w = 0;
    for (let r = 0; r < this.positions.length; r++) {
      // Keep the first entry (the oldest known position), the odd ones of the older half, all of the newer.
      if (r < half && r > 0 && r % 2 === 0) continue;
      this.positions[w] = this.positions[r]!;
      this.seenUntil[w] = this.seenUntil[r]!;
      this.firstSeen[w] = this.firstSeen[r]!;
      w++;
    }
    this.positions.length = w;
    this.seenUntil.length = w;
    this.firstSeen.length = w;
  }

  /** Entries in the history (at most maxSamples). */
  get size(): number {
    return this.positions.length;
  }

  /** The primary's latest recorded position, or null before the first sample. */
  get primaryLsn(): bigint | null {
    const n = this.positions.length;
    return n > 0 ? this.positions[n - 1]! : null;
  }

  /** Local time of the latest primary sample (-Infinity before the first). */
  get primarySampledAt(): number {
    return this.lastSeenAt;
  }

  /** Bytes the replica at `replayed` is behind the primary's latest recorded position, or null if unknown. */
  bytesBehind(replayed: bigint): number | null {
    const p = this.primaryLsn;
    return p === null ? null : lsnBytesBehind(p, replayed);
  }

  /**
   * How long ago (ms, at local time `now`) the primary was where a replica that replayed up to
   * `replayed` is now; 0 when it has replayed the latest recorded position; null when unknown (no
   * primary sample yet, or the position is older than the history kept).
   */
  timeLag(replayed: bigint, now: number): number | null {
    const n = this.positions.length;
    if (n === 0) return null;
    if (replayed >= this.positions[n - 1]!) return 0;
    if (this.positions[0]! > replayed) return null;
    // Latest entry whose position is <= replayed (binary search: positions increase); lo < n - 1.
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.positions[mid]! <= replayed) lo = mid;
      else hi = mid - 1;
    }
    // The primary passed `replayed` after it was last seen at entry lo and before it was first seen at lo + 1.
    const from = this.seenUntil[lo]!;
    const to = Math.max(from, this.firstSeen[lo + 1]!);
    const share = Number(replayed - this.positions[lo]!) / Number(this.positions[lo + 1]! - this.positions[lo]!);
    return Math.max(0, now - (from + (to - from) * share));
  }
}
