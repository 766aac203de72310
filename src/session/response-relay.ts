import { frameSize, type Frame } from '../codec/frame-reader.js';
import { FrameCoalescer } from '../codec/frame-coalescer.js';
import { Backend } from '../codec/message-types.js';
import { readDataRow, readErrorFields } from '../codec/message-fields.js';
import { SqlState } from '../errors.js';
import type { LogSink } from '../log/session-log.js';
import type { Expect, ServerLink } from './server-link.js';
import type { Unit } from './unit.js';
import type { SessionEvents } from './session-events.js';

/** Messages a replica may send before the first row of a result, which can be held back. */
const HOLDABLE = new Set<number>([
  Backend.ParseComplete, Backend.BindComplete, Backend.CloseComplete, Backend.ParameterDescription,
  Backend.RowDescription, Backend.NoData, Backend.NoticeResponse, Backend.ParameterStatus,
]);
/** At most this much is held back per unit; past it the answer streams and can no longer be re-run. */
const HOLD_LIMIT = 64 * 1024;

/**
 * What a chunk's answers to the client are gathered in: one for every session (they run on one thread,
 * and a chunk is relayed to the end before another is read), reset at each chunk.
 */
const RELAY_OUT = new FrameCoalescer();

/** Server message types the relay must look at (the rest are relayed by position): 1 = tracked. */
const TRACKED = new Uint8Array(256);
for (const t of [Backend.ParseComplete, Backend.CloseComplete, Backend.ErrorResponse, Backend.ReadyForQuery, Backend.CopyInResponse,
  Backend.CopyOutResponse, Backend.CopyBothResponse, Backend.ParameterStatus]) TRACKED[t] = 1;

/** The part of the client's socket the relay writes to (a net.Socket is one). */
export interface ClientOutput {
  readonly destroyed: boolean;
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  write(data: Buffer): boolean;
  cork(): void;
  uncork(): void;
}

/**
 * What the relay needs from its session: where answers go, and the session's own books on what servers
 * say (transaction status, COPY, settings, its queue of units). The relay decides what reaches the
 * client and when; the session decides what it means for the next unit.
 */
export interface RelaySession {
  /** Answers go here; its backpressure pauses the servers (see pauseServers). */
  readonly client: ClientOutput;
  /** `link` still serves the session: a link let go (its read runs elsewhere now) may deliver a late answer nobody asked for. */
  serves(link: ServerLink): boolean;
  /** Stops reading from every server of the session until the client has taken what it was given. */
  pauseServers(): void;
  /**
   * A COPY on `link` is under way or may start (a COPY FROM unit not yet settled): a message of type `t`
   * must reach `observe` even where it would otherwise be relayed by position.
   */
  watchesCopy(link: ServerLink, t: number): boolean;
  /**
   * The session's books on a message the client gets (now, or when a held answer is released): the end
   * of a unit (ReadyForQuery: transaction status, the unit's effects), an error, a COPY starting or
   * ending, a ParameterStatus. True when it may free units waiting behind it.
   */
  observe(link: ServerLink, f: Frame, errorCode: string | undefined): boolean;
  /**
   * The ReadyForQuery of something pgsplit sent itself and the client never sees (`head` says what: the
   * empty Query after a probe, a Sync ending a replica's batch, an internal query), with the status byte.
   */
  ownQueryAnswered(link: ServerLink, head: Expect, status: number): void;
  /** A unit refused on `link` may run again on the primary: no transaction, or one that may still move off this replica. */
  mayRunAgain(link: ServerLink): boolean;
  /** Puts a unit back at the front of the queue (it runs again, elsewhere). */
  requeue(u: Unit): void;
  /** `link` failed or sent something it must not (`frame`: its FATAL, if it sent one); what it held decides what follows. */
  serverLost(link: ServerLink, why: string, frame: Buffer | undefined): void;
  /** A chunk of `link`'s answers ended something (a unit, a COPY start, an error): what waits may go now. */
  answered(link: ServerLink): void;
  /** The guard ahead of read `u` on `link` passed: that replica has replayed `lsn`, and the read runs there. */
  guardPassed(link: ServerLink, lsn: bigint, u: Unit | undefined): void;
  /** A replica refused a guard for another reason than being behind (`code`): the session sends no more. */
  guardRefused(link: ServerLink, code: string | undefined): void;
}

/** The session's events the relay reports (see SessionEvents). */
export type RelayEvents = Pick<SessionEvents, 'retry' | 'rerun' | 'guard'>;

/**
 * Takes servers' answers to the client. Most messages go through by position, unparsed and without an
 * object made per message; the relay looks at the few that end a unit or change the session's state, at
 * answers to what pgsplit sent itself (never shown to the client), and at a replica's answer held back
 * until its first row, so that a read the replica refuses (25006, or settings it would not take) or loses
 * before anything reached the client can run again without the client seeing anything twice.
 */
