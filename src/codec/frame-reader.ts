import { errors } from '../errors.js';
import type { BindFields, ParseFields } from './message-fields.js';

/** One protocol message: `raw` is the whole message (type byte and length included), `payload` the body. */
export interface Frame {
  /** Message type byte, or 0 for the untyped startup-phase messages. */
  readonly type: number;
  readonly payload: Buffer;
  readonly raw: Buffer;
  /**
   * A Parse's or Bind's fields once read (see parseOf / bindOf in message-fields.ts): the client reader,
   * the router and the request writer each need them, and the message is decoded once.
   */
  memo?: ParseFields | BindFields | null;
}

/**
 * Splits a byte stream into PostgreSQL messages by type and length only. Bodies are never copied when a
 * message arrives within one chunk, so result rows pass through without being parsed; only a message
 * split across chunks is assembled. The declared length is checked against `maxMessageSize` before
 * anything is buffered, so a client cannot make pgsplit hold a huge message.
 *
 * Two ways to read: {@link push} returns Frame objects (views into the chunk), for the few messages
 * whose bodies matter; the cursor ({@link feed}, then {@link next} until it returns -1) allocates
 * nothing per message, for the relay path where most messages are forwarded by position alone.
 */
export class FrameReader {
  /** A short incomplete prefix (less than a header, or a startup-phase message). */
  private pending: Buffer | null = null;
  /**
   * A typed message whose header has arrived but not all of its body: its bytes so far, in a buffer that
   * doubles as they come (copying each byte O(1) times, where concatenating per chunk was quadratic),
   * never larger than twice what arrived (a declared length alone reserves nothing).
   */
  private partial: Buffer | null = null;
  private partialFilled = 0;
  private partialTotal = 0;
  /** True while reading untyped startup messages (length first, no type byte). */
  startupPhase: boolean;
  private readonly maxMessageSize: number;
  /** Cursor state: the buffer being read, and where the message last returned by next() lies in it. */
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;

  constructor(opts: { maxMessageSize: number; startupPhase?: boolean }) {
    this.maxMessageSize = opts.maxMessageSize;
    this.startupPhase = opts.startupPhase ?? false;
  }

  /** Bytes held back waiting for the rest of a message. */
  get bufferedBytes(): number {
    return this.pending?.length ?? this.partialFilled;
  }

  /** Starts reading `chunk` (after any held-back prefix) with the cursor. */
  feed(chunk: Buffer): void {
    if (this.partial !== null) {
      const need = this.partialTotal - this.partialFilled;
      const take = Math.min(need, chunk.length);
      if (this.partialFilled + take > this.partial.length) {
        const grown = Buffer.allocUnsafe(Math.min(this.partialTotal, Math.max(this.partial.length * 2, this.partialFilled + take)));
        this.partial.copy(grown, 0, 0, this.partialFilled);
        this.partial = grown;
      }
      chunk.copy(this.partial, this.partialFilled, 0, take);
      this.partialFilled += take;
      if (this.partialFilled < this.partialTotal) {
        this.buf = EMPTY;
      } else {
        // Complete: the message, then whatever followed it in this chunk.
        const whole = this.partial;
        this.partial = null;
        this.partialFilled = 0;
        this.buf = take === chunk.length ? whole : Buffer.concat([whole, chunk.subarray(take)]);
      }
    } else if (this.pending !== null) {
      this.buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    } else {
      this.buf = chunk;
    }
    this.start = 0;
    this.end = 0;
  }

