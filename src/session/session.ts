import type net from 'node:net';
import type { Frame } from '../codec/frame-reader.js';
import { FrameCoalescer } from '../codec/frame-coalescer.js';
import { Backend, Frontend } from '../codec/message-types.js';
import { backendKeyData, commandComplete, errorFor, errorResponse, parameterStatus, readyForQuery } from '../codec/backend-messages.js';
import { readParameterStatus } from '../codec/message-fields.js';
import { PgsplitError, SqlState, errors } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { isAmbiguousEncoding, type Router, type RouteDecision } from '../router/router.js';
import { CAPTURE_SEQUENCES_SQL, SEQUENCE_ROW, sequenceCatalog, type SequenceCatalog } from '../router/sequence-catalog.js';
import type { QueryClassification } from '../router/statement-classifier.js';
import { ServerStartupError, isUnreachable } from '../server/server-connection.js';
import type { ServerNodes, NodeEntry } from '../server/server-nodes.js';
import type { SessionLogin } from '../server/server-login.js';
import { DedicatedSource, type ServerHold, type ServerSource } from '../server/server-source.js';
import { POOLED_MODES, PooledSource } from '../server/pooled-source.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import type { ReplicaMonitor } from '../monitor/replica-monitor.js';
import { SessionSettings } from './session-settings.js';
import { splitStartupOptions } from './startup-options.js';
import type { LocalCommand } from './local-command.js';
import { LocalAnswers, type LocalAnswer } from './local-answers.js';
import { TaggedTransaction } from './tagged-transaction.js';
import { ServerLink, type Expect } from './server-link.js';
import { ResponseRelay, type RelaySession } from './response-relay.js';
import { unit, type Unit } from './unit.js';
import { Consistency } from './consistency.js';
import { Binding } from './binding.js';
import { RequestWriter, SYNC } from './request-writer.js';
import { ClientReader } from './client-reader.js';
import type { SessionEvents } from './session-events.js';
import { TargetChooser, type ChooserState } from './target-chooser.js';
import {
  isolationOf, movableIsolation, needsReplay, parseBeginModes, statementsOf, type Isolation,
} from '../router/transaction-statements.js';

/** Everything a session needs from the proxy around it. */
export interface SessionContext {
  /** Shared with the proxy: while `paused` (admin PAUSE), no new work starts outside a transaction. */
  control: { paused: boolean };
  nodes: ServerNodes;
  router: Router;
  log: Logger;
  maxMessageSize: number;
  connectTimeoutMs: number;
  /** application_name globs whose sessions are tagged. */
  tagApplicationNames: readonly string[];
  defaultRoute: 'primary' | 'replica';
  /** Keeps each server's health, recovery state and replay position (see ReplicaMonitor). */
  monitor: ReplicaMonitor;
  /** routing.max_lag, ms. */
  maxLagMs: number;
  /** routing.read_your_writes_timeout, ms. */
  readYourWritesTimeoutMs: number;
  /** routing.when_no_replica. */
  whenNoReplica: 'primary' | 'error';
  /** routing.transactions: tagged READ COMMITTED transactions start on a replica and move at their first write. */
  transactions: 'replica-until-write' | 'primary';
  /** monitor.timeout, ms: how long a busy link to a replica taken out may stay silent. */
  monitorTimeoutMs: number;
  /** limits.max_pending_bytes: client input held behind running statements before reading pauses. */
  maxPendingBytes: number;
  /** What the session reports as it runs (the proxy's stats count it). */
  events: SessionEvents;
  /** The proxy's server pools (pool.*), one per (node, server role, database, user). */
  pools: PoolRegistry;
  /** pool.mode: 'session' borrows pooled connections for the session's length (see PooledSource). */
  poolMode: 'session' | 'transaction';
}

/** The row of a capture that carries the default isolation (no setting has a name with a space). */
const ISOLATION_ROW = ' isolation';
const CAPTURE_ISOLATION_SQL = `SELECT '${ISOLATION_ROW}', pg_catalog.current_setting('default_transaction_isolation')`;
const NO_DECISIONS: readonly RouteDecision[] = [];

/** Lifecycle of a session. */
export type SessionState = 'starting' | 'ready' | 'closed';

