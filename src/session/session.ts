import type net from 'node:net';
import type { Frame } from '../codec/frame-reader.js';
import { Backend } from '../codec/message-types.js';
import { backendKeyData, errorFor, parameterStatus, readyForQuery } from '../codec/backend-messages.js';
import { PgsplitError, SqlState, errors } from '../errors.js';
import { SessionLog } from '../log/session-log.js';
import { sequenceCatalog, type SequenceCatalog } from '../router/sequence-catalog.js';
import type { NodeEntry } from '../server/server-nodes.js';
import type { SessionLogin } from '../server/server-login.js';
import { DedicatedSource, type ServerSource } from '../server/server-source.js';
import { POOLED_MODES, PooledSource } from '../server/pooled-source.js';
import type { Isolation } from '../router/transaction-statements.js';
import type { SessionContext } from './session-context.js';
import { SessionSettings } from './session-settings.js';
import { splitStartupOptions } from './startup-options.js';
import type { LocalCommand } from './local-command.js';
import { LocalAnswers } from './local-answers.js';
import type { TaggedTransaction } from './tagged-transaction.js';
import { ServerLink, type Expect } from './server-link.js';
import { ResponseRelay, type RelaySession } from './response-relay.js';
import { unit, type Unit } from './unit.js';
import { Consistency } from './consistency.js';
import { Binding } from './binding.js';
import { SessionClosing } from './session-closing.js';
import { RequestWriter, SYNC } from './request-writer.js';
import { ClientReader } from './client-reader.js';
import { TargetChooser, type ChooserState } from './target-chooser.js';
import { readClient, watchClient } from './client-socket-events.js';
import { attachFor, attachPrimaryNow, attachReplicaNow, detach, giveBackIdle } from './server-attach.js';
import { noteParameter, observe, ownQueryAnswered } from './server-books.js';
import { duringCopyIn, endReplicaBatch, send, sendCopy } from './server-writes.js';
import { runLocal, sendLocalProbe } from './local-run.js';
import { answerDeferred, captureSession, deferredTag } from './session-capture.js';
import { awaitTransactionFloor } from './transaction-floor.js';
import { leave, terminate } from './leaving.js';
import { failStartup, failUnit, letGoIfRetired, onServerLost, retire, serverDown } from './failure-policy.js';

/** Lifecycle of a session. */
export type SessionState = 'starting' | 'ready' | 'closed';


/**
 * Executes one client's traffic: splits it into units, asks the router where each may run, keeps
 * transactions, open batches and COPY on one server, replays settings and prepared statements on servers
 * attached later, and relays responses without parsing result rows. Units are sent in order; a unit goes
 * to a different server only after every earlier unit has been answered, so responses never interleave.
 * Its lifecycle and dispatch (pump) are here; its parts are module-level functions taking the session,
 * which read and write the members marked @internal: server-attach, server-writes, server-books,
 * session-capture, local-run and failure-policy (no object or closure per session for any of them).
 */
export class Session implements RelaySession, ChooserState {
  readonly id: number;
  readonly client: net.Socket;
  readonly user: string;
  readonly database: string;
  state: SessionState = 'starting';
  pinned: string | null = null;
  txStatus: 'I' | 'T' | 'E' = 'I';
  /** As the server last reported them (ParameterStatus): they decide how statement text is lexed. */
  clientEncoding: string | undefined;
  standardConformingStrings = true;

