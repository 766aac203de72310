/**
 * Collects frames to forward and writes adjacent ones as one buffer: frames cut from the same chunk sit
 * next to each other in memory, so a run of DataRows becomes a single write without copying.
 */
export class FrameCoalescer {
  private parts: Buffer[] = [];
  private run: Buffer | null = null;

  add(raw: Buffer): void {
    const r = this.run;
    if (r !== null && r.buffer === raw.buffer && r.byteOffset + r.length === raw.byteOffset) {
      this.run = Buffer.from(r.buffer, r.byteOffset, r.length + raw.length);
      return;
    }
    if (r !== null) this.parts.push(r);
    this.run = raw;
  }

  /** Takes the collected buffers (empty when nothing was added). */
  take(): Buffer[] {
    if (this.run !== null) this.parts.push(this.run);
    const out = this.parts;
    this.parts = [];
    this.run = null;
    return out;
  }
}
