/**
 * Statement durations in fixed Prometheus buckets, counted with a plain array on the hot path (no label
 * look-ups per observation); exported as a histogram when scraped.
 */
export class DurationHistogram {
  /** Upper bounds in seconds (le), without +Inf. */
  static readonly BOUNDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly counts = new Float64Array(DurationHistogram.BOUNDS.length + 1);
  sum = 0;
  count = 0;

  /** Records one duration given in milliseconds. */
  observe(ms: number): void {
    const s = ms / 1000;
    const b = DurationHistogram.BOUNDS;
    let i = 0;
    while (i < b.length && s > (b[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += s;
    this.count++;
  }
}
