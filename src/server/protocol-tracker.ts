/**
 * One reply a server connection owes, in the order PostgreSQL sends replies. The tracker reads and
 * writes these fields; its user extends the type with its own (see ProtocolTracker), so that one object
 * per expectation carries both and nothing more is allocated per message.
 */
export interface Expectation<Effect> {
  /** 'parse' / 'close': a ParseComplete / CloseComplete. 'sync': a ReadyForQuery (a Sync's, a Query's, a FunctionCall's). */
  kind: 'parse' | 'close' | 'sync';
  /** The number of the unit it was sent in (see ProtocolTracker.units); set by push. */
  unitNo?: number;
  /** Sent by pgsplit on its own account (a re-prepare, a settings replay, a probe): the client never sees its reply. */
  swallow: boolean;
  /** For 'sync': a Sync (extended protocol), as opposed to a Query or FunctionCall. COPY FROM STDIN ignores these. */
  extended?: boolean;
  /** For 'sync': an error came before it, so what it ends did not run (or not all of it). */
  failed?: boolean;
  /**
   * For a swallowed 'parse': a probe (Parse of an empty unnamed statement sent after unsynced extended
   * messages). Answered, the messages before it ran without error; skipped, one failed and the server now
   * ignores everything up to the client's Sync.
   */
  probe?: boolean;
  /**
   * For a swallowed 'sync': it ends the client's unsynced batch in the client's place (the empty Query sent
   * after a probe, a Sync pgsplit adds), so it takes the batch's open effects (see push) as a client's would.
   */
  endsBatch?: boolean;
  /** For a 'sync': the effects of unsynced messages sent before it, which settle with its reply. */
  carried?: Effect[];
}

/** At most this many unit numbers are kept for placing a COPY FROM STDIN (older ones are pruned). */
const KEEP_NUMBERS = 64;
/** At most this many open effects are kept: a client that never syncs loses the oldest (bounded memory). */
const MAX_OPEN_EFFECTS = 1024;

/**
 * The protocol state of one server connection: the replies it owes (in order), whether an error would
 * make it skip to the next Sync or already does, and where a COPY FROM STDIN it starts sits among the
 * messages sent around it. It knows no session: the owner tells it what was sent (push, nextUnit, ...)
 * and which tracked reply came back (completed, readyForQuery, error, copyInStarted, copyEnded), and
 * decides itself which server messages to relay. `Effect` is what unsynced messages leave to settle
 * with the reply that ends their batch; `E` is the owner's expectation type.
 *
 * Expectations the server will never answer (a Parse skipped after an error) are handed to `onSkipped`,
 * newest first, so that the owner can undo what it recorded when it sent them.
 */
export class ProtocolTracker<Effect, E extends Expectation<Effect> = Expectation<Effect>> {
  private readonly expect: E[] = [];
  private readonly onSkipped: (e: E) => void;
  private sinceSync = false;
  private skippingToSync = false;
  private unitCount = 0;
  private lastDoneUnit = 0;
  private lastDoneEndedUnit = true;
  /** Numbers of the units sent that may start a COPY (a Query, or one with an Execute), recent ones. */
  private starters: number[] = [];
  /** Numbers of the CopyDone and CopyFail messages sent, recent ones. */
  private copyEnds: number[] = [];
  private inCopyWindow = false;
  /** The unit that started the last COPY FROM STDIN, and how many more it started since (a Query may hold several). */
  private copyInUnit = -1;
  private copyInsOfUnit = 0;
  /** Effects of unsynced messages, until the next expectation that ends the batch takes them (see push). */
  private open: Effect[] = [];

  constructor(onSkipped: (e: E) => void) {
    this.onSkipped = onSkipped;
  }

  /** The replies still owed, oldest first. */
  get queue(): readonly E[] {
    return this.expect;
  }

  /** The reply the server sends next (among the tracked ones). */
  get head(): E | undefined {
    return this.expect[0];
  }

  /** Something sent is still unanswered. */
  get busy(): boolean {
    return this.expect.length > 0;
  }

  /** Extended-protocol messages were sent since the last Sync: an error among them skips to the next Sync. */
  get needsSync(): boolean {
    return this.sinceSync;
  }

  /** One of them failed: the server ignores everything up to the client's next Sync, Queries included. */
  get skipping(): boolean {
    return this.skippingToSync;
  }

  /** During COPY FROM STDIN: the client has not sent its CopyDone or CopyFail yet, so all it sends is the COPY's. */
  get copyWindow(): boolean {
    return this.inCopyWindow;
  }

