import { FrameReader, frameSize, type Frame } from '../codec/frame-reader.js';
import { Frontend, typeChar } from '../codec/message-types.js';
import { parseOf, readQuery, type ParseFields } from '../codec/message-fields.js';
import { PgsplitError, errors } from '../errors.js';
import { LocalStatements } from './extended-local.js';
import { parseLocalCommand } from './local-command.js';
import { unit, type Unit } from './unit.js';

/** The client socket as the reader uses it: reading stops and starts (net.Socket). */
export interface ClientInput {
  pause(): void;
  resume(): void;
}

/**
 * Whom the reader reports to (the session): `fatal`, the client sent what ends the session (a malformed or
 * unknown message); `serving`, the session still serves the client (a drained server does not resume
 * reading a closed one). An object rather than two callbacks: no closures per idle session.
 */
export interface ReaderOwner {
  fatal(e: PgsplitError): void;
  readonly serving: boolean;
}

/** A server socket the session wrote to: its 'drain' lets the client be read again. */
export interface DrainingSocket {
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * The reading half of a session: the client's bytes cut into frames and grouped into units (one simple
 * Query, an extended batch up to Sync or Flush, a FunctionCall, a COPY message, a Terminate, a statement
 * pgsplit answers itself), queued in order until the session sends them. After an error in an extended
 * batch it drops what the client sends up to its Sync, as a server does.
 *
 * Backpressure: the client is not read while the queue holds more than `limits.max_pending_bytes`
 * (again below a quarter of it), nor while a server the session wrote to has not taken it all.
 */
export class ClientReader {
  private readonly frames: FrameReader;
  private readonly units: Unit[] = [];
  /** The extended batch being built: frames since the last Sync, Flush or message of its own. */
  private building: Unit | null = null;
  /** Dropping the client's messages up to its next Sync (after an error in an extended batch). */
  private discarding = false;
  private queuedBytes = 0;
  private pausedForQueue = false;
  /** Server sockets written to that have not drained yet. */
  private pausedForServers = 0;
  /** The client's statement and portal names that hold pgsplit's own statements (extended protocol). */
  private readonly localStatements = new LocalStatements();
  /** The client's last Parse (see recallParse); null until its first one. */
  private lastParse: { body: Buffer; fields: ParseFields } | null = null;
  private readonly client: ClientInput;
  /** Read at each use: a reload changes limits.max_pending_bytes for running sessions too. */
  private readonly limits: { readonly maxPendingBytes: number };
  private readonly owner: ReaderOwner;

  /**
   * `limits`: the session's context (limits.max_message_size is taken once, max_pending_bytes at each
   * use); `owner`: see ReaderOwner.
   */
  constructor(client: ClientInput, limits: { readonly maxMessageSize: number; readonly maxPendingBytes: number }, owner: ReaderOwner) {
    this.client = client;
    this.frames = new FrameReader({ maxMessageSize: limits.maxMessageSize });
    this.limits = limits;
    this.owner = owner;
  }

  /** The oldest unit not yet sent. */
  get head(): Unit | undefined {
    return this.units[0];
  }

  /** Units waiting to be sent. */
  get length(): number {
    return this.units.length;
  }

  /** Reading is paused because the queue is full (the session starts reading only if it is not). */
  get full(): boolean {
    return this.pausedForQueue;
  }

  /** Takes in a chunk of client bytes; false when it ended the session (`fatal` was called). */
  read(chunk: Buffer): boolean {
    let frames: Frame[];
    try {
      frames = this.frames.push(chunk);
    } catch (e) {
      this.owner.fatal(e instanceof PgsplitError ? e : errors.internal(String(e)));
      return false;
    }
    for (const f of frames) {
      if (!this.acceptFrame(f)) return false;
    }
    return true;
  }

  /** The head unit was sent (or dropped): reading resumes once the queue is down to a quarter of the limit. */
  shift(): void {
    const u = this.units.shift();
    if (u) this.queuedBytes -= u.bytes;
    if (this.pausedForQueue && this.queuedBytes < this.limits.maxPendingBytes / 4) {
      this.pausedForQueue = false;
      if (this.pausedForServers === 0) this.client.resume();
    }
  }

  /** Puts another unit in the head's place (pgsplit's Sync for its own messages behind a failed batch). */
  replaceHead(u: Unit): void {
    this.units[0] = u;
  }

  /** A unit handed back to run again (a replica refused or lost it): first in line. */
  requeue(u: Unit): void {
    this.units.unshift(u);
    this.queuedBytes += u.bytes;
  }

  /**
   * After an error in the client's extended messages, as a server does: the units up to the client's
   * next Sync are dropped. True when that Sync was among them (the caller answers it with
   * ReadyForQuery); else the messages still to come are dropped up to it. A Terminate is not dropped:
   * a server skipping to a Sync still obeys it, so it stays first in line and ends the session.
   */
  skipToSync(): boolean {
    while (this.units.length > 0) {
      const next = this.units[0] as Unit;
      if (next.kind === 'terminate') return false;
      this.shift();
      const synced = next.kind === 'extended' ? next.complete : next.kind === 'local' && next.local?.kind === 'extended' && next.local.sync;
      if (synced) return true;
    }
    this.building = null;
    this.discarding = true;
    return false;
  }