export class ResponseRelay {
  private readonly session: RelaySession;
  private readonly log: LogSink;
  private readonly events: RelayEvents;

  constructor(session: RelaySession, log: LogSink, events: RelayEvents) {
    this.session = session;
    this.log = log;
    this.events = events;
  }

  /** Relays one chunk `link`'s server sent. */
  onServerData(link: ServerLink, chunk: Buffer): void {
    const session = this.session;
    if (!session.serves(link)) return;
    link.lastDataAt = performance.now();
    const reader = link.conn.reader;
    const out = RELAY_OUT.reset();
    let finishedUnit = false;
    let lost: string | null = null;
    let lostFrame: Buffer | undefined;
    let heldViews = false;
    reader.feed(chunk);
    for (;;) {
      let t: number;
      try {
        t = reader.next();
      } catch (e) {
        // What came before the bad message is complete and still goes to the client (below); then the
        // link is let go like a lost one: a busy link's client gets an error, an idle link reconnects.
        lost = `bad message from server: ${(e as Error).message}`;
        break;
      }
      if (t < 0) break;
      const head = link.tracker.head;
      // The relay path: rows, descriptions and the like go through by position, with no object made.
      if (TRACKED[t] !== 1 && link.held === null && !(head && head.kind === 'sync' && head.swallow) && !session.watchesCopy(link, t)) {
        out.addRange(reader.buf, reader.start, reader.end);
        continue;
      }
      const f = reader.frame(t);
      // Parsed once here for every check below (errors are rare: no cost on the relay path).
      const error = f.type === Backend.ErrorResponse ? readErrorFields(f.payload) : null;
      if (error !== null && (!link.tracker.busy || (link.held !== null && link.node.role === 'replica'))) {
        // A server shutting down (or crashing) says FATAL before it closes. On an idle link, or on a
        // replica whose answer nothing has reached the client of yet, that is the server going away:
        // the close handling lets it go and runs the held read elsewhere, and the client sees nothing.
        const severity = error.V ?? error.S;
        if (severity === 'FATAL' || severity === 'PANIC') {
          lost = `${error.C ?? ''} ${error.M ?? 'FATAL'}`.trim();
          lostFrame = Buffer.from(f.raw);
          break;
        }
      }
      if (head !== undefined && head.guard !== undefined) {
        // The guard ahead of the unit (RequestWriter.guard): its ParseComplete, BindComplete, row and
        // CommandComplete are pgsplit's; an error means the replica is behind and skips the unit.
        if (error !== null) this.guardFailed(link, error.C);
        else if (f.type === Backend.CommandComplete) {
          link.tracker.shift();
          this.events.guard('passed');
          session.guardPassed(link, head.guard, this.heldUnit(link));
          // What the client sent behind the read may go now (see Session.pump).
          finishedUnit = true;
        }
        continue;
      }
      if (f.type === Backend.ParseComplete && head !== undefined && head.probe === true) {
        // The batch before the probe ran without error.
        link.tracker.shift();
        continue;
      }
      if (head && head.kind === 'sync' && head.swallow) {
        // Replayed settings, the rest of a statement the replica refused, or the empty Query in place of a
        // statement pgsplit answers: the client asked for none of it.
        if (f.type === Backend.ReadyForQuery) {
          link.tracker.shift();
          // A pool keeps the connection's transaction status from what the server says: the ROLLBACK of a
          // transaction that moved to the primary ends it here, and the connection goes back to be reused.
          link.hold.observe?.(f.type, f.payload);
          const status = (f.payload[0] ?? 0x49) as number;
          if (head.local !== undefined) {
            // What the batch answered goes first, then pgsplit's own answer (ownQueryAnswered).
            if (link.held !== null) {
              for (const h of link.held) out.add(h);
              link.held = null;
              link.heldBytes = 0;
            }
            this.writeToClient(link, out.take());
          } else if (head.endsReplicaBatch === true) {
            // The session's to settle (ownQueryAnswered): the client's batch failed or not. What the batch
            // answered (its error) goes first: after a failure the session may answer the client's Sync now.
            this.writeToClient(link, out.take());
          } else if (head.rerun) {
            if (head.rerunWhy === 'rerun-guard') this.rerunAfterGuard(head.rerun);
            else this.rerunOnPrimary(head.rerun, head.rerunWhy ?? 'rerun-25006');
          }
          else if (link.tracker.busy && link.node.role === 'replica') this.startHold(link);
          session.ownQueryAnswered(link, head, status);
          finishedUnit = true;
        } else if (f.type === Backend.DataRow && head.capture !== undefined) {
          head.capture(readDataRow(f.payload));
        } else if (error !== null && !head.rerun && head.position !== true) {
          this.log.warn({ node: link.name, err: error.M }, 'replaying session settings failed');
          if (head.replay === true && link.node.role === 'replica') {
            link.replayFailed = true;
            // Replayed again before the next unit here (and refused again: each read then runs on the primary).
            link.settingsVersion = -1;
          }
        } else if (f.type === Backend.NotificationResponse) out.add(f.raw);
        continue;
      }
      if (link.held !== null) {
        // A replica's answer is held back until its first row: a read-only refusal (25006) before that
        // can still be re-run on the primary without the client seeing anything twice.
        const held = link.held;
        const wrongSettings = link.replayFailed;
        link.replayFailed = false;
        if (error?.C === SqlState.readOnlySqlTransaction || wrongSettings) {
          const unit = this.heldUnit(link);
          // Only outside a transaction, and only when nothing was sent after it to this replica: a later
          // unit's answer would otherwise reach the client before the re-run's.
          // (The Sync pgsplit sends after a guarded Query is part of the unit.)
          const syncs = link.tracker.queue.reduce((n, e) => n + (e.kind === 'sync' && e.afterGuard !== true ? 1 : 0), 0);
          if (unit && session.mayRunAgain(link) && syncs === 1) {
            link.held = null;
            link.heldBytes = 0;
            const sync = link.tracker.queue.find((e) => e.kind === 'sync');
            link.tracker.skipBeforeSync();
            if (sync) {
              sync.swallow = true;
              sync.rerun = unit;
              sync.rerunWhy = wrongSettings ? 'rerun-settings' : 'rerun-25006';
            }
            continue;
          }
        }
        if (!HOLDABLE.has(f.type) || link.heldBytes + frameSize(f) > HOLD_LIMIT) {
          for (const h of held) out.add(h);
          link.held = null;
          link.heldBytes = 0;
        } else {
          // A view for now: copied at the end of this chunk if still held (the chunk's memory is reused).
          heldViews = true;
          held.push(f.raw);
          link.heldBytes += frameSize(f);
          this.trackHeld(link, f);
          if (f.type === Backend.ParameterStatus) session.observe(link, f, undefined);
          continue;
        }
      }
      if (this.forwards(link, f)) {
        out.addRange(reader.buf, reader.start, reader.end);
        if (error !== null && (error.V ?? error.S) === 'FATAL') link.fatalForwarded = true;
      }
      if (session.observe(link, f, error?.C)) finishedUnit = true;
      if (f.type === Backend.ReadyForQuery && link.tracker.busy && link.node.role === 'replica') this.startHold(link);
    }
    if (heldViews && link.held !== null) {
      const held = link.held;
      for (let i = 0; i < held.length; i++) if ((held[i] as Buffer).buffer === chunk.buffer) held[i] = Buffer.from(held[i] as Buffer);
    }
    this.writeToClient(link, out.take());
    if (lost !== null) session.serverLost(link, lost, lostFrame);
    else if (finishedUnit) session.answered(link);
  }

