import { lsnBytesBehind } from './lsn.js';

/**
 * Replication lag in time, measured without comparing clocks and correct on an idle primary.
 *
 * The method: the monitor records, at each sample, the primary's WAL position and the local time it saw
 * it: a history with one entry per position, holding the last time the primary was seen at it. A replica
 * that has replayed up to position R holds everything the primary had written at any moment the primary
 * was at or before R. The latest such recorded moment t is found in the history, and the lag is
 * `now - t`: how long ago the primary was where the replica is now. When R has reached the primary's
 * latest recorded position the lag is 0.
 *
 * Error: the lag is an upper bound. The primary passed R somewhere between the sample at t and the next
 * one, so the reported lag exceeds the true staleness by at most one sampling interval plus the time a
 * sample takes; and a replica that reached the latest position counts as current although the primary
 * may have moved on since that sample (again at most one interval). Only local monotonic time is used:
 * no clock on the servers is read, so skew between machines does not matter.
 *
 * `pg_last_xact_replay_timestamp()` is not used: on an idle primary `now() - replay_timestamp` grows
 * without bound although the replica is current, and it compares two machines' clocks.
 */
export class LagTracker {
  /** For each recorded position, the last local time the primary was seen at it. */
  private readonly seenUntil: number[] = [];
  private readonly positions: bigint[] = [];
  private readonly maxSamples: number;
  private readonly minSpacingMs: number;
  /** For each recorded position, the first local time the primary was seen at it (for spacing). */
  private readonly firstSeen: number[] = [];
  /** Local time of the latest primary sample, even when its position had not changed. */
  private lastSeenAt = -Infinity;

  /**
   * `maxSamples` bounds the history (one entry per position change); older positions become "unknown".
   * `minSpacingMs`: a new position seen less than this after the last entry began replaces that entry's
   * position instead of adding one, so the history spans at least maxSamples * minSpacingMs however
   * often positions are recorded. A replica between the two positions then counts from the entry
   * before: still an upper bound, over by at most minSpacingMs more.
   */
  constructor(opts: { maxSamples?: number; minSpacingMs?: number } = {}) {
    this.maxSamples = opts.maxSamples ?? 8192;
    this.minSpacingMs = opts.minSpacingMs ?? 0;
  }

  /** Records the primary's WAL position `lsn` as seen at local time `at` (ms, monotonic). */
  recordPrimary(lsn: bigint, at: number): void {
    const n = this.positions.length;
    this.lastSeenAt = at;
    if (n > 0 && lsn <= this.positions[n - 1]!) {
      // Idle (or an answer that raced a newer one): the primary is still where it was.
      if (lsn === this.positions[n - 1]!) this.seenUntil[n - 1] = at;
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
    if (this.positions.length > this.maxSamples) {
      // Drop the oldest half at once: amortised O(1) per sample.
      const drop = this.positions.length - Math.floor(this.maxSamples / 2);
      this.positions.splice(0, drop);
      this.seenUntil.splice(0, drop);
      this.firstSeen.splice(0, drop);
    }
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
    // Latest sample whose position is <= replayed (binary search: positions increase).
    let lo = 0;
    let hi = n - 1;
    if (this.positions[0]! > replayed) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.positions[mid]! <= replayed) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(0, now - this.seenUntil[lo]!);
  }
}
