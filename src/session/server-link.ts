import type { RouteDecision } from '../router/router.js';
import type { ServerConnection } from '../server/server-connection.js';
import type { NodeEntry } from '../server/server-nodes.js';
import type { LocalCommand } from './local-command.js';
import type { Unit } from './unit.js';

/** One server response we are waiting for, in the order the server will send it. */
export interface Expect {
  kind: 'parse' | 'close' | 'sync';
  /** The number of the unit it belongs to on its link (see ServerLink.units). */
  unitNo?: number;
  /** Injected by pgsplit (re-prepare, settings replay): the client never sees its response. */
  swallow: boolean;
  /** For 'sync': the client unit it completes, whose effects apply when it succeeds. */
  unit?: Unit;
  extended?: boolean;
  failed?: boolean;
  /** Undoes the bookkeeping of a Parse/Close the server never carried out (it failed or was skipped). */
  undo?: () => void;
  /** For 'sync': the unit ends a transaction (COMMIT, ROLLBACK, PREPARE TRANSACTION). */
  endsTx?: boolean;
  /** For a swallowed 'sync': the unit a replica refused, to run on the primary once this sync is answered, and why. */
  rerun?: Unit;
  rerunWhy?: 'rerun-25006' | 'rerun-settings';
  /**
   * For a swallowed 'parse': a probe (see PROBE_PARSE). Answered, the extended messages before it ran
   * without error; skipped, one failed and the server now ignores everything up to the client's Sync.
   */
  probe?: boolean;
  /**
   * For the swallowed 'sync' of the empty Query sent after a probe: the statement pgsplit answers itself
   * once the server has run (or skipped) it in the client's place.
   */
  local?: LocalCommand;
  /** For a 'sync': decisions of unsynced pieces sent before it, whose effects apply with its answer. */
  carried?: RouteDecision[];
  /**
   * For a swallowed 'sync': the Sync pgsplit sent (after a probe) to end a replica's unsynced batch before a
   * statement that must run on the primary. Failed, the batch had an error: the client's messages up to its
   * own Sync are skipped, as the server would have skipped them.
   */
  endsBatch?: boolean;
  /** For a swallowed 'sync': an internal query's rows go here, then null when its answer is complete. */
  capture?: (row: Array<string | null> | null) => void;
  /** For a swallowed 'sync': one query of the session's settings replay (see SessionSettings.replayFor). */
  replay?: boolean;
}

/** A server connection as this session uses it. */
export class ServerLink {
  readonly node: NodeEntry;
  readonly conn: ServerConnection;
  readonly expect: Expect[] = [];
  /** Named statements prepared on this server: name -> Parse payload. */
  readonly prepared = new Map<string, Buffer>();
  settingsVersion = 0;
  /** Frames of a replica's answer held back until its first row (see Session.startHold). */
  held: Buffer[] | null = null;
  heldBytes = 0;
  /** performance.now() when the server last sent something (a frozen server sends nothing). */
  lastDataAt = performance.now();
  /** Extended-protocol messages were sent since the last Sync: an error among them skips to the next Sync. */
  needsSync = false;
  /** One of them failed: the server ignores everything up to the client's Sync, Queries included. */
  skipping = false;
  /**
   * Units sent here (a unit, a COPY message, a probe each count one): the number of the last. They place
   * a COPY FROM STDIN's start among the messages around it (see Session.startCopyIn).
   */
  units = 0;
  /** Numbers of the units sent that may start a COPY (a Query, or one with an Execute), recent ones. */
  starters: number[] = [];
  /** Numbers of the CopyDone and CopyFail messages sent, recent ones. */
  copyEnds: number[] = [];
  /** During COPY FROM STDIN: the client has not sent its CopyDone or CopyFail yet, so all it sends is the COPY's. */
  copyWindow = false;
  /** The unit that started the last COPY FROM STDIN, and how many more it started since (a Query may hold several). */
  copyInUnit = -1;
  copyInsOfUnit = 0;
  /** A FATAL from this server went to the client: it already knows why the session ends. */
  fatalForwarded = false;
  /**
   * The settings replay before the unit now running failed here (the replica refused a value the primary
   * holds): the unit's answer, computed with other settings than the session's, must not reach the client.
   */
  replayFailed = false;

  constructor(node: NodeEntry, conn: ServerConnection) {
    this.node = node;
    this.conn = conn;
  }

  get name(): string {
    return this.node.endpoint.name;
  }

  get busy(): boolean {
    return this.expect.length > 0;
  }

  /** The unit of the last expectation the server answered (or skipped past), and whether that ended it. */
  doneUnit = 0;
  doneSync = true;

  /** Removes the first expectation: the server answered it (or went past it). */
  shift(): Expect | undefined {
    const e = this.expect.shift();
    if (e !== undefined) {
      this.doneUnit = e.unitNo ?? this.doneUnit;
      // A swallowed Sync (settings replayed ahead of a unit, the empty Query of a probe) does not end its unit.
      this.doneSync = e.kind === 'sync' && !e.swallow;
    }
    return e;
  }

  /**
   * The unit a COPY FROM STDIN starting now was sent in: the earliest that may start one and was not yet
   * seen to end (the server went past everything up to the last answered expectation; a unit whose
   * Sync or Query was answered has ended).
   */
  copyStartUnit(): number {
    for (const n of this.starters) if (this.doneSync ? n > this.doneUnit : n >= this.doneUnit) return n;
    return this.units;
  }

  /**
   * Route decisions of unsynced pieces sent here that carry effects (a SET, DISCARD, COMMIT, ...), until
   * the next Sync or Query expected takes them (see push). Bounded: a client that never syncs loses the
   * oldest.
   */
  openDecisions: RouteDecision[] = [];

  /** Adds an expectation of the unit being sent (numbered by the last nextUnit()). */
  push(e: Expect): void {
    e.unitNo = this.units;
    // The first answer to end the batch (a Sync's, a Query's) carries its unsynced pieces' effects.
    if (e.kind === 'sync' && (!e.swallow || e.local !== undefined || e.endsBatch === true) && this.openDecisions.length > 0) {
      e.carried = this.openDecisions;
      this.openDecisions = [];
    }
    this.expect.push(e);
  }

  /**
   * Expects the answer to a probe (PROBE_PARSE) about to be sent. It destroys the server's unnamed
   * statement (prepared again where the client uses it next), and what follows it (a Query, a
   * FunctionCall, the empty Query) ends the server's extended batch.
   */
  pushProbe(): void {
    this.push({ kind: 'parse', swallow: true, probe: true });
    this.prepared.delete('');
    this.needsSync = false;
  }

  /** Records a CopyDone/CopyFail sent now (its unit number). Ends before the last answered expectation's unit no longer matter. */
  copyEndSent(): void {
    this.copyWindow = false;
    if (this.copyEnds.length >= 64) this.copyEnds = this.copyEnds.filter((n) => n >= this.doneUnit);
    this.copyEnds.push(this.nextUnit(false));
  }

  /** Numbers the next unit sent here; `starts` when it may start a COPY. */
  nextUnit(starts: boolean): number {
    const n = ++this.units;
    if (starts) this.markStarter();
    return n;
  }

  /** The unit being sent may start a COPY (a Query, an Execute). Old numbers nobody can need go. */
  markStarter(): void {
    // Units before the last answered expectation's have ended (or are running): older ones go.
    if (this.starters.length >= 64) this.starters = this.starters.filter((x) => x >= this.doneUnit);
    this.starters.push(this.units);
  }
}