  /** The proxy around the session. @internal */
  readonly ctx: SessionContext;
  /** The proxy's logger, with the session's id. @internal */
  readonly log: SessionLog;
  /** The client's bytes as units, queued until sent; reading paused while too much waits (max_pending_bytes). @internal */
  readonly input: ClientReader;
  /** Takes servers' answers to the client (fast path, held replica answers, re-runs). @internal */
  readonly relay: ResponseRelay;
  /** The client's startup parameters as servers get them (pgsplit's own options taken out). @internal */
  readonly serverParams: Record<string, string>;
  /** As whom, with what, into which database the session logs in to servers. @internal */
  readonly login: SessionLogin;
  /** Where the session's server connections come from and go back to (server-source.ts). @internal */
  readonly source: ServerSource;
  /** Aborted when the session closes: a wait for a pooled connection ends (its place in the queue goes). @internal */
  readonly closing = new SessionClosing();
  /** The server connections the session holds, and why (transaction, open batch, COPY, last, replica). @internal */
  readonly binding = new Binding();
  /** The bytes that go to servers, and the client's statement registry (prepared again where missing). @internal */
  readonly writer = new RequestWriter();
  /** pgsplit's own settings (tag, max_lag, after) and the answers to SET / RESET / SHOW of them. @internal */
  readonly local: LocalAnswers;
  /** The settings the session made, replayed on servers attached later. @internal */
  readonly settings = new SessionSettings();
  /** A statement pgsplit answers itself waits behind a probe (see request-writer.ts, PROBE_PARSE): nothing goes on until it is answered. @internal */
  awaitingProbe = false;
  /** An internal query (see captureSession) is under way: nothing goes on until it is answered. @internal */
  awaitingInternal = false;
  /** A tagged session's transaction that is deferred or open on a replica (routing.transactions); read by the chooser. */
  tx: TaggedTransaction | null = null;
  /**
   * The session's default_transaction_isolation, asked of a server before its first replica read and
   * again after anything may have changed it; null = not known yet, 'unknown' = the server did not say.
   */
  isolation: Isolation | 'unknown' | null = null;
  /** A replica refused a read's guard other than for being behind (see RequestWriter.guard): reads wait for replay instead. */
  guardsRefused = false;
  /**
   * The link where the session's settings last changed (SET, RESET, set_config, DISCARD, LOAD), until
   * they are read back from it (captureSession): before any other server serves the session. @internal
   */
  settingsFrom: ServerLink | null = null;
  /** The client sent Terminate behind an unsynced batch: its server is ending (see pump); nothing more starts. @internal */
  terminating = false;
  /** A server is being attached (or the primary asked for SHOW pgsplit.lsn): nothing else starts. @internal */
  connecting = false;
  /** The node a connection is being opened to, if any. @internal */
  connectingTo: NodeEntry | null = null;
  /** The key the client cancels with (BackendKeyData). */
  readonly cancelKey: { pid: number; secret: number };
  /** Read-your-writes and monotonic reads: the session's floor, and the choice of a replica for a read. @internal */
  readonly consistency: Consistency;
  /** Set by drain(): finish what is in flight, start nothing new. */
  private draining = false;
  /** The sequences of the session's database (reads of them go to the primary). @internal */
  readonly sequences: SequenceCatalog;
  /** Where each unit runs (no sockets: it reads the session's state and links, and sets the unit's decision). */
  private readonly chooser: TargetChooser;
  /** performance.now() of the client's last bytes or the last answer completed (idle-in-transaction timeout). */
  private lastActivityAt = performance.now();
  /** pool.mode transaction: a server connection goes back to its pool as soon as it holds nothing of the client's (giveBackIdle). @internal */
  readonly perTransaction: boolean;
  /** SET ROLE or SET SESSION AUTHORIZATION ran: a connection that had the session's settings needs more than RESET ALL. @internal */
  identityChanged = false;