/**
 * Executes one client's traffic: splits it into units, asks the router where each may run, keeps
 * transactions, open batches and COPY on one server, replays settings and prepared statements on servers
 * attached later, and relays responses without parsing result rows. Units are sent in order; a unit goes
 * to a different server only after every earlier unit has been answered, so responses never interleave.
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

  private readonly ctx: SessionContext;
  private readonly log: Logger;
  /** The client's bytes as units, queued until sent; reading paused while too much waits (max_pending_bytes). */
  private readonly input: ClientReader;
  /** Takes servers' answers to the client (fast path, held replica answers, re-runs). */
  private readonly relay: ResponseRelay;
  private readonly serverParams: Record<string, string>;
  private readonly login: SessionLogin;
  /** Where the session's server connections come from and go back to (server-source.ts). */
  private readonly source: ServerSource;
  /** Aborted when the session closes: a wait for a pooled connection ends (its place in the queue goes). */
  private readonly closing = new AbortController();
  /** The server connections the session holds, and why (transaction, open batch, COPY, last, replica). */
  private readonly binding = new Binding();
  /** The bytes that go to servers, and the client's statement registry (prepared again where missing). */
  private readonly writer = new RequestWriter();
  /** pgsplit's own settings (tag, max_lag, after) and the answers to SET / RESET / SHOW of them. */
  private readonly local: LocalAnswers;
  private readonly settings = new SessionSettings();
  /** A statement pgsplit answers itself waits behind a probe (see request-writer.ts, PROBE_PARSE): nothing goes on until it is answered. */
  private awaitingProbe = false;
  /** An internal query (see captureIsolation) is under way: nothing goes on until it is answered. */
  private awaitingInternal = false;
  /** A tagged session's transaction that is deferred or open on a replica (routing.transactions); read by the chooser. */
  tx: TaggedTransaction | null = null;
  /**
   * The session's default_transaction_isolation, asked of a server before its first replica read and
   * again after anything may have changed it; null = not known yet, 'unknown' = the server did not say.
   */
  isolation: Isolation | 'unknown' | null = null;
  /**
   * The link where the session's settings last changed (SET, RESET, set_config, DISCARD, LOAD), until
   * they are read back from it (captureSession): before any other server serves the session.
   */
  private settingsFrom: ServerLink | null = null;
  /** The client sent Terminate behind an unsynced batch: its server is ending (see pump); nothing more starts. */
  private terminating = false;
  private connecting = false;
  /** The node a connection is being opened to, if any. */
  private connectingTo: NodeEntry | null = null;
  private readonly cancelKey: { pid: number; secret: number };
  /** Read-your-writes and monotonic reads: the session's floor, and the choice of a replica for a read. */
  private readonly consistency: Consistency;
  /** Set by drain(): finish what is in flight, start nothing new. */
  private draining = false;
  /** The sequences of the session's database (reads of them go to the primary). */
  private readonly sequences: SequenceCatalog;
  /** Where each unit runs (no sockets: it reads the session's state and links, and sets the unit's decision). */
  private readonly chooser: TargetChooser;
  /** performance.now() of the client's last bytes or the last answer completed (idle-in-transaction timeout). */
  private lastActivityAt = performance.now();
  /** pool.mode transaction: a server connection goes back to its pool as soon as it holds nothing of the client's (giveBackIdle). */
  private readonly perTransaction: boolean;
  /** SET ROLE or SET SESSION AUTHORIZATION ran: a connection that had the session's settings needs more than RESET ALL. */
  private identityChanged = false;

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
    this.log = opts.ctx.log.child({ session: opts.id });
    // The session is the relay's view of it (RelaySession) and the chooser's (ChooserState): no object or
    // closure per session for either, which an idle session would carry for nothing.
    this.relay = new ResponseRelay(this, this.log, opts.ctx.events);
    this.input = new ClientReader(opts.client, opts.ctx, (e) => this.fatal(e), () => this.state === 'ready');

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
    this.onServerLost(link, why, frame);
    if (this.state === 'ready') this.pump();
  }

  answered(link: ServerLink): void {
    this.lastActivityAt = performance.now();
    if (link.node.retiring) this.letGoIfRetired(link);
    this.pump();
    if (this.perTransaction) this.giveBackIdle();
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
    this.client.on('close', () => this.close());
    this.client.on('error', (e) => {
      this.log.debug({ err: e.message }, 'client socket error');
      this.close();
    });
    if (this.local.startupError !== null) {
      this.failStartup(this.local.startupError);
      return;
    }
    let home: ServerLink;
    try {
      home = await this.attachFor(this.local.tagged ? 'replica' : 'primary');
    } catch (e) {
      this.failStartup(e);
      return;
    }
    if (this.state === 'closed') return;
    const out: Buffer[] = [];
    for (const [k, rv] of home.conn.parameters) {
      // A tagged session's writes go to the primary: it must not look like a standby to the client (libpq
      // target_session_attrs=read-write and pgjdbc targetServerType=primary would refuse it).
      const v = k === 'in_hot_standby' && home.node.role === 'replica' ? 'off' : rv;
      out.push(parameterStatus(k, v));
      this.noteParameter(k, v);
    }
    out.push(backendKeyData(this.cancelKey.pid, this.cancelKey.secret), readyForQuery('I'));
    this.client.write(Buffer.concat(out));
    this.state = 'ready';
    // A reload may have removed the home replica while it was being connected to.
    if (home.node.retiring) this.letGoIfRetired(home);
    this.log.debug({ user: this.user, database: this.database, tagged: this.local.tagged, tag: this.local.tagSource, home: home.name }, 'session ready');
    this.client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    this.client.on('drain', () => this.resumeServers());
    if (leftover && leftover.length > 0) this.onClientData(leftover);
    // The first server told the client its parameters; unless the leftover keeps it busy, it goes back.
    if (this.perTransaction) this.giveBackIdle();
    // The proxy paused the socket at the end of the handshake, so that nothing sent while the first
    // server was being connected was dropped; it flows from here (unless the leftover filled the queue).
    if (!this.input.full) this.client.resume();
  }

  private failStartup(e: unknown): void {
    const code = e instanceof ServerStartupError ? e.fields.C ?? SqlState.connectionException : e instanceof PgsplitError ? e.sqlState : SqlState.internalError;
    this.ctx.events.error(code);
    // A server refusing pgsplit's own login is the operator's to fix (error); one refusing the client (no such database) is the client's (info).
    const level = e instanceof PgsplitError && e.code === 'SERVER_LOGIN_FAILED' ? 'error' : e instanceof ServerStartupError ? 'info' : 'warn';
    this.log[level]({ client: `${this.client.remoteAddress ?? ''}:${this.client.remotePort ?? 0}`, user: this.user, database: this.database, code,
      err: e instanceof Error ? e.message : String(e) }, 'client rejected during startup');
    if (e instanceof ServerStartupError) {
      this.client.end(e.raw);
    } else if (e instanceof PgsplitError) {
      this.client.end(errorFor(new PgsplitError(e.code, e.sqlState, e.message, { severity: 'FATAL', hint: e.hint })));
    } else {
      this.client.end(errorFor(errors.internal(String(e))));
    }
    this.close();
  }

  /** The session's state for metrics and the admin console (PgBouncer's words where they fit). */
  get activity(): 'starting' | 'active' | 'idle' | 'idle_in_transaction' {
    if (this.state !== 'ready') return 'starting';
    if (this.input.length > 0 || this.anyBusy()) return 'active';
    return this.txStatus === 'I' ? 'idle' : 'idle_in_transaction';
  }

  /** Each attached server connection: its node, whether a statement is running on it, the server's backend pid. */
  serverLinks(): Array<{ node: NodeEntry; busy: boolean; backendPid: number }> {
    return [...this.binding.attached()].map((l) => ({ node: l.node, busy: l.tracker.busy, backendPid: l.conn.backendPid }));
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
   * here, the caller has one).
   */
  private leave(last?: Buffer, destroyAfterMs: number | null = 5000): void {
    const client = this.client;
    if (!client.destroyed) {
      if (destroyAfterMs !== null) {
        const timer = setTimeout(() => client.destroy(), destroyAfterMs);
        timer.unref();
        client.once('close', () => clearTimeout(timer));
      }
      // Once all of it, the end included, is with the kernel, the socket need not wait for the client to
      // close its side: a client that does not read, or keeps its half open, would hold it (and a drain).
      client.once('finish', () => client.destroy());
      if (last !== undefined) client.end(last);
      else client.end();
    }
    this.state = 'closed';
    for (const l of this.binding.attached()) this.detach(l);
    this.binding.forgetReplica();
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
    for (const l of this.binding.attached()) this.detach(l);
    this.binding.forgetReplica();
    if (!this.client.destroyed) this.client.destroy();
  }

  /** Sends a FATAL error to the client and closes. */
  private fatal(e: PgsplitError): void {
    if (this.state === 'closed') return;
    this.ctx.events.error(e.sqlState);
    if (!this.client.destroyed) this.client.end(errorFor(e));
    this.close();
  }

  // ---------------------------------------------------------------------------------------------------
  // Client side: bytes in (ClientReader cuts them into units and queues them)
  // ---------------------------------------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.state !== 'ready' || this.terminating) return;
    this.lastActivityAt = performance.now();
    if (this.input.read(chunk)) this.pump();
  }

  // ---------------------------------------------------------------------------------------------------
  // Dispatch: units to servers, in order
  // ---------------------------------------------------------------------------------------------------

  private txEndInFlight(): boolean {
    for (const l of this.binding.attached()) {
      for (const e of l.tracker.queue) if (e.endsTx) return true;
    }
    return false;
  }

  private anyBusy(except?: ServerLink): boolean {
    for (const l of this.binding.attached()) if (l !== except && l.tracker.busy) return true;
    return false;
  }

  /** Sends every unit that can go now; stops at the first that must wait for answers or a connection. */
  private pump(): void {
    if (this.draining) {
      // COPY data belongs to a statement already sent: it goes on, so that the COPY can end.
      while (this.binding.copy !== null && this.input.length > 0 && (this.input.head as Unit).kind === 'copy') {
        this.sendCopy(this.binding.copy, this.input.head as Unit);
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
        if (link) this.sendCopy(link, u);
        this.input.shift();
        continue;
      }
      if (this.binding.copyPending !== null) return;
      const copyIn = this.binding.copy;
      if (copyIn !== null && copyIn.tracker.copyWindow) {
        this.input.shift();
        if (!this.duringCopyIn(u, copyIn)) return;
        continue;
      }
      const batch = this.binding.openBatch;
      if (u.kind === 'terminate') {
        // Answers up to the last Sync or Query sent still come, and go to the client first.
        for (const l of this.binding.attached()) if (l.tracker.queue.some((e) => e.kind === 'sync')) return;
        if (batch === null && this.anyBusy()) return;
        this.input.shift();
        if (batch === null) {
          this.leave();
          return;
        }
        // An unsynced batch: the Terminate goes to its server, as on a direct connection. What the server
        // sends before it ends (answers a Flush asked for) still reaches the client; the server rolls the
        // batch's implicit transaction back. The session leaves when that server has closed.
        this.terminating = true;
        batch.conn.close();
        const timer = setTimeout(() => this.leave(), this.ctx.monitorTimeoutMs);
        timer.unref();
        batch.conn.socket.once('close', () => clearTimeout(timer));
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
          this.sendLocalProbe(batch, cmd);
          return;
        }
        if (this.anyBusy()) return;
        this.input.shift();
        if (!this.runLocal(cmd)) return;
        continue;
      }
      // Behind a COMMIT/ROLLBACK still in flight, where the next unit runs depends on its outcome.
      if (this.txEndInFlight()) return;
      if (u.kind === 'simple' && this.ctx.transactions === 'replica-until-write' && this.binding.openBatch === null) {
        const tag = this.deferredTag(u);
        if (tag !== null) {
          if (this.anyBusy()) return;
          if (tag === 'isolation') {
            if (this.captureSession()) return;
            continue;
          }
          this.input.shift();
          this.answerDeferred(tag, u);
          continue;
        }
      }
      const tx = this.binding.tx;
      if (this.txStatus !== 'I' && tx !== null && tx.node.role === 'replica' && tx.node.health === 'down' && !tx.tracker.busy) {
        // The transaction cannot move, and a statement sent to a replica the monitor has out (frozen,
        // gone) could wait for good: the session ends with 08006 instead.
        this.detach(tx, true);
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
          this.endReplicaBatch(batchLink);
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
        if (this.captureSession()) return;
        captureFailed = true;
        continue;
      }
      if (choice instanceof ServerLink) {
        if (this.anyBusy(choice)) return;
        this.input.shift();
        this.send(u, choice);
        continue;
      }
      // A server must be attached first; other servers must be idle before a new one starts.
      if (this.anyBusy()) return;
      this.connecting = true;
      this.attachFor(choice, u)
        .then((link) => {
          this.connecting = false;
          if (this.state !== 'ready') return;
          // The unit goes where the attach landed: a replica, or the primary when no replica answered.
          this.input.shift();
          this.send(u, link);
          this.pump();
        })
        .catch((e: unknown) => {
          this.connecting = false;
          if (this.state === 'closed') return;
          this.input.shift();
          this.failUnit(u, e);
          this.pump();
        });
      return;
    }
  }

  /**
   * Runs a statement pgsplit answers itself. False when the answer comes later (SHOW pgsplit.lsn asks the
   * primary): the units behind it wait until it is written.
   */
  private runLocal(cmd: LocalCommand): boolean {
    if (this.local.needsLsn(cmd)) {
      this.connecting = true;
      void this.local.primaryLsn().then((lsn) => {
        this.connecting = false;
        if (this.state === 'closed') return;
        this.writeLocalAnswer(this.local.answer(cmd, this.txStatus, lsn));
        if (this.state === 'ready') this.pump();
      });
      return false;
    }
    this.writeLocalAnswer(this.local.answer(cmd, this.txStatus));
    return true;
  }

  /** Writes what LocalAnswers built; after an extended-protocol error, skips to the client's Sync as a server does. */
  private writeLocalAnswer(a: LocalAnswer): void {
    for (const code of a.errors) this.ctx.events.error(code);
    this.client.write(a.bytes);
    if (a.skipToSync) this.skipToClientSync();
  }

  /**
   * What pgsplit answers itself of a tagged session's transaction control (routing.transactions:
   * replica-until-write): 'BEGIN' for a plain BEGIN it defers (see TaggedTransaction), 'COMMIT' /
   * 'ROLLBACK' for the end of a deferred transaction that never ran anything; 'isolation' when the
   * session's default isolation must be asked first; null when the Query goes to a server.
   */
  private deferredTag(u: Unit): 'BEGIN' | 'COMMIT' | 'ROLLBACK' | 'isolation' | null {
    const tx = this.tx;
    if (tx === null ? this.txStatus !== 'I' || !this.local.tagged || this.pinned !== null : tx.phase !== 'deferred') return null;
    if (u.queries.length !== 1 || this.binding.copy !== null || isAmbiguousEncoding(this.clientEncoding)) return null;
    const c = this.ctx.router.classify(u.queries[0] as string, this.standardConformingStrings);
    const s = c.statements[0];
    if (s === undefined || c.statements.length !== 1 || c.hints.route !== undefined) return null;
    if (tx !== null) {
      if ((s.transaction === 'commit' || s.transaction === 'rollback') && !s.chain) return s.transaction === 'commit' ? 'COMMIT' : 'ROLLBACK';
      return null;
    }
    if (s.transaction !== 'begin') return null;
    const modes = parseBeginModes(s.text);
    if (modes === null || modes.readOnly === true) return null;
    // Settings changed since they were last read: the default isolation may be among them.
    if (modes.isolation === undefined && this.settingsFrom !== null) return 'isolation';
    const iso = modes.isolation ?? this.isolation;
    if (iso === null) return 'isolation';
    return iso !== 'unknown' && movableIsolation(iso) ? 'BEGIN' : null;
  }

  /** Answers a deferred BEGIN, or the COMMIT/ROLLBACK of a deferred transaction, as the server would. */
  private answerDeferred(tag: 'BEGIN' | 'COMMIT' | 'ROLLBACK', u: Unit): void {
    if (tag === 'BEGIN') {
      const s = this.ctx.router.classify(u.queries[0] as string, this.standardConformingStrings).statements[0];
      this.tx = new TaggedTransaction('deferred', s?.text ?? 'BEGIN');
      this.txStatus = 'T';
      this.local.transactionBegan();
    } else {
      this.tx = null;
      this.txStatus = 'I';
      this.local.transactionEnded(tag === 'COMMIT');
    }
    this.client.write(Buffer.concat([commandComplete(tag), readyForQuery(this.txStatus)]));
  }

  /** Ends `link`'s unsynced batch with a probe and a Sync of pgsplit's (see Expect.endsReplicaBatch). */
  private endReplicaBatch(link: ServerLink): void {
    const bytes = this.writer.endBatch(link);
    this.binding.openBatch = null;
    this.awaitingInternal = true;
    this.writeToServer(link, bytes);
  }

  /**
   * Asks a server what the session holds (one swallowed query): its default_transaction_isolation and,
   * when settings changed there (settingsFrom), the settings made in the session, which then replace the
   * known ones (replayed on the other servers). Asks the link that changed them, else the replica's.
   * False when no link can be asked: the isolation is then 'unknown', and replicas serve no reads that
   * depend on it until it is asked again.
   */
  private captureSession(): boolean {
    const usable = (l: ServerLink): boolean =>
      this.binding.holds(l) && l.conn.state === 'ready' && !l.tracker.busy && !l.tracker.needsSync && !l.tracker.skipping && this.binding.copy !== l;
    let from = this.settingsFrom;
    if (from !== null && !usable(from)) {
      // Gone or in a state nothing can be asked in: what it changed cannot be read back.
      this.log.warn({ node: from.name }, 'session settings could not be read back from the server that changed them');
      this.settingsFrom = from = null;
    }
    // Otherwise a link that has every setting the session made: its replica's first (what is asked is the
    // same there, and it answers while the primary is down), else any.
    const current = (l: ServerLink): boolean => usable(l) && l.settingsVersion === this.settings.version;
    let link: ServerLink | undefined = from ?? this.binding.replicaLink;
    if (link === undefined || !current(link)) link = from ?? [...this.binding.attached()].find(current);
    if (link === undefined) {
      if (this.perTransaction && from === null && this.binding.empty && !this.connecting) {
        // Every connection went back to the pool: one is borrowed to ask.
        this.attachToAsk();
        return true;
      }
      this.isolation = 'unknown';
      this.settingsFrom = null;
      return false;
    }
    const target = link;
    const withSettings = from === target;
    let seen: Isolation | 'unknown' = 'unknown';
    const values = new Map<string, string>();
    const withSequences = this.sequences.needsLoad(performance.now());
    const sequences: string[] = [];
    const sql = `${withSettings ? `${this.settings.captureSql()} UNION ALL ${CAPTURE_ISOLATION_SQL}` : CAPTURE_ISOLATION_SQL}${withSequences ? ` UNION ALL ${CAPTURE_SEQUENCES_SQL}` : ''}`;
    const bytes = this.writer.internalQuery(target, sql, (row) => {
      if (row === null) {
        this.isolation = seen;
        if (withSequences) this.sequences.load(sequences, performance.now());
        if (withSettings && this.settingsFrom === target) {
          this.settingsFrom = null;
          this.settings.replace(values);
          target.settingsVersion = this.settings.version;
        }
        // A standby session whose default became serializable (a SET inside a READ ONLY transaction
        // there) refuses every statement after it: let it go; the next replica read gets a fresh
        // connection, and the replay never gives a standby a serializable default.
        if (seen === 'serializable' && target.node.role === 'replica' && this.binding.holds(target)) {
          queueMicrotask(() => {
            if (this.binding.holds(target) && !target.tracker.busy && !this.binding.holdsState(target)) this.detach(target);
          });
        }
      } else if (row[0] === ISOLATION_ROW) seen = isolationOf(row[1] ?? '') ?? 'unknown';
      else if (row[0] === SEQUENCE_ROW) {
        if (row[1] !== undefined && row[1] !== null) sequences.push(row[1]);
      }
      else if (row[0] !== undefined && row[0] !== null && row[1] !== undefined && row[1] !== null) values.set(row[0], row[1]);
    });
    this.awaitingInternal = true;
    this.writeToServer(target, bytes);
    return true;
  }

  /** Borrows the session's first server (its replica when tagged) for captureSession to ask; then sends what waits. */
  private attachToAsk(): void {
    this.connecting = true;
    this.attachFor(this.local.tagged ? 'replica' : 'primary').then(() => {
      this.connecting = false;
      if (this.state === 'ready') this.pump();
    }, (e: unknown) => {
      this.connecting = false;
      if (this.state === 'closed') return;
      // Routed with what is known; the unit's own attach says what is wrong.
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'no server to read the session\'s settings from');
      this.isolation = 'unknown';
      this.pump();
    });
  }

  /**
   * pool.mode transaction: each attached link that holds nothing of the client's goes back to its pool
   * (see detach): no transaction, open batch or COPY on it, no reply owed, no answer held, no pin. A
   * link where the session's settings changed is asked for them first (captureSession), and goes back
   * once that is answered: the next connection gets them replayed.
   */
  private giveBackIdle(): void {
    if (this.state !== 'ready' || this.awaitingProbe || this.awaitingInternal || this.terminating || this.binding.copyPending !== null) return;
    for (const l of this.binding.attached()) {
      if (l.tracker.busy || l.tracker.needsSync || l.tracker.skipping || l.held !== null || this.binding.holdsState(l)) continue;
      // LISTEN, a temporary table, SQL PREPARE, ...: the session keeps its primary connection (see notePins).
      if (this.pinned !== null && l.node.role === 'primary') continue;
      if (this.settingsFrom === l) {
        if (!this.anyBusy()) this.captureSession();
        return;
      }
      if (l.parked) continue;
      if (l.hold.park === undefined) {
        this.detach(l, false, true);
        continue;
      }
      // Kept until another client needs it (ServerPool.park): the next statement then borrows nothing.
      l.parked = true;
      l.hold.park(() => {
        if (l.parked && this.binding.holds(l)) {
          l.parked = false;
          this.detach(l, false, true);
        }
      });
    }
  }

  /**
   * A statement pgsplit answers itself, behind `link`'s unsynced batch: a probe and an empty Query go in
   * its place, and it is answered when the server has answered them (see request-writer.ts, EMPTY_QUERY).
   */
  private sendLocalProbe(link: ServerLink, cmd: LocalCommand): void {
    const bytes = this.writer.localProbe(link, cmd);
    // The empty Query ends the batch: an error before it skips it, not what follows.
    this.binding.openBatch = null;
    this.awaitingProbe = true;
    this.writeToServer(link, bytes);
  }

  /** COPY data, CopyDone or CopyFail to the server that runs (or last ran) the COPY. */
  private sendCopy(link: ServerLink, u: Unit): void {
    this.writeToServer(link, this.writer.copy(link, u));
  }

  /**
   * A unit the client sent while `link` reads COPY FROM STDIN data. PostgreSQL ignores Sync and Flush
   * there (so does pgsplit: expecting an answer would wait for good), and ends the connection over
   * anything else (08P01): a Query or extended message goes to that server, which says so itself (or, if
   * the COPY failed meanwhile, answers it as usual). Returns false when the session ended.
   */
  private duringCopyIn(u: Unit, link: ServerLink): boolean {
    if (u.frames.length > 0 && u.frames.every((f) => f.type === Frontend.Sync || f.type === Frontend.Flush)) return true;
    if (u.kind === 'terminate') {
      this.close();
      return false;
    }
    if (u.kind === 'local') {
      this.fatal(errors.unexpectedMessage('Q', 'during COPY FROM STDIN: end the COPY with CopyDone or CopyFail first'));
      return false;
    }
    u.decision = { target: link.node.role, reason: 'copy-in', classifications: [] };
    this.send(u, link);
    return true;
  }

  /**
   * The replica a read runs on, or the primary, as Consistency chooses (raising the floor, keeping or
   * waiting for the attached replica, another one, or the primary); a replica that cannot be reached is
   * reported to the monitor and the next choice taken. Else the primary, or an error under
   * routing.when_no_replica: error.
   */
  private async replicaFor(u: Unit | undefined): Promise<ServerLink> {
    const d = u?.decision;
    const choice = await this.consistency.choose(this.binding.replica, d, u?.avoid);
    for (let node = choice.node; node !== null; node = choice.node) {
      // Noted before connecting, as the reason of this attempt; a retry with the same reason needs no new decision.
      if (u && d && choice.reason !== null && u.decision?.reason !== choice.reason) u.decision = { ...d, reason: choice.reason };
      // The attached replica: its link exists already.
      if (choice.kept && this.binding.hasNode(node)) return this.connectReplica(node);
      try {
        return await this.connectReplica(node);
      } catch (e) {
        // Refused, unreachable, or shutting down / starting up (57P03): try the next one.
        const notNow = e instanceof ServerStartupError && e.fields.C === SqlState.cannotConnectNow;
        if (!isUnreachable(e) && !notNow) throw e;
        this.ctx.monitor.reportUnreachable(node, (e as Error).message);
        this.log.warn({ node: node.endpoint.name, err: (e as Error).message }, 'replica unreachable; trying the next one');
      }
      await this.consistency.next(choice);
    }
    // routing.when_no_replica: error refuses reads, not sessions: a session starting now gets the primary
    // as its first server (its writes work), and its reads are refused one by one.
    if (choice.noReplica && this.ctx.whenNoReplica === 'error' && u !== undefined) throw this.consistency.noReplicaError(choice.req);
    if (u && d && choice.reason !== null) u.decision = { ...d, reason: choice.reason };
    return this.attachPrimary();
  }

  /** Attaches `node` as the session's replica (the previous one, if any, is let go). */
  private async connectReplica(node: NodeEntry): Promise<ServerLink> {
    const existing = this.binding.linkTo(node);
    if (existing) return existing;
    const link = await this.connect(node);
    const before = this.binding.replica;
    if (before !== null && before !== node) {
      const old = this.binding.linkTo(before);
      // A switch: replicaFor raised the floor for it already.
      const raise = this.consistency.raiseFloor;
      if (old && !old.tracker.busy) this.detach(old);
      this.consistency.raiseFloor = raise;
    }
    this.binding.bindReplica(node);
    return link;
  }

  private async attachPrimary(): Promise<ServerLink> {
    const existing = this.binding.linkTo(this.ctx.nodes.primary);
    if (existing) return existing;
    return this.connect(this.ctx.nodes.primary);
  }

  /**
   * Attaches a server for a unit (or for the session's start, without one): a replica through
   * replicaFor, or the primary. A replica that cannot be reached is skipped; nothing has been sent yet,
   * so falling back is safe.
   */
  private async attachFor(role: 'primary' | 'replica', u?: Unit): Promise<ServerLink> {
    return role === 'replica' ? this.replicaFor(u) : this.attachPrimary();
  }

  private async connect(node: NodeEntry): Promise<ServerLink> {
    const existing = this.binding.linkTo(node);
    if (existing) return existing;
    let hold: ServerHold;
    // Counted as in use while connecting, so that a reload removing the node waits for this link too.
    this.connectingTo = node;
    try {
      hold = await this.source.acquire(node, this.login, this.serverParams, this.closing.signal);
    } finally {
      this.connectingTo = null;
    }
    if (this.state === 'closed') {
      this.source.release(hold, 'clean');
      throw errors.shuttingDown();
    }
    const conn = hold.conn;
    const link = new ServerLink(node, hold, this.skipped);
    this.binding.attach(link);
    conn.onData = (chunk: Buffer) => this.relay.onServerData(link, chunk);
    const onDrain = (): void => this.input.resume();
    const onError = (e: Error): void => this.onServerLost(link, e.message);
    const onClose = (): void => this.onServerLost(link, 'the server closed the connection');
    conn.socket.on('drain', onDrain);
    conn.socket.on('error', onError);
    conn.socket.on('close', onClose);
    // A pooled connection outlives the session's use of it: its listeners go when the link is let go.
    link.unbind = () => {
      conn.onData = () => {};
      conn.socket.removeListener('drain', onDrain);
      conn.socket.removeListener('error', onError);
      conn.socket.removeListener('close', onClose);
    };
    this.log.debug({ node: node.endpoint.name }, 'server attached');
    return link;
  }

  /**
   * Lets a link go: politely, or with `abort` (its server failed or froze) at once. `keepReplica`: an idle
   * link given back to its pool (giveBackIdle) leaves its node the session's replica (Binding.release).
   */
  private detach(link: ServerLink, abort = false, keepReplica = false): void {
    // A link left inside a transaction, an open batch or a COPY, or running something, is not reusable.
    const outcome = link.tracker.busy || abort ? 'broken' : this.binding.holdsState(link) || this.binding.copyPending?.link === link ? 'unfinished' : 'dirty';
    // The session's settings are on it (replayed, or changed there): a pool resets them before the next borrower.
    if (link.settingsVersion !== 0 || link.settingsTouched) link.hold.left?.(this.identityChanged ? 'identity' : 'settings');
    // A replay ran the session's LOADs here too: nothing but a new connection undoes a loaded library.
    if (link.settingsVersion !== 0 && this.settings.loadsLibraries) link.hold.left?.('load');
    const released = this.binding.release(link, keepReplica);
    if (released === null) return;
    // The next replica may be behind this one: raise the floor before reading there.
    if (released.wasReplica) this.consistency.raiseFloor = true;
    if (link.tracker.queue.some((e) => e.local !== undefined)) this.awaitingProbe = false;
    // Its default isolation stays unknown (null): asked again of another link before the next replica read.
    if (link.tracker.queue.some((e) => e.capture !== undefined)) this.awaitingInternal = false;
    if (this.settingsFrom === link) {
      // Worth a warning only while the session goes on (its other servers miss those settings), not at its end.
      if (this.state !== 'closed') this.log.warn({ node: link.name }, 'the server that changed session settings is gone before they were read back');
      this.settingsFrom = null;
    }
    link.unbind();
    this.source.release(link.hold, outcome);
  }

  /** A unit that could not be sent anywhere: tell the client, keeping the protocol in step. */
  private failUnit(u: Unit, e: unknown): void {
    // The session goes on, so a server's FATAL startup error (bad password in a URL, ...) becomes an ERROR.
    const err = e instanceof ServerStartupError
      ? errorResponse({ severity: 'ERROR', code: e.fields.C ?? SqlState.connectionException, message: e.fields.M ?? e.message, detail: e.fields.D, hint: e.fields.H })
      : errorFor(e instanceof PgsplitError ? asError(e) : errors.internal(String(e)));
    this.log[e instanceof PgsplitError && e.code === 'SERVER_LOGIN_FAILED' ? 'error' : 'warn']({ err: e instanceof Error ? e.message : String(e) }, 'could not run statement');
    this.ctx.events.error(e instanceof ServerStartupError ? e.fields.C ?? SqlState.connectionException : e instanceof PgsplitError ? e.sqlState : SqlState.internalError);
    if (u.kind === 'extended' && !u.complete) {
      this.client.write(err);
      this.input.discardUntilSync();
      return;
    }
    this.client.write(Buffer.concat([err, readyForQuery(this.txStatus)]));
  }

  /** Sends a unit: settings replay first if needed, then its frames with any re-prepares injected. */
  private send(u: Unit, link: ServerLink): void {
    // Frames of one client chunk are adjacent in memory: the coalescer sends them as one buffer, one write.
    const out = new FrameCoalescer();
    const idle = !link.tracker.busy;
    // A unit with an Execute may start a COPY too: the frame loop below marks it (no second pass here).
    link.tracker.nextUnit(u.kind === 'simple');
    const replay = this.settings.replayFor(link.settingsVersion, link.node.role === 'replica');
    const opening = u.txOpen;
    // Not behind unsynced extended messages: after an error among them the server would skip the replay.
    // Not inside a transaction either, unless pgsplit opens it on this server now (after the replay).
    if (replay !== null && (this.txStatus === 'I' || opening !== undefined) && !this.binding.openBatch && !link.tracker.needsSync) {
      this.writer.replay(link, replay, this.settings.version, out);
    }
    if (opening !== undefined) this.openTransaction(u, link, opening, out);
    else if (u.txBegin !== undefined) this.tx = link.node.role === 'replica' ? new TaggedTransaction('replica', u.txBegin) : null;
    const d = u.decision;
    // What ran on the primary may be newer than any replica: later replica reads must catch up first.
    if (link.node.role === 'primary' && (d !== undefined || u.kind === 'function')) this.consistency.raiseFloor = true;
    if (d) {
      this.ctx.events.routed(link.name, d.reason);
      for (const c of d.classifications) {
        this.notePins(c, link);
        const h = c.hints;
        if (h.malformed.length > 0) this.ctx.events.malformedHints(h.malformed.length);
        if (h.route !== undefined || h.maxLagMs !== undefined || h.after !== undefined) this.ctx.events.hints(1);
      }
      if (this.ctx.log.isLevelEnabled('debug')) this.log.debug({ node: link.name, reason: d.reason }, 'routed');
    }
    const endsTx = d !== undefined && endsTransaction(d.classifications);
    u.sentAt = performance.now();
    // Inside a transaction that may still move, a 25006 (a read that wrote after all) moves it, and the
    // unit runs again on the primary: its answer is held back the same way.
    const movable = this.tx !== null && this.tx.phase === 'replica' && this.binding.tx === link && this.txStatus === 'T';
    u.retryable = link.node.role === 'replica' && !u.forcePrimary && u.complete && (this.txStatus === 'I' || movable) &&
      !this.binding.openBatch && (u.kind === 'simple' || u.kind === 'extended');
    if (u.retryable && !link.tracker.busy) this.relay.hold(link);
    let flush = false;
    if (d !== undefined && !link.tracker.skipping && startsCopyFrom(d.classifications, u.complete)) {
      if (u.complete) this.binding.copyPending = { link, unit: u, executes: 0 };
      else {
        // Unsynced: a Flush makes the server answer each Execute (or start the COPY) now. Only on an idle
        // link, so that every Execute's end that comes back is this unit's.
        let executes = 0;
        for (const f of u.frames) if (f.type === Frontend.Execute) executes++;
        if (executes > 0 && idle) {
          this.binding.copyPending = { link, unit: u, executes };
          flush = true;
        }
      }
    }
    if ((u.kind === 'simple' || u.kind === 'function') && link.tracker.needsSync) {
      // Behind unsynced extended messages: the probe's answer tells whether the server runs this or skips
      // it. Either way the batch ends here (a Query or FunctionCall leaves extended mode).
      this.writer.probe(link, out);
    }
    this.writer.frames(u, link, endsTx, flush, out);
    if (u.kind === 'extended' && !u.complete && d !== undefined && hasEffects(d)) {
      link.tracker.carry(d);
    }
    // A batch stays open until its Sync; so does a server skipping to that Sync after an error.
    this.binding.openBatch = (u.kind === 'extended' && !u.complete) || link.tracker.skipping ? link : null;
    this.binding.last = link;
    this.writeToServer(link, out.take());
  }

  /**
   * Opens the session's transaction on `link` ahead of `u`: the BEGIN pgsplit answered (and, when it moves
   * from a replica, the statements the primary must know), each a Query whose answer the client never sees.
   * The replica it leaves rolls its side back: it only read.
   */
  private openTransaction(u: Unit, link: ServerLink, opening: string[], out: FrameCoalescer): void {
    const from = u.txMoveFrom;
    if (from !== undefined && from !== link && this.binding.holds(from)) {
      this.writeToServer(from, this.writer.rollback(from));
      this.log.debug({ from: from.name, to: link.name }, 'transaction moved to the primary');
    }
    // Decided when the unit's server was chosen: a replica gets a BEGIN it accepts (see opening).
    const texts = link.node.role === 'replica' && this.tx !== null ? this.tx.opening(true) : opening;
    this.writer.swallowedQueries(link, texts, out);
    this.binding.tx = link;
    // What the replica's side changed is rolled back there; the replay makes it the primary's.
    if (from !== undefined && this.settingsFrom === from) this.settingsFrom = link;
    const tx = this.tx;
    if (tx !== null && link.node.role === 'replica') tx.phase = 'replica';
    else this.tx = null;
  }

  /**
   * A statement that leaves session state on its server (LISTEN, a temporary table, SQL PREPARE, a WITH
   * HOLD cursor, a session advisory lock, setseed) pins the session to the primary, and in pool.mode
   * transaction to the connection itself (giveBackIdle keeps it); the pool learns what to clean when it
   * comes back at the session's end.
   */
  private notePins(c: QueryClassification, link: ServerLink): void {
    for (const s of c.statements) {
      const reason = s.pinsPrimary;
      if (reason === undefined) continue;
      link.hold.left?.(reason);
      if (this.perTransaction) this.ctx.events.pinned?.(reason);
      if (this.pinned === null) {
        this.pinned = reason;
        this.log.debug({ reason }, 'session pinned to the primary');
      }
    }
  }

  private writeToServer(link: ServerLink, bufs: Buffer[]): void {
    if (link.parked) {
      // Used again before the pool took it back.
      link.parked = false;
      link.hold.unpark?.();
    }
    const s = link.conn.socket;
    if (s.destroyed) return;
    if (bufs.length === 1) s.write(bufs[0] as Buffer);
    else if (bufs.length > 1) {
      s.cork();
      for (const b of bufs) s.write(b);
      s.uncork();
    }
    if (s.writableNeedDrain) this.input.serverFull(s);
  }

  private resumeServers(): void {
    for (const l of this.binding.attached()) l.conn.socket.resume();
  }

  // ---------------------------------------------------------------------------------------------------
  // Server side: the session's books on what servers answer (ResponseRelay takes the answers to the client)
  // ---------------------------------------------------------------------------------------------------

  /**
   * The session's books on a server message the client gets (see RelaySession.observe): the end of a
   * unit, an error, a COPY starting or ending, a ParameterStatus. True when it may free waiting units.
   */
  observe(link: ServerLink, f: Frame, errorCode: string | undefined): boolean {
    const t = f.type;
    if (t === Backend.ParameterStatus || t === Backend.ReadyForQuery) link.hold.observe?.(t, f.payload);
    const cp = this.binding.copyPending;
    let freed = false;
    if (cp !== null && cp.link === link && cp.executes > 0 &&
      (t === Backend.CommandComplete || t === Backend.EmptyQueryResponse || t === Backend.PortalSuspended) && --cp.executes === 0) {
      // Every Execute of the unsynced COPY unit ended without starting COPY FROM STDIN.
      this.binding.copyPending = null;
      freed = true;
    }
    switch (t) {
      case Backend.ErrorResponse:
        this.ctx.events.error(errorCode ?? SqlState.internalError);
        this.afterError(link);
        // An error may free what waits (behind a COPY, a probe).
        return true;
      case Backend.ReadyForQuery: {
        // A Parse or Close still expected here was skipped by the server (it followed an error).
        const done = link.tracker.readyForQuery();
        if (this.binding.copyPending !== null && done !== undefined && done.unit === this.binding.copyPending.unit) this.binding.copyPending = null;
        this.afterUnit(link, done, (f.payload[0] ?? 0x49) as number);
        return true;
      }
      case Backend.CopyInResponse:
        this.binding.copy = link;
        if (this.binding.copyPending?.link === link) this.binding.copyPending = null;
        this.startCopyIn(link);
        // COPY data waiting behind the COPY statement may go now.
        return true;
      case Backend.CopyOutResponse:
      case Backend.CopyBothResponse:
        this.binding.copy = link;
        return freed;
      case Backend.CommandComplete:
        this.copyEnded(link);
        return freed;
      case Backend.ParameterStatus:
        this.noteParameter(...readParameterStatus(f.payload));
        return freed;
      default:
        return freed;
    }
  }

  /**
   * The ReadyForQuery of something pgsplit sent itself (see RelaySession.ownQueryAnswered): the empty
   * Query in place of a statement pgsplit answers (answered now, behind the batch's answer), the Sync
   * ending a replica's batch (a failed one skips the client's messages up to its own Sync), an internal query.
   */
  ownQueryAnswered(link: ServerLink, head: Expect, status: number): void {
    if (head.local !== undefined) {
      this.afterUnit(link, head, status);
      this.awaitingProbe = false;
      this.runLocal(head.local);
    } else if (head.endsReplicaBatch === true) {
      this.afterUnit(link, head, status);
      this.awaitingInternal = false;
      if (head.failed === true) this.skipToClientSync();
    }
    if (head.capture !== undefined) {
      head.capture(null);
      this.awaitingInternal = false;
    }
  }
  /**
   * COPY FROM STDIN started on `link`: the Syncs the client sent inside the COPY get no answer (see
   * ProtocolTracker.copyInStarted); if one was among them, the batch stays open until the client's next Sync.
   */
  private startCopyIn(link: ServerLink): void {
    if (link.tracker.copyInStarted()) this.binding.openBatch = link;
  }

  /** A COPY on `link` (if any) is over: it completed, failed, or its statement's answer ended. */
  private copyEnded(link: ServerLink): void {
    if (this.binding.copy === link) this.binding.copy = null;
    link.tracker.copyEnded();
  }

  /**
   * An ErrorResponse: the tracker drops what the server will not run now (see ProtocolTracker.error). When
   * the server skips to a Sync the client has not sent yet, the batch is open until it comes.
   */
  private afterError(link: ServerLink): void {
    this.copyEnded(link);
    const skipsToSync = link.tracker.error();
    const head = link.tracker.head;
    const pending = this.binding.copyPending;
    // The COPY that was to start failed (its unit's own error, or one before it in its batch).
    if (pending !== null && pending.link === link && (pending.executes > 0 || head === undefined || head.unit === pending.unit)) this.binding.copyPending = null;
    if (skipsToSync) this.binding.openBatch = link;
  }

  /**
   * An expectation the server will never answer (it followed an error), newest first: the bookkeeping of
   * its Parse/Close is undone. One function per session, handed to each link's tracker (no closure per message).
   */
  private readonly skipped = (e: Expect): void => {
    e.undo?.();
    // A statement pgsplit answers itself, behind a batch that failed: skipped like a Query would be.
    if (e.local !== undefined) this.awaitingProbe = false;
  };

  /** A statement set (or reset) `name` on `link`: asked for from now on when custom; who the session is, when an identity. */
  private noteSettingName(name: string, link: ServerLink): void {
    this.settings.noteName(name);
    const n = name.toLowerCase();
    if (n === 'role' || n === 'session_authorization') {
      this.identityChanged = true;
      link.hold.left?.('identity');
    }
  }

  private noteParameter(name: string, value: string): void {
    if (name === 'client_encoding') this.clientEncoding = value;
    else if (name === 'standard_conforming_strings') this.standardConformingStrings = value !== 'off';
  }

  /** Bookkeeping when a unit's ReadyForQuery arrives: transaction status and the unit's effects. */
  private afterUnit(link: ServerLink, done: Expect | undefined, statusByte: number): void {
    const before = this.txStatus;
    const status = statusByte === 0x54 ? 'T' : statusByte === 0x45 ? 'E' : 'I';
    this.txStatus = status;
    this.binding.tx = status === 'I' ? null : link;
    if (status === 'I') this.tx = null;
    const now = performance.now();
    this.consistency.answered(link.node.role, now);
    this.copyEnded(link);
    const unit = done?.unit;
    if (unit && unit.sentAt > 0) this.ctx.events.unitDone(link.name, now - unit.sentAt);
    const ok = done?.failed !== true;
    // This answer ends the unsynced pieces sent before it too (their SET, DISCARD, ...).
    for (const d of done?.carried ?? NO_DECISIONS) this.unitEffects(link, d, ok);
    if (unit?.decision) this.unitEffects(link, unit.decision, ok);
    this.local.trackUndo(before, status, ok, done?.carried, unit?.decision);
    const tx = this.tx;
    if (tx !== null && ok && status === 'T' && unit?.decision && link === this.binding.tx && link.node.role === 'replica') {
      // What the primary must run too if the transaction moves there (see TargetChooser.mustLeaveReplica: a unit with
      // such a statement holds only that one, so having run is certain).
      for (const s of statementsOf(unit.decision.classifications)) {
        if (s.chain) tx.replay.length = 0;
        else if (needsReplay(s)) tx.replay.push(s.text);
      }
    }
  }

  /**
   * The effects of one routed piece whose answer came (`ok`: without error): a statement that may change
   * the session's settings marks them to be read back from `link` (see settingsFrom), whether it failed
   * or ran in a transaction that ends later: the server's values once it is idle say what holds. DISCARD
   * ALL also deallocates the statements prepared on `link`.
   */
  private unitEffects(link: ServerLink, d: RouteDecision, ok: boolean): void {
    for (const c of d.classifications) {
      for (const s of c.statements) {
        if (s.reason === 'create' || s.reason === 'alter' || s.reason === 'drop') this.sequences.invalidate();
        if (changesSettings(s)) {
          if (s.setting !== undefined) this.noteSettingName(s.setting.name, link);
          for (const m of s.text.matchAll(SET_CONFIG_NAME)) this.noteSettingName((m[1] ?? '').replace(/''/g, "'"), link);
          if (s.reason === 'load') link.hold.left?.('load');
          if (ok && s.reason === 'load') this.settings.noteLoad(s.text);
          link.settingsTouched = true;
          this.settingsFrom = link;
          // The default isolation may be among them: asked again with them, before the next replica read.
          this.isolation = null;
        }
        if (ok && s.discard && s.reason === 'discard') {
          this.writer.forgetStatements();
          link.prepared.clear();
        }
      }
    }
  }

  /**
   * The monitor took a replica out of rotation (refused, failed or stopped answering its checks). An
   * idle link to it is let go; a read waiting on it runs elsewhere if nothing of it reached the client;
   * anything else on it fails with a clear error (a frozen server would otherwise hang the client).
   */
  serverDown(node: NodeEntry, reason: string): void {
    if (this.state === 'closed') return;
    const link = this.binding.linkTo(node);
    if (!link) return;
    if (node.role === 'primary') {
      // An idle link to a primary the monitor finds down (frozen, gone) would take the next write and
      // hold it for as long as the server stays so; let it go, so that the write connects afresh and
      // fails within the down-server connect bound (see connect). A link with state the client relies
      // on (transaction, batch, COPY, a pin such as LISTEN or a temporary table) stays.
      if (!link.tracker.busy && !this.binding.holdsState(link) && this.pinned === null) this.detach(link, true);
      return;
    }
    if (!link.tracker.busy && !this.binding.holdsState(link)) {
      this.detach(link, true);
      return;
    }
    // A read whose answer is held can run elsewhere. Anything else is left alone while its server still
    // sends (a check can time out on a replica that is only slow); if it has sent nothing for a check
    // timeout, it is treated as lost.
    const quietMs = performance.now() - link.lastDataAt;
    const limit = this.ctx.monitorTimeoutMs;
    if (link.held !== null || quietMs >= limit) {
      this.onServerLost(link, `out of rotation: ${reason}`);
      return;
    }
    setTimeout(() => {
      if (this.binding.holds(link) && link.tracker.busy && performance.now() - link.lastDataAt >= limit) {
        this.onServerLost(link, `out of rotation, and silent for ${limit} ms: ${reason}`);
      }
    }, limit - quietMs + 10).unref();
  }

  /**
   * A reload removed this replica: an idle link to it is let go now (politely: the server is fine); one
   * running a statement or holding a transaction, batch or COPY is let go when that ends (the relay's
   * `answered`, see the constructor).
   * The next read goes to another replica, after raising the floor (monotonic reads).
   */
  retire(node: NodeEntry): void {
    if (this.state === 'closed') return;
    const link = this.binding.linkTo(node);
    if (link) this.letGoIfRetired(link);
  }

  /** Whether this session still has (or is opening) a connection to `node`. */
  uses(node: NodeEntry): boolean {
    return this.connectingTo === node || this.binding.hasNode(node);
  }

  private letGoIfRetired(link: ServerLink): void {
    if (link.node.retiring && !link.tracker.busy && !this.binding.holdsState(link)) this.detach(link);
  }

  /**
   * A server connection ended or failed. A replica is checked again at once (one lost backend says little
   * about the server). A read held on it runs elsewhere; an idle link is let go; a link holding a
   * transaction, a batch, a COPY or a streaming answer ends the session with the server's own FATAL when
   * it sent one (`serverError`), else 08006.
   */
  private onServerLost(link: ServerLink, why: string, serverError?: Buffer): void {
    if (!this.binding.holds(link) || this.state === 'closed') return;
    if (this.terminating) {
      // The end the client asked for (see pump, Terminate): it has had all the server sent.
      this.detach(link);
      this.leave();
      return;
    }
    // pgsplit's own question about the session (captureSession) is not the client's: losing it loses nothing.
    const inFlight = link.tracker.queue.some((e) => e.capture === undefined);
    const holds = this.binding.holdsState(link);
    this.log.warn({ node: link.name, why, inFlight, holdsState: holds }, 'server connection lost');
    if (link.node.role === 'replica') this.ctx.monitor.recheck(link.node);
    if (link.node.role === 'replica' && inFlight && !holds && this.txStatus === 'I' && this.relay.retryElsewhere(link)) {
      // The read is back at the front of the queue, to run elsewhere.
      this.detach(link, true);
      this.pump();
      return;
    }
    const asked = link.tracker.busy;
    this.detach(link, true);
    if (!inFlight && !holds) {
      if (asked && this.state === 'ready') this.pump();
      return;
    }
    if (link.fatalForwarded) {
      // The client has the server's own FATAL (a protocol violation during COPY, a terminated backend).
      if (!this.client.destroyed) this.client.end();
      this.close();
      return;
    }
    if (serverError !== undefined && !this.client.destroyed) {
      this.client.end(serverError);
      this.close();
      return;
    }
    this.fatal(errors.serverLost(link.name, why));
  }

  // ---------------------------------------------------------------------------------------------------
  // Statements pgsplit answers itself
  // ---------------------------------------------------------------------------------------------------

  /**
   * After an error in pgsplit's own extended messages, as a server does: everything up to the client's
   * next Sync is dropped, and that Sync is answered with ReadyForQuery.
   */
  private skipToClientSync(): void {
    if (this.input.skipToSync()) this.client.write(readyForQuery(this.txStatus));
  }
}