  /** An unsynced batch could not be sent anywhere (its error went to the client): the rest of it is dropped up to its Sync. */
  discardUntilSync(): void {
    this.discarding = true;
  }

  /** The session wrote to `socket` and it has not taken it all: the client is not read until it drains. */
  serverFull(socket: DrainingSocket): void {
    this.pausedForServers++;
    this.client.pause();
    socket.once('drain', () => {
      this.pausedForServers--;
      this.resume();
    });
  }

  /** Reads the client again unless the queue is full or a server has not drained. */
  resume(): void {
    if (this.pausedForServers === 0 && !this.pausedForQueue && this.owner.serving) this.client.resume();
  }

  /** Adds a client frame to the unit being built; false when the session ended. */
  private acceptFrame(f: Frame): boolean {
    const t = f.type;
    if (this.discarding) {
      if (t === Frontend.Sync) {
        this.discarding = false;
        this.enqueue(unit('local', [], true, [], 0, { kind: 'ready' }));
      }
      // A Terminate is not dropped: a server skipping to a Sync still obeys it (below), and the session ends.
      if (t !== Frontend.Terminate) return true;
      this.building = null;
    }
    switch (t) {
      case Frontend.Query: {
        this.closeBuilding(false);
        const q = readQuery(f.payload);
        if (q === null) {
          this.owner.fatal(errors.unexpectedMessage('Q', 'with a malformed body (missing terminator)'));
          return false;
        }
        const local = parseLocalCommand(q);
        this.localStatements.forgetUnnamed();
        this.enqueue(local
          ? unit('local', [], true, [], 0, local)
          : unit('simple', [f], true, [q], frameSize(f)));
        return true;
      }
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Execute:
      case Frontend.Close: {
        if (t === Frontend.Parse) this.recallParse(f);
        const b = this.building ?? (this.building = unit('extended', [], false, [], 0));
        b.frames.push(f);
        b.bytes += frameSize(f);
        return true;
      }
      case Frontend.Sync:
      case Frontend.Flush: {
        const b = this.building ?? unit('extended', [], false, [], 0);
        this.building = null;
        b.frames.push(f);
        b.bytes += frameSize(f);
        b.complete = t === Frontend.Sync;
        this.enqueue(b);
        return true;
      }
      case Frontend.FunctionCall:
        this.closeBuilding(false);
        this.enqueue(unit('function', [f], true, [], frameSize(f)));
        return true;
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        // Behind an extended batch not yet ended (Parse/Bind/Execute of a COPY FROM STDIN, then its data):
        // the batch goes first, or the data would reach the server before the COPY that reads it.
        this.closeBuilding(false);
        this.enqueue(unit('copy', [f], false, [], frameSize(f)));
        return true;
      case Frontend.Terminate:
        this.closeBuilding(false);
        this.enqueue(unit('terminate', [], true, [], 0));
        return true;
      default:
        this.owner.fatal(errors.unexpectedMessage(typeChar(t), 'after startup: invalid frontend message type'));
        return false;
    }
  }

  /**
   * A Parse the same as the client's previous one (a driver's unnamed statements: the same text at every
   * execution) gets that one's fields, already decoded, and the same query string, whose hash the router's
   * look-ups computed already. Kept for bodies up to RECALL_LIMIT bytes: one copy per session at most.
   */
  private recallParse(f: Frame): void {
    const body = f.payload;
    const last = this.lastParse;
    if (last !== null && last.body.equals(body)) {
      f.memo = last.fields;
      return;
    }
    if (body.length > RECALL_LIMIT) return;
    const fields = parseOf(f);
    if (fields !== null) this.lastParse = { body: Buffer.from(body), fields };
  }

  /** A Query or FunctionCall arriving inside an unfinished extended batch: send what was built first. */
  private closeBuilding(complete: boolean): void {
    if (!this.building) return;
    const b = this.building;
    this.building = null;
    b.complete = complete;
    this.enqueue(b);
  }

  private enqueue(u: Unit): void {
    if (u.kind === 'extended') {
      const parts = this.localStatements.split(u.frames);
      if (parts !== null) {
        // pgsplit's own statements in the batch: what comes before goes to the server first (unsynced), the
        // run about them is answered here, and what follows is a batch of its own.
        if (parts.before.length > 0) this.push(unit('extended', parts.before, false, [], sumBytes(parts.before)));
        const sync = parts.local.some((l) => l.frame.type === Frontend.Sync);
        this.push(unit('local', [], true, [], sumBytes(parts.local.map((l) => l.frame)), { kind: 'extended', frames: parts.local, sync }));
        if (parts.after.length > 0) this.push(unit('extended', parts.after, u.complete, [], sumBytes(parts.after)));
        return;
      }
    }
    this.push(u);
  }

  private push(u: Unit): void {
    this.units.push(u);
    this.queuedBytes += u.bytes;
    // Bound what a client can make us hold while its earlier units run: stop reading until they drain.
    if (!this.pausedForQueue && this.queuedBytes > this.limits.maxPendingBytes) {
      this.pausedForQueue = true;
      this.client.pause();
    }
  }
}

/** Parse bodies longer than this are decoded each time rather than kept for the next (see recallParse). */
const RECALL_LIMIT = 2048;

function sumBytes(frames: readonly Frame[]): number {
  let n = 0;
  for (const f of frames) n += frameSize(f);
  return n;
}
