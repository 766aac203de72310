/**
 * Collects the byte ranges to forward and writes adjacent ones as one buffer: messages cut from the same
 * chunk sit next to each other in memory, so a run of DataRows becomes a single write without copying,
 * and a chunk forwarded whole is written as the chunk itself.
 */
export class FrameCoalescer {
  private parts: Buffer[] = [];
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;

  /** Adds bytes [start, end) of `buf`. */
  addRange(buf: Buffer, start: number, end: number): void {
    if (this.buf === buf && this.end === start) {
      this.end = end;
      return;
    }
    this.flush();
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  /** Adds a whole buffer (a copy or a view). */
  add(raw: Buffer): void {
    this.addRange(raw, 0, raw.length);
  }

  private flush(): void {
    const b = this.buf;
    if (b === null) return;
    this.parts.push(this.start === 0 && this.end === b.length ? b : b.subarray(this.start, this.end));
    this.buf = null;
  }

  /** True when nothing was added since the last take(). */
  get empty(): boolean {
    return this.buf === null && this.parts.length === 0;
  }

  /** Takes the collected buffers (empty when nothing was added). */
  take(): Buffer[] {
    this.flush();
    const out = this.parts;
    this.parts = [];
    return out;
  }
}