  /**
   * Holds back the answer of the unit just sent to an idle replica link (the unit could be re-run; see
   * Session.send). Later units' answers are held from their predecessor's ReadyForQuery (startHold).
   */
  hold(link: ServerLink): void {
    link.held = [];
    link.heldBytes = 0;
  }

  /**
   * A replica failed while running a read of which nothing reached the client, with no later unit sent
   * to it: the read goes back to the front of the queue, to run elsewhere (another eligible replica, or
   * the primary). It only read, so running it twice changes nothing. The caller checks that the session
   * is outside a transaction, lets the link go and sends what waits. Returns false when it cannot be so.
   */
  retryElsewhere(link: ServerLink): boolean {
    const skipped = link.tracker.queue.find((e) => e.kind === 'sync');
    if (skipped?.rerunWhy === 'rerun-guard' && skipped.rerun !== undefined) {
      // Its guard failed: the server skipped the read, which goes round again (nothing is behind it: guardPending).
      const unit = skipped.rerun;
      this.events.retry(link.name);
      undoRegistry(unit);
      link.held = null;
      link.tracker.clear();
      unit.avoid = link.node;
      unit.retryable = false;
      this.session.requeue(unit);
      return true;
    }
    if (link.held === null) return false;
    const unit = this.heldUnit(link);
    const syncs = link.tracker.queue.reduce((n, e) => n + (e.kind === 'sync' && !e.swallow ? 1 : 0), 0);
    if (!unit || !unit.retryable || syncs !== 1) return false;
    // A statement pgsplit answers itself waits behind it there: it would be lost with the link.
    if (link.tracker.queue.some((e) => e.local !== undefined)) return false;
    this.events.retry(link.name);
    this.log.warn({ node: link.name }, 'replica failed before answering a read; running it elsewhere');
    undoRegistry(unit);
    link.held = null;
    link.tracker.clear();
    unit.avoid = link.node;
    this.session.requeue(unit);
    return true;
  }