  /**
   * Advances to the next complete message of the fed chunk and returns its type byte (0 in the startup
   * phase), or -1 when no complete message is left; the incomplete rest is then kept for the next feed.
   * The message lies at [start, end) in `buf`. Throws a PgsplitError for a length that is impossible or
   * over the limit; the caller answers with it and closes.
   */
  next(): number {
    const buf = this.buf;
    const off = this.end;
    const n = buf.length;
    if (this.startupPhase) {
      // Only one startup-phase message is read at a time: the caller decides whether the next is typed.
      if (off === 0 && n >= 4) {
        const len = buf.readInt32BE(0);
        if (len < 8 || len > 10000) throw errors.startupTooShort(len);
        if (n >= len) {
          this.start = 0;
          this.end = len;
          return 0;
        }
      }
      return this.stop(off);
    }
    if (n - off < 5) return this.stop(off);
    const type = buf[off] as number;
    const len = buf.readInt32BE(off + 1);
    if (len < 4) throw errors.invalidMessageLength(String.fromCharCode(type), len);
    if (len > this.maxMessageSize) throw errors.messageTooLarge(String.fromCharCode(type), len + 1, this.maxMessageSize);
    const end = off + 1 + len;
    if (end > n) return this.stop(off);
    this.start = off;
    this.end = end;
    return type;
  }

  private stop(off: number): number {
    const buf = this.buf;
    const rest = buf.length - off;
    if (!this.startupPhase && rest >= 5) {
      // The header is here (its length already checked by next()): gather the body as it comes.
      this.partialTotal = 1 + buf.readInt32BE(off + 1);
      this.partial = Buffer.allocUnsafe(Math.min(this.partialTotal, Math.max(64 * 1024, rest)));
      buf.copy(this.partial, 0, off);
      this.partialFilled = rest;
    } else if (rest > 0) this.pending = off === 0 ? Buffer.from(buf) : Buffer.from(buf.subarray(off));
    this.buf = EMPTY;
    this.start = 0;
    this.end = 0;
    return -1;
  }

  /** The message the cursor is on, as a Frame (views into the chunk, no copy). */
  frame(type: number): Frame {
    return new ChunkFrame(type, this.buf, this.start, this.end, this.startupPhase ? 4 : 5);
  }

  /** Returns the complete frames in `chunk` (plus any held-back prefix); throws as {@link next} does. */
  push(chunk: Buffer): Frame[] {
    this.feed(chunk);
    const frames: Frame[] = [];
    for (let t = this.next(); t >= 0; t = this.startupPhase ? -1 : this.next()) frames.push(this.frame(t));
    if (this.startupPhase && this.buf !== EMPTY) this.stop(this.end);
    return frames;
  }

  /** Take back any bytes not yet framed (used when switching from startup to typed phase mid-chunk). */
  drain(): Buffer | null {
    const p = this.pending ?? (this.partial !== null ? this.partial.subarray(0, this.partialFilled) : null);
    this.pending = null;
    this.partial = null;
    this.partialFilled = 0;
    return p;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * A Frame read from a chunk. Its views are made when first asked for: most messages are forwarded by
 * their offsets in the chunk (FrameCoalescer.addRange) and never looked into (Describe, Execute, Sync;
 * ParseComplete, BindComplete), and each view is an object of its own.
 */
export class ChunkFrame implements Frame {
  readonly type: number;
  /** The chunk the message was read from, and where it lies there: a FrameCoalescer joins a chunk's frames by offsets alone. */
  readonly chunk: Buffer;
  readonly start: number;
  readonly end: number;
  memo: ParseFields | BindFields | null | undefined = undefined;
  private readonly header: number;
  private whole: Buffer | undefined = undefined;
  private body: Buffer | undefined = undefined;

  constructor(type: number, chunk: Buffer, start: number, end: number, header: number) {
    this.type = type;
    this.chunk = chunk;
    this.start = start;
    this.end = end;
    this.header = header;
  }

  get raw(): Buffer {
    return (this.whole ??= this.chunk.subarray(this.start, this.end));
  }

  get payload(): Buffer {
    return (this.body ??= this.chunk.subarray(this.start + this.header, this.end));
  }
}

/** A frame's length in bytes, type and length included, without making a view of it. */
export function frameSize(f: Frame): number {
  return f instanceof ChunkFrame ? f.end - f.start : f.raw.length;
}