  /**
   * Units sent (a unit, a COPY message, a probe each count one): the number of the last. They place a
   * COPY FROM STDIN's start among the messages around it (see copyInStarted).
   */
  get units(): number {
    return this.unitCount;
  }

  /** The unit of the last expectation the server answered (or went past). */
  get doneUnit(): number {
    return this.lastDoneUnit;
  }

  /** Whether that expectation ended its unit (a client's sync, not a swallowed one nor a Parse/Close). */
  get doneSync(): boolean {
    return this.lastDoneEndedUnit;
  }

  /** Effects of the unsynced messages sent since the last expectation that ended a batch. */
  get openEffects(): readonly Effect[] {
    return this.open;
  }

  // ---------------------------------------------------------------------------------------------------
  // What was sent
  // ---------------------------------------------------------------------------------------------------

  /** Numbers the next unit sent; `starts` when it may start a COPY (a Query). */
  nextUnit(starts: boolean): number {
    const n = ++this.unitCount;
    if (starts) this.markStarter();
    return n;
  }

  /** An Execute was sent in the current unit: it may start a COPY. */
  executeSent(): void {
    if (this.starters.at(-1) !== this.unitCount) this.markStarter();
  }

  /** An extended-protocol message other than Sync was sent: an error from here on skips to the next Sync. */
  extendedSent(): void {
    this.sinceSync = true;
  }

  /** Adds an expectation of the unit being sent (numbered by the last nextUnit()). */
  push(e: E): void {
    e.unitNo = this.unitCount;
    // The first reply to end the batch (a Sync's, a Query's, or pgsplit's in their place) carries the
    // effects of its unsynced messages.
    if (e.kind === 'sync' && (!e.swallow || e.endsBatch === true) && this.open.length > 0) {
      e.carried = this.open;
      this.open = [];
    }
    this.expect.push(e);
  }

  /** Expects the reply to a Sync sent now: it ends the batch, and any skipping after an error with it. */
  pushSync(e: E): void {
    this.push(e);
    this.sinceSync = false;
    this.skippingToSync = false;
  }

  /**
   * Expects the reply to a probe sent now. What follows it (a Query, a FunctionCall, an empty Query) ends
   * the server's extended batch, so an error after the probe no longer skips to a Sync.
   */
  pushProbe(e: E & { kind: 'parse'; swallow: true; probe: true }): void {
    this.push(e);
    this.sinceSync = false;
  }

  /** Records the effect of an unsynced message sent now, to settle with the reply that ends its batch. */
  carry(effect: Effect): void {
    if (this.open.length >= MAX_OPEN_EFFECTS) this.open.shift();
    this.open.push(effect);
  }

  /** Records a CopyDone/CopyFail sent now (as a unit of its own). */
  copyEndSent(): void {
    this.inCopyWindow = false;
    // Ends before the last answered expectation's unit no longer matter.
    if (this.copyEnds.length >= KEEP_NUMBERS) this.copyEnds = this.copyEnds.filter((n) => n >= this.lastDoneUnit);
    this.copyEnds.push(this.nextUnit(false));
  }

  // ---------------------------------------------------------------------------------------------------
  // What came back
  // ---------------------------------------------------------------------------------------------------

  /** Removes the first expectation: the server answered it (or went past it). */
  shift(): E | undefined {
    const e = this.expect.shift();
    if (e !== undefined) {
      this.lastDoneUnit = e.unitNo ?? this.lastDoneUnit;
      // A swallowed sync (settings replayed ahead of a unit, the empty Query of a probe) does not end its unit.
      this.lastDoneEndedUnit = e.kind === 'sync' && !e.swallow;
    }
    return e;
  }

  /**
   * A ParseComplete ('parse') or CloseComplete ('close'): the expectation it answers, removed, or
   * undefined when the next one expects something else.
   */
  completed(kind: 'parse' | 'close'): E | undefined {
    const head = this.expect[0];
    if (head === undefined || head.kind !== kind) return undefined;
    this.shift();
    return head;
  }

  /**
   * A ReadyForQuery: the Parse/Close replies still expected before it were skipped (they followed an
   * error), and the sync it answers is removed and returned.
   */
  readyForQuery(): E | undefined {
    this.skipBeforeSync();
    return this.shift();
  }

  /** The Parse/Close replies expected before the next sync will never come: they are dropped (see onSkipped). */
  skipBeforeSync(): void {
    this.drop(this.indexOfSync(false));
  }