  /** Relays server frames (views of `link`'s read buffer) to the client, with backpressure. */
  private writeToClient(link: ServerLink, bufs: Buffer[]): void {
    const client = this.session.client;
    if (bufs.length === 0 || client.destroyed) return;
    // A client already behind gets copies (sized to the data), so that queued views do not pin a
    // whole read buffer each; otherwise views, and the buffer is retained only if this write queues.
    const backedUp = client.writableLength > 0;
    if (bufs.length === 1) client.write(backedUp ? Buffer.from(bufs[0] as Buffer) : (bufs[0] as Buffer));
    else {
      client.cork();
      for (const b of bufs) client.write(backedUp ? Buffer.from(b) : b);
      client.uncork();
    }
    // The kernel did not take it all: the socket now holds views of the server's read buffer.
    if (!backedUp && client.writableLength > 0) link.conn.retainChunk();
    // Backpressure: stop reading from servers until the client has taken what we gave it.
    if (client.writableNeedDrain) this.session.pauseServers();
  }

  /** Whether the client gets this frame: the answer to an injected re-prepare or Close is pgsplit's own. */
  private forwards(link: ServerLink, f: Frame): boolean {
    if (f.type === Backend.ParseComplete || f.type === Backend.CloseComplete) {
      return link.tracker.completed(f.type === Backend.ParseComplete ? 'parse' : 'close')?.swallow !== true;
    }
    return true;
  }

  /** The unit whose answer `link` is holding back (the first client sync it expects). */
  private heldUnit(link: ServerLink): Unit | undefined {
    for (const e of link.tracker.queue) if (e.kind === 'sync') return e.swallow ? undefined : e.unit;
    return undefined;
  }

  /** Bookkeeping for a frame that is held back (ParseComplete / CloseComplete consume expectations). */
  private trackHeld(link: ServerLink, f: Frame): void {
    const kind = f.type === Backend.ParseComplete ? 'parse' : f.type === Backend.CloseComplete ? 'close' : null;
    // An injected re-prepare: never shown to the client, held or not.
    if (kind !== null && link.tracker.completed(kind)?.swallow === true) (link.held as Buffer[]).pop();
  }

  /** Starts holding back the answer of the next unit on a replica, when that unit could be re-run. */
  private startHold(link: ServerLink): void {
    const u = this.heldUnit(link);
    if (u && u.retryable) this.hold(link);
  }

  /**
   * The guard ahead of the unit on `link` failed: the replica had not replayed the position (or refused
   * the guard: `code` other than 22012). The server skips the unit up to the next Sync (the client's, or
   * the one after a guarded Query), so nothing of it ran; that Sync's answer sends it round again
   * (rerunAfterGuard).
   */
  private guardFailed(link: ServerLink, code: string | undefined): void {
    const unit = this.heldUnit(link);
    link.held = null;
    link.heldBytes = 0;
    const behind = code === SqlState.divisionByZero;
    this.events.guard(behind ? 'behind' : 'refused');
    if (!behind) this.session.guardRefused(link, code);
    const sync = link.tracker.skipToSync();
    if (sync !== undefined && unit !== undefined) {
      sync.swallow = true;
      sync.failed = true;
      sync.rerun = unit;
      sync.rerunWhy = 'rerun-guard';
    }
  }

  /** A unit skipped after its guard failed: back to the front of the queue, for another guard or a wait for the replica (see mayGuard). */
  private rerunAfterGuard(u: Unit): void {
    u.guardFailures++;
    u.retryable = false;
    undoRegistry(u);
    this.session.requeue(u);
  }

  /** A replica refused the unit as a write (25006), or refused the session's settings, before anything reached the client: run it on the primary. */
  private rerunOnPrimary(u: Unit, why: 'rerun-25006' | 'rerun-settings'): void {
    this.events.rerun(u.decision?.reason ?? 'unknown');
    this.log.warn({ reason: u.decision?.reason }, why === 'rerun-25006'
      ? 'replica refused a statement as a write (25006); re-running it on the primary'
      : 'the replica refused the session\'s settings; running the statement on the primary');
    u.forcePrimary = why;
    u.retryable = false;
    // The client's Parse/Close in this unit take effect with the re-run, not with the refused attempt.
    undoRegistry(u);
    this.session.requeue(u);
  }
}

/** Restores the client's statement registry as it was before `u` was sent (it runs again). */
function undoRegistry(u: Unit): void {
  const undo = u.registryUndo ?? [];
  for (let i = undo.length - 1; i >= 0; i--) undo[i]?.();
  u.registryUndo = undefined;
}
