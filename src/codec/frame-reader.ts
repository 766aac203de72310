import { errors } from '../errors.js';

/** One protocol message: `raw` is the whole message (type byte and length included), `payload` the body. */
export interface Frame {
  /** Message type byte, or 0 for the untyped startup-phase messages. */
  readonly type: number;
  readonly payload: Buffer;
  readonly raw: Buffer;
}

/**
 * Splits a byte stream into PostgreSQL messages by type and length only. Bodies are never copied when a
 * message arrives within one chunk (frames are views into the chunk), so result rows pass through without
 * being parsed; only a message split across chunks is assembled. The declared length is checked against
 * `maxMessageSize` before anything is buffered, so a client cannot make pgsplit hold a huge message.
 */
export class FrameReader {
  private pending: Buffer | null = null;
  /** True while reading untyped startup messages (length first, no type byte). */
  startupPhase: boolean;
  private readonly maxMessageSize: number;

  constructor(opts: { maxMessageSize: number; startupPhase?: boolean }) {
    this.maxMessageSize = opts.maxMessageSize;
    this.startupPhase = opts.startupPhase ?? false;
  }

  /** Bytes held back waiting for the rest of a message. */
  get bufferedBytes(): number {
    return this.pending?.length ?? 0;
  }

  /**
   * Returns the complete frames in `chunk` (plus any held-back prefix). Throws a PgsplitError for a
   * length that is impossible or over the limit; the caller answers with it and closes.
   */
  push(chunk: Buffer): Frame[] {
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    const frames: Frame[] = [];
    let off = 0;
    const n = buf.length;
    while (off < n) {
      if (this.startupPhase) {
        if (n - off < 4) break;
        const len = buf.readInt32BE(off);
        if (len < 8 || len > 10000) throw errors.startupTooShort(len);
        if (n - off < len) break;
        frames.push({ type: 0, payload: buf.subarray(off + 4, off + len), raw: buf.subarray(off, off + len) });
        off += len;
        // Only one startup-phase message is read at a time: the caller decides whether the next is typed.
        break;
      }
      if (n - off < 5) break;
      const type = buf[off] as number;
      const len = buf.readInt32BE(off + 1);
      if (len < 4) throw errors.invalidMessageLength(String.fromCharCode(type), len);
      if (len > this.maxMessageSize) throw errors.messageTooLarge(String.fromCharCode(type), len + 1, this.maxMessageSize);
      const end = off + 1 + len;
      if (end > n) break;
      frames.push({ type, payload: buf.subarray(off + 5, end), raw: buf.subarray(off, end) });
      off = end;
    }
    if (off < n) this.pending = off === 0 ? Buffer.from(buf) : Buffer.from(buf.subarray(off));
    return frames;
  }

  /** Take back any bytes not yet framed (used when switching from startup to typed phase mid-chunk). */
  drain(): Buffer | null {
    const p = this.pending;
    this.pending = null;
    return p;
  }
}