/** True when a unit ends the transaction it runs in, so the next unit's server depends on its outcome. */
function endsTransaction(classifications: readonly QueryClassification[]): boolean {
  return someStatement(classifications, isTransactionEnd);
}

type Statement = QueryClassification['statements'][number];

/** A statement after which the session's settings are read back from its server (see Session.settingsFrom). */
function changesSettings(s: Statement): boolean {
  if (s.replicaSafe) return false;
  if (s.discard === true || s.reason === 'load' || s.reason === 'set-from-current') return true;
  if (s.setting !== undefined) return !s.setting.local;
  return SET_CONFIG.test(s.text);
}
const SET_CONFIG = /\bset_config\b/i;
/** The parameter a set_config call names with a literal (a custom one, such as app.tenant_id, is then asked for). */
const SET_CONFIG_NAME = /\bset_config\s*\(\s*'((?:[^']|'')*)'/gi;
const isTransactionEnd = (s: Statement): boolean => (s.transaction === 'commit' || s.transaction === 'rollback' || s.transaction === 'prepare-transaction') && !s.chain;
const isEffect = (s: Statement): boolean => s.setting !== undefined || s.discard === true || s.transaction === 'commit' || s.transaction === 'rollback';

/** Whether any statement of the classified queries passes `test` (a module-level predicate: no closure per call). */
function someStatement(classifications: readonly QueryClassification[], test: (s: Statement) => boolean): boolean {
  for (const c of classifications) for (const s of c.statements) if (test(s)) return true;
  return false;
}

/**
 * The unit holds a COPY ... FROM, so its server may start COPY FROM STDIN. In an unsynced batch the
 * statement must name STDIN (a COPY from a file there is not worth holding the session for).
 */
function startsCopyFrom(classifications: readonly QueryClassification[], complete: boolean): boolean {
  return someStatement(classifications, complete ? copyFrom : copyFromStdin);
}
const copyFrom = (s: Statement): boolean => s.reason === 'copy-from';
const copyFromStdin = (s: Statement): boolean => s.reason === 'copy-from' && /\bfrom\s+stdin\b/i.test(s.text);

/** Whether the statements of a decision change session settings or end a transaction. */
function hasEffects(d: RouteDecision): boolean {
  return someStatement(d.classifications, isEffect);
}

/** The same error with severity ERROR: the session survives it. */
function asError(e: PgsplitError): PgsplitError {
  return e.severity === 'ERROR' ? e : new PgsplitError(e.code, e.sqlState, e.message, { detail: e.detail, hint: e.hint });
}
