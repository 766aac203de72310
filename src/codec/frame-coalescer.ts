/**
 * Collects the bytes to forward and writes adjacent ones as one buffer: messages cut from the same chunk
 * sit next to each other in memory, so a run of DataRows (or a held-back RowDescription followed by its
 * rows) becomes a single write without copying, and a chunk forwarded whole is written as the chunk itself.
 * Adjacency is judged by memory (same ArrayBuffer, consecutive offsets), so merging is always exact.
 */
export class FrameCoalescer {
  private parts: Buffer[] = [];
  /** The current run: bytes [from, to) of the memory under `owner` (absolute offsets). */
  private owner: Buffer | null = null;
  /** owner.buffer, read only when needed: reading a view's ArrayBuffer is a call into the runtime. */
  private memory: ArrayBufferLike | null = null;
  private from = 0;
  private to = 0;

  /** Adds bytes [start, end) of `buf`. */
  addRange(buf: Buffer, start: number, end: number): void {
    const o = this.owner;
    if (o !== null) {
      const at = buf.byteOffset + start;
      // The same view (the relay's chunk, a client chunk's frames): adjacency is a matter of offsets.
      if (this.to === at && (o === buf || (this.memory ??= o.buffer) === buf.buffer)) {
        this.to = buf.byteOffset + end;
        return;
      }
    }
    this.flush();
    this.owner = buf;
    this.memory = null;
    this.from = buf.byteOffset + start;
    this.to = buf.byteOffset + end;
  }

  /** Adds a whole buffer (a copy or a view). */
  add(raw: Buffer): void {
    this.addRange(raw, 0, raw.length);
  }

  private flush(): void {
    const o = this.owner;
    if (o === null) return;
    this.parts.push(this.from === o.byteOffset && this.to === o.byteOffset + o.length ? o : Buffer.from(this.memory ?? o.buffer, this.from, this.to - this.from));
    this.owner = null;
    this.memory = null;
  }

  /**
   * Forgets anything collected and not taken. A coalescer shared by every session (one thread: see
   * ResponseRelay.onServerData and server-writes' send) starts each use with this, so that nothing one
   * use left behind, even after an exception, can reach another's output.
   */
  reset(): this {
    this.parts.length = 0;
    this.owner = null;
    this.memory = null;
    return this;
  }

  /** Takes the collected buffers (empty when nothing was added). */
  take(): Buffer[] {
    this.flush();
    const out = this.parts;
    this.parts = [];
    return out;
  }
}