  constructor(opts: {
    id: number;
    client: net.Socket;
    user: string;
    database: string;
    params: Record<string, string>;
    cancelKey: { pid: number; secret: number };
    ctx: SessionContext;
    /** As whom, with what, into which database this session logs in to servers (server-login.ts). */
    login: SessionLogin;
  }) {
    this.id = opts.id;
    this.client = opts.client;
    this.user = opts.user;
    this.database = opts.database;
    this.ctx = opts.ctx;
    this.cancelKey = opts.cancelKey;
    this.login = opts.login;
    this.source = POOLED_MODES.has(opts.ctx.poolMode)
      ? new PooledSource(opts.ctx.pools, `session ${opts.id} ${opts.user}@${opts.client.remoteAddress ?? ''}`, opts.ctx, opts.ctx.poolMode)
      : new DedicatedSource(opts.ctx);
    this.perTransaction = opts.ctx.poolMode === 'transaction';
    this.log = new SessionLog(opts.ctx.log, opts.id);
    // The session is the relay's view of it (RelaySession) and the chooser's (ChooserState): no object or
    // closure per session for either, which an idle session would carry for nothing.
    this.relay = new ResponseRelay(this, this.log, opts.ctx.events);
    this.input = new ClientReader(opts.client, opts.ctx, this);

    const split = splitStartupOptions(opts.params.options);
    // Built key by key rather than copied and deleted from: a deleted key turns an object into a slower, larger dictionary.
    const params: Record<string, string> = {};
    for (const k in opts.params) if (k !== 'options') params[k] = opts.params[k] as string;
    if (split.rest) params.options = split.rest;
    this.serverParams = params;

    this.local = new LocalAnswers(opts.ctx, {
      options: split.pgsplit,
      applicationName: opts.params.application_name ?? '',
      tagApplicationNames: opts.ctx.tagApplicationNames,
      defaultRoute: opts.ctx.defaultRoute,
    });
    this.consistency = new Consistency(opts.ctx, this.local, this.log);
    const p = opts.ctx.nodes.primary.endpoint;
    this.sequences = sequenceCatalog(`${p.host}:${p.port}/${opts.database}`);
    // The chooser reads the session's state live at each choice (no allocation per unit).
    this.chooser = new TargetChooser({
      ctx: opts.ctx,
      links: this.binding,
      replicas: this.consistency,
      sequences: this.sequences,
      statements: this.writer,
      state: this,
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // The relay's view of the session (RelaySession; see response-relay.ts for what each means)
  // ---------------------------------------------------------------------------------------------------

  serves(link: ServerLink): boolean {
    return this.state !== 'closed' && this.binding.holds(link);
  }

  pauseServers(): void {
    for (const l of this.binding.attached()) l.conn.socket.pause();
  }

  watchesCopy(link: ServerLink, t: number): boolean {
    return this.binding.copyPending !== null || (t === Backend.CommandComplete && this.binding.copy === link);
  }

  mayRunAgain(link: ServerLink): boolean {
    return this.txStatus === 'I' || (this.tx !== null && this.tx.phase === 'replica' && this.binding.tx === link);
  }

  requeue(u: Unit): void {
    this.input.requeue(u);
  }

  serverLost(link: ServerLink, why: string, frame: Buffer | undefined): void {
    onServerLost(this, link, why, frame);
    if (this.state === 'ready') this.pump();
  }

  answered(link: ServerLink): void {
    // The relay noted when the chunk that ended the unit arrived: the same moment.
    this.lastActivityAt = link.lastDataAt;
    if (link.node.retiring) letGoIfRetired(this, link);
    this.pump();
    if (this.perTransaction) giveBackIdle(this);
  }

  guardPassed(link: ServerLink, lsn: bigint, u: Unit | undefined): void {
    // A fact about the replica worth the monitor's knowing: the session's next reads there need no guard.
    this.ctx.monitor.replayedAtLeast(link.node, lsn);
    if (u?.decision !== undefined) this.ctx.events.routed(link.name, u.decision.reason);
  }

  guardRefused(link: ServerLink, code: string | undefined): void {
    this.guardsRefused = true;
    this.log.warn({ node: link.name, code }, 'a replica refused the read-your-writes check ahead of a read; this session waits for replay instead');
  }

  /** The session's books on a message the client gets: see server-books.ts. */
  observe(link: ServerLink, f: Frame, errorCode: string | undefined): boolean {
    return observe(this, link, f, errorCode);
  }

  /** The answer to something pgsplit sent itself: see server-books.ts. */
  ownQueryAnswered(link: ServerLink, head: Expect, status: number): void {
    ownQueryAnswered(this, link, head, status);
  }

  /** Reads may go to replicas (for the admin console and stats; see LocalAnswers). */
  get tagged(): boolean {
    return this.local.tagged;
  }

  /** Why the session is tagged or not (startup option, application_name, default, SET). */
  get tagSource(): string {
    return this.local.tagSource;
  }

  /**
   * Connects the session's first server (a replica for a tagged session, else the primary), sends the
   * client its parameters, pgsplit's cancel key and ReadyForQuery, then serves `leftover` and the socket.
   */
  async start(leftover: Buffer | null): Promise<void> {
    watchClient(this.client, this);
    if (this.local.startupError !== null) {
      failStartup(this, this.local.startupError);
      return;
    }
    let home: ServerLink;
    try {
      home = await attachFor(this, this.local.tagged ? 'replica' : 'primary');
    } catch (e) {
      failStartup(this, e);
      return;
    }
    if (this.state === 'closed') return;
    const out: Buffer[] = [];
    for (const [k, rv] of home.conn.parameters) {
      // A tagged session's writes go to the primary: it must not look like a standby to the client (libpq
      // target_session_attrs=read-write and pgjdbc targetServerType=primary would refuse it).
      const v = k === 'in_hot_standby' && home.node.role === 'replica' ? 'off' : rv;
      out.push(parameterStatus(k, v));
      noteParameter(this, k, v);
    }
    out.push(backendKeyData(this.cancelKey.pid, this.cancelKey.secret), readyForQuery('I'));
    this.client.write(Buffer.concat(out));
    this.state = 'ready';
    // A reload may have removed the home replica while it was being connected to.
    if (home.node.retiring) letGoIfRetired(this, home);
    this.log.debug({ user: this.user, database: this.database, tagged: this.local.tagged, tag: this.local.tagSource, home: home.name }, 'session ready');
    readClient(this.client);
    if (leftover && leftover.length > 0) this.onClientData(leftover);
    // The first server told the client its parameters; unless the leftover keeps it busy, it goes back.
    if (this.perTransaction) giveBackIdle(this);
    // The proxy paused the socket at the end of the handshake, so that nothing sent while the first
    // server was being connected was dropped; it flows from here (unless the leftover filled the queue).
    if (!this.input.full) this.client.resume();
  }

  /** The session's state for metrics and the admin console (PgBouncer's words where they fit). */
  get activity(): 'starting' | 'active' | 'idle' | 'idle_in_transaction' {
    if (this.state !== 'ready') return 'starting';
    if (this.input.length > 0 || this.anyBusy()) return 'active';
    return this.txStatus === 'I' ? 'idle' : 'idle_in_transaction';
  }

  /**
   * Each server connection the session holds: its node, whether a statement is running on it, the server's
   * backend pid. Not a parked one (server-attach's park): that is its pool's idle connection until used.
   */
  serverLinks(): Array<{ node: NodeEntry; busy: boolean; backendPid: number }> {
    return [...this.binding.attached()].filter((l) => !l.parked).map((l) => ({ node: l.node, busy: l.tracker.busy, backendPid: l.conn.backendPid }));
  }

  /** For the admin console: when the client connected and was last active (epoch ms), its startup application_name. */
  readonly connectedAt = Date.now();
  get lastActiveAt(): number {
    return performance.timeOrigin + this.lastActivityAt;
  }
  get applicationName(): string {
    return this.serverParams.application_name ?? '';
  }

  /**
   * Shutdown: what was already sent to servers finishes, then the session closes with FATAL 57P01;
   * nothing queued behind it starts. A session not yet ready, or idle, closes at once.
   */
  drain(): void {
    this.draining = true;
    if (this.state !== 'ready') this.fatal(errors.shuttingDown());
    else this.closeIfDrained();
  }

  /** How long the session has been idle inside a transaction at `now` (performance.now()), or 0. */
  idleInTransactionFor(now: number): number {
    return this.activity === 'idle_in_transaction' ? now - this.lastActivityAt : 0;
  }

  /** limits.idle_in_transaction_timeout ran out: FATAL 25P03; closing the server links rolls the transaction back. */
  terminateIdleInTransaction(timeoutMs: number): void {
    this.log.info({ timeoutMs }, 'closing a session idle in a transaction (limits.idle_in_transaction_timeout)');
    this.fatal(errors.idleInTransactionTimeout(timeoutMs));
  }

  /** Sends what waits, if it may go now (after RESUME). */
  kick(): void {
    if (this.state === 'ready') this.pump();
  }

  private closeIfDrained(): void {
    if (this.state !== 'ready' || this.connecting || this.anyBusy()) return;
    this.ctx.events.error(SqlState.adminShutdown);
    // No timer of leave()'s own: the drain is bounded by limits.shutdown_grace (ProxyServer.shutdown).
    this.leave(errorFor(errors.shuttingDown()), null);
  }

  /**
   * Ends the session politely (Terminate, or a drain): every server link is closed with Terminate, and
   * unlike fatal() the client takes what is still queued for it (the tail of the last answer) before its
   * socket goes, with `last` after it; destroyed if it does not within `destroyAfterMs` (null: no limit
   * here, the caller has one). @internal
   */
  leave(last?: Buffer, destroyAfterMs: number | null = 5000): void {
    leave(this, last, destroyAfterMs);
  }

  /** Asks every server running something for this session to cancel it. */
  cancel(): void {
    for (const l of this.binding.attached()) if (l.tracker.busy) l.conn.cancel();
  }

  /** Ends the session: closes the client and every server connection. Idempotent. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closing.abort(errors.shuttingDown());
    for (const l of this.binding.attached()) detach(this, l);
    this.binding.forgetReplica();
    if (!this.client.destroyed) this.client.destroy();
  }

  /** The session still serves its client (ReaderOwner: a drained server does not resume reading a closed one). @internal */
  get serving(): boolean {
    return this.state === 'ready';
  }

  /** The client socket failed: the session ends. @internal */
  clientError(e: Error): void {
    this.log.debug({ err: e.message }, 'client socket error');
    this.close();
  }

  /** Sends a FATAL error to the client and closes. @internal */
  fatal(e: PgsplitError): void {
    if (this.state === 'closed') return;
    this.ctx.events.error(e.sqlState);
    if (!this.client.destroyed) this.client.end(errorFor(e));
    this.close();
  }

  // ---------------------------------------------------------------------------------------------------
  // Client side: bytes in (ClientReader cuts them into units and queues them)
  // ---------------------------------------------------------------------------------------------------

  /** @internal (the client socket's 'data') */
  onClientData(chunk: Buffer): void {
    if (this.state !== 'ready' || this.terminating) return;
    this.lastActivityAt = performance.now();
    if (this.input.read(chunk)) this.pump();
  }

  // ---------------------------------------------------------------------------------------------------
  // Dispatch: units to servers, in order
  // ---------------------------------------------------------------------------------------------------

  /** @internal */
  anyBusy(except?: ServerLink): boolean {
    for (const l of this.binding.attached()) if (l !== except && l.tracker.busy) return true;
    return false;
  }

  /** Sends every unit that can go now; stops at the first that must wait for answers or a connection. @internal */
  pump(): void {
    if (this.draining) {
      // COPY data belongs to a statement already sent: it goes on, so that the COPY can end.
      while (this.binding.copy !== null && this.input.length > 0 && (this.input.head as Unit).kind === 'copy') {
        sendCopy(this, this.binding.copy, this.input.head as Unit);
        this.input.shift();
      }
      this.closeIfDrained();
      return;
    }
    // No server could be asked (captureSession): routed with what is known rather than asked again.
    let captureFailed = false;
    while (this.state === 'ready' && !this.connecting && !this.awaitingProbe && !this.awaitingInternal && !this.terminating && this.input.length > 0) {
      // Paused: what is inside a transaction or an open batch goes on (so it can end); the rest waits.
      if (this.ctx.control.paused && this.txStatus === 'I' && this.binding.openBatch === null && this.binding.copy === null) return;
      const u = this.input.head as Unit;
      if (u.kind === 'copy') {
        // COPY data belongs to the unit that started the COPY; without one, PostgreSQL ignores it too.
        const link = this.binding.copy ?? this.binding.last;
        if (link) sendCopy(this, link, u);
        this.input.shift();
        continue;
      }
      if (this.binding.copyPending !== null) return;
      const copyIn = this.binding.copy;
      if (copyIn !== null && copyIn.tracker.copyWindow) {
        this.input.shift();
        if (!duringCopyIn(this, u, copyIn)) return;
        continue;
      }
      const batch = this.binding.openBatch;
      if (u.kind === 'terminate') {
        terminate(this, batch);
        return;
      }
      if (batch !== null && batch.tracker.skipping && u.kind === 'local' && u.local?.kind === 'extended' && u.local.sync) {
        // pgsplit's own messages behind a failed batch: skipped, but their Sync is the server's to answer.
        this.input.replaceHead(unit('extended', [SYNC], true, [], 0));
        continue;
      }
      if (batch !== null && batch.tracker.skipping && (u.kind === 'simple' || u.kind === 'function' || u.kind === 'local')) {
        // After an error in the batch the server ignores everything up to the client's Sync, Queries
        // included: this one gets no answer, exactly as on a direct connection.
        this.input.shift();
        continue;
      }
      if (u.kind === 'local') {
        const cmd = u.local as LocalCommand;
        if (batch !== null && batch.tracker.needsSync) {
          // Behind an unsynced batch: whether it is answered (and after what) depends on how the batch went.
          this.input.shift();
          sendLocalProbe(this, batch, cmd);
          return;
        }
        if (this.anyBusy()) return;
        this.input.shift();
        if (!runLocal(this, cmd)) return;
        continue;
      }
      // Behind a COMMIT/ROLLBACK still in flight, where the next unit runs depends on its outcome.
      if (this.binding.placeAwaitsAnswers(this.txStatus)) return;
      if (u.kind === 'simple' && this.ctx.transactions === 'replica-until-write' && this.binding.openBatch === null) {
        const tag = deferredTag(this, u);
        if (tag !== null) {
          if (this.anyBusy()) return;
          if (tag === 'isolation') {
            if (captureSession(this)) return;
            continue;
          }
          this.input.shift();
          answerDeferred(this, tag, u);
          continue;
        }
      }
      const tx = this.binding.tx;
      if (this.txStatus !== 'I' && tx !== null && tx.node.role === 'replica' && tx.node.health === 'down' && !tx.tracker.busy) {
        // The transaction cannot move, and a statement sent to a replica the monitor has out (frozen,
        // gone) could wait for good: the session ends with 08006 instead.
        detach(this, tx, true);
        this.fatal(errors.transactionServerDown(tx.name, tx.node.failReason ?? 'out of rotation'));
        return;
      }
      const batchLink = this.binding.openBatch;
      if (batchLink !== null && batchLink.node.role === 'replica' && !batchLink.tracker.skipping && !u.forcePrimary &&
        (u.kind === 'simple' || u.kind === 'extended' || u.kind === 'function')) {
        // An unsynced batch of reads is open on a replica (a driver prepared with Parse/Describe/Flush): a
        // statement that must run on the primary does not follow it there (it would fail with 25006). The
        // batch is ended first; how it went decides what happens to what the client sent after it.
        this.binding.openBatch = null;
        this.chooser.choose(u);
        this.binding.openBatch = batchLink;
        // So is a transaction pgsplit would open itself (it must start outside the batch to be movable).
        if (u.decision?.target === 'primary' || u.txBegin !== undefined || u.txOpen !== undefined) {
          if (batchLink.tracker.busy && batchLink.tracker.queue.some((e) => e.kind === 'sync')) return;
          endReplicaBatch(this, batchLink);
          return;
        }
      }
      const choice = this.chooser.choose(u);
      const replicaBound = u.decision?.target === 'replica';
      if (!captureFailed && ((replicaBound && (this.isolation === null || this.sequences.needsLoad(performance.now()))) || (this.settingsFrom !== null && choice !== this.settingsFrom)) &&
        (this.txStatus === 'I' || this.tx?.phase === 'deferred')) {
        // Before another server serves the session, the settings it changed are read back (and replayed
        // there); before the first replica read, the default isolation is asked, as serializable
        // transactions cannot run on a standby.
        if (this.anyBusy()) return;
        if (captureSession(this)) return;
        captureFailed = true;
        continue;
      }
      // A replica transaction's first read, on a replica not known to have replayed the session's writes.
      if (u.floorWait !== undefined && choice instanceof ServerLink) {
        if (!this.anyBusy()) awaitTransactionFloor(this, u, choice.node, u.floorWait);
        return;
      }
      if (choice instanceof ServerLink) {
        // Nothing goes behind a read whose guard has not answered: if it fails, the read runs again
        // first (see ResponseRelay.guardFailed), and what followed it must not have run before.
        if (this.anyBusy(choice) || choice.guardPending()) return;
        this.input.shift();
        send(this, u, choice);
        continue;
      }
      // A server must be attached first; other servers must be idle before a new one starts.
      if (this.anyBusy()) return;
      // An idle pooled connection is lent at once (pool.mode transaction: most units of a session).
      const now = choice === 'primary' ? attachPrimaryNow(this) : attachReplicaNow(this, u);
      if (now !== null) {
        this.input.shift();
        send(this, u, now);
        continue;
      }
      this.connecting = true;
      attachFor(this, choice, u)
        .then((link) => {
          this.connecting = false;
          if (this.state !== 'ready') return;
          // The unit goes where the attach landed: a replica, or the primary when no replica answered.
          this.input.shift();
          send(this, u, link);
          this.pump();
        })
        .catch((e: unknown) => {
          this.connecting = false;
          if (this.state === 'closed') return;
          this.input.shift();
          failUnit(this, u, e);
          this.pump();
        });
      return;
    }
  }

  /** @internal (the client socket's 'drain': it took what was written, so the servers are read again) */
  resumeServers(): void {
    for (const l of this.binding.attached()) l.conn.socket.resume();
  }

  /**
   * An expectation the server will never answer (it followed an error), newest first: the bookkeeping of
   * its Parse/Close is undone. One function per session, handed to each link's tracker (no closure per message). @internal
   */
  readonly skipped = (e: Expect): void => {
    e.undo?.();
    // A statement pgsplit answers itself, behind a batch that failed: skipped like a Query would be.
    if (e.local !== undefined) this.awaitingProbe = false;
  };

  // ---------------------------------------------------------------------------------------------------
  // Servers leaving (the failure policy: failure-policy.ts)
  // ---------------------------------------------------------------------------------------------------

  /** The monitor took `node`, a server of the session, out of rotation: see failure-policy.ts. */
  serverDown(node: NodeEntry, reason: string): void {
    serverDown(this, node, reason);
  }

  /** A reload removed this replica: see failure-policy.ts. */
  retire(node: NodeEntry): void {
    retire(this, node);
  }

  /** Whether this session still has (or is opening) a connection to `node`. */
  uses(node: NodeEntry): boolean {
    return this.connectingTo === node || this.binding.hasNode(node);
  }
}