  /**
   * An error in extended messages pgsplit sent ahead of a unit (a guard): the server skips everything up
   * to the next Sync, so every expectation before it is dropped (see onSkipped), and that Sync's is
   * returned (undefined if none was sent). The Sync still ends the skipping.
   */
  skipToSync(): E | undefined {
    this.drop(this.indexOfSync(true));
    return this.expect[0];
  }

  /** Drops every expectation without telling onSkipped (the connection is being given up). */
  clear(): void {
    this.expect.length = 0;
  }

  /**
   * An ErrorResponse (other than to a swallowed sync's own Query). The Parse/Close messages expected before
   * the next sync never ran. If a probe was among them, the error came from the extended messages before
   * it, and the server now skips to the client's Sync, past what was queued behind the probe; with no Sync
   * sent yet, it skips what comes next too. Otherwise the error is the next sync's unit's own (failed).
   * Returns true when the connection starts skipping to a Sync not sent yet (its batch stays open).
   */
  error(): boolean {
    this.inCopyWindow = false;
    let n = this.indexOfSync(false);
    let probeSkipped = false;
    for (let i = 0; i < n; i++) if ((this.expect[i] as E).probe === true) probeSkipped = true;
    if (probeSkipped) n = this.indexOfSync(true);
    this.drop(n);
    const head = this.expect[0];
    if (head !== undefined) {
      head.failed = true;
      return false;
    }
    if (!probeSkipped && !this.sinceSync) return false;
    this.skippingToSync = true;
    this.sinceSync = true;
    return true;
  }

  /**
   * A CopyInResponse: COPY FROM STDIN started, at a message sent after every expectation already answered
   * (and before the head, or with it). The Syncs sent after that message and before the next CopyDone or
   * CopyFail are read by the server as part of the COPY: they get no reply, and are no longer expected.
   * Returns true when one was, and the client's Sync after its CopyDone is not sent yet: the batch is
   * then open until it comes (an error in the COPY skips to it).
   */
  copyInStarted(): boolean {
    const start = this.copyStartUnit();
    // A Query with several COPY FROM STDIN starts one per CopyDone sent after it.
    if (this.copyInUnit === start) this.copyInsOfUnit++;
    else {
      this.copyInUnit = start;
      this.copyInsOfUnit = 0;
    }
    let end = Infinity;
    let k = 0;
    for (const n of this.copyEnds) {
      if (n > start && k++ === this.copyInsOfUnit) {
        end = n;
        break;
      }
    }
    this.inCopyWindow = end === Infinity;
    let ignored = false;
    for (let i = 0; i < this.expect.length;) {
      const e = this.expect[i] as E;
      if ((e.unitNo ?? 0) >= end) break;
      if (e.kind === 'sync' && e.extended === true) {
        this.expect.splice(i, 1);
        ignored = true;
      } else i++;
    }
    if (!ignored || this.expect.some((e) => e.kind === 'sync' && e.extended === true && (e.unitNo ?? 0) >= end)) return false;
    this.sinceSync = true;
    return true;
  }

  /** A COPY (if any) is over: it completed, failed, or its statement's reply ended. */
  copyEnded(): void {
    this.inCopyWindow = false;
  }

  // ---------------------------------------------------------------------------------------------------

  /**
   * The unit a COPY FROM STDIN starting now was sent in: the earliest that may start one and was not yet
   * seen to end (the server went past everything up to the last answered expectation; a unit whose sync
   * was answered has ended).
   */
  private copyStartUnit(): number {
    for (const n of this.starters) if (this.lastDoneEndedUnit ? n > this.lastDoneUnit : n >= this.lastDoneUnit) return n;
    return this.unitCount;
  }

  /** The current unit may start a COPY. Old numbers nobody can need go. */
  private markStarter(): void {
    // Units before the last answered expectation's have ended (or are running): older ones go.
    if (this.starters.length >= KEEP_NUMBERS) this.starters = this.starters.filter((x) => x >= this.lastDoneUnit);
    this.starters.push(this.unitCount);
  }

  /** The index of the first sync (the first extended one with `extended`), or the queue's length. */
  private indexOfSync(extended: boolean): number {
    const q = this.expect;
    for (let i = 0; i < q.length; i++) {
      const e = q[i] as E;
      if (e.kind === 'sync' && (!extended || e.extended === true)) return i;
    }
    return q.length;
  }

  /** Drops the first `n` expectations, which the server will never answer: onSkipped sees them newest first. */
  private drop(n: number): void {
    for (let i = n - 1; i >= 0; i--) this.onSkipped(this.expect[i] as E);
    for (let i = 0; i < n; i++) this.shift();
  }
}
