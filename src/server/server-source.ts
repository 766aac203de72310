/**
 * Where a session gets its server connections from, and where they go when it lets them go: one
 * contract (acquire / release), so that the session does not care whether a connection is its own
 * (DedicatedSource: opened for it, closed when it lets go) or borrowed from a pool (PooledSource).
 */
import type { PinReason } from '../router/statement-info.js';
import { ServerConnection } from './server-connection.js';
import type { WaitSignal } from '../pool/server-pool.js';
import type { NodeEntry } from './server-nodes.js';
import { loginTarget, type SessionLogin } from './server-login.js';

/**
 * How a connection comes back: 'clean' (idle, in step, nothing of the client's on it), 'dirty' (idle and
 * in step, but perhaps carrying client state a pool must clean: settings, LISTEN, temp tables),
 * 'unfinished' (idle, but left inside a transaction, an open extended batch or a COPY: closed, never
 * reused) or 'broken' (failed, frozen, or still running something: aborted, never reused).
 */
export type ReleaseOutcome = 'clean' | 'dirty' | 'unfinished' | 'broken';

/** A server connection a session holds, from acquire until it releases it (once). */
export interface ServerHold {
  readonly conn: ServerConnection;
  /**
   * Told of each ParameterStatus and ReadyForQuery the session reads from the connection, when the source
   * keeps state about it (a pool must know the values it holds when the next client borrows it).
   */
  observe?(type: number, payload: Buffer): void;
  /**
   * The holder left `what` on the connection (pool.mode transaction: the pool watches nothing itself),
   * for a pool to undo before lending it again (see ServerState.cleanupPlan). A connection of one's own
   * ignores it: it is closed on release.
   */
  left?(what: LeftOnConnection): void;
  /**
   * pool.mode transaction, between two transactions: the holder keeps the connection, idle, until its
   * next transaction takes it back (unpark) or another client needs it, when the source calls `reclaim`
   * and the holder must release it at once. False when it must be released now instead. `now`: the
   * holder's latest reading of performance.now(). Optional: a connection of one's own is not shared.
   */
  park?(reclaim: () => void, now: number): boolean;
  unpark?(): void;
}

/**
 * What a client can leave on a server connection beyond its transaction: its settings, a changed
 * identity (SET ROLE / SESSION AUTHORIZATION), what pins it (PinReason), a LOAD nothing undoes.
 */
export type LeftOnConnection = 'settings' | 'identity' | 'load' | PinReason;

/** The time limits a source connects within; read at each acquire (a reload may change them). */
export interface SourceLimits {
  /** limits.connect_timeout, ms. */
  connectTimeoutMs: number;
  /** monitor.timeout, ms: the bound on connecting to a server the monitor finds down. */
  monitorTimeoutMs: number;
}

export interface ServerSource {
  /**
   * A connection to `node` for a session logged in as `login`; `params` are the client's startup
   * parameters the server is to start with (pgsplit's own options already taken out). `signal` aborts a
   * wait for a pooled connection (the client went away).
   */
  acquire(node: NodeEntry, login: SessionLogin, params: Record<string, string>, signal?: WaitSignal): Promise<ServerHold>;
  /**
   * A connection to `node` now, or null when one must be waited for or prepared (acquire): the fast path
   * of a pool that has an idle connection already holding the client's settings. Optional.
   */
  acquireNow?(node: NodeEntry, login: SessionLogin, params: Record<string, string>): ServerHold | null;
  /** The session is done with `hold`; it must not touch its connection afterwards. */
  release(hold: ServerHold, outcome: ReleaseOutcome): void;
}

/** A connection per session and node: opened with the client's own startup parameters, closed on release. */
export class DedicatedSource implements ServerSource {
  constructor(private readonly limits: SourceLimits) {}

  async acquire(node: NodeEntry, login: SessionLogin, params: Record<string, string>): Promise<ServerHold> {
    // A server the monitor finds down gets no more than a check's time to answer (a frozen one accepts
    // TCP and then says nothing): the client hears at once instead of after limits.connect_timeout.
    const { connectTimeoutMs, monitorTimeoutMs } = this.limits;
    const bounded = node.health === 'down' && monitorTimeoutMs < connectTimeoutMs;
    const conn = await ServerConnection.connect(loginTarget(node.endpoint, node.configKey, login), params,
      bounded ? monitorTimeoutMs : connectTimeoutMs, bounded ? 'monitor.timeout: the monitor finds this server down' : 'limits.connect_timeout');
    // For its whole life: the session's listener goes when it lets the link go, a late socket error must not end the process.
    conn.socket.on('error', () => undefined);
    return { conn };
  }

  /** Closed with Terminate; a broken one is aborted (its statement cancelled, the socket dropped). */
  release(hold: ServerHold, outcome: ReleaseOutcome): void {
    if (outcome === 'broken') hold.conn.abort();
    else hold.conn.close();
  }
}
