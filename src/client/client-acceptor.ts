import type net from 'node:net';
import { AdminConsole, type AdminSource } from '../admin/admin-console.js';
import { errorFor } from '../codec/backend-messages.js';
import type { PgsplitConfig } from '../config/config.js';
import { PgsplitError, SqlState, errors } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ProxyState } from '../proxy/proxy-server.js';
import { sessionLogin } from '../server/server-login.js';
import { Session } from '../session/session.js';
import type { SessionContext } from '../session/session-context.js';
import type { ProxyStats } from '../stats/proxy-stats.js';
import { CancelKeys } from './cancel-keys.js';
import { clientAddress } from './client-address.js';
import { ClientHandshake, type ClientTls } from './client-handshake.js';

/** Connecting to this database opens the admin console instead of a session. */
export const ADMIN_DATABASE = 'pgsplit';

/** What the acceptor reads from the proxy it accepts for, each time a client connects. */
/** The session made on a client's (TCP) socket, for the bookkeeping when it closes. */
const SESSION = Symbol('pgsplit.accepted-session');
type AcceptedSocket = net.Socket & { [SESSION]?: Session };

/** Shared by every client socket: a failed socket is closed (its 'close' then does the bookkeeping). */
function destroyOnError(this: net.Socket): void {
  this.destroy();
}

export interface AcceptorHost {
  state(): ProxyState;
  /** The configuration in force (a reload replaces it). */
  config(): PgsplitConfig;
  /** Client TLS as the handshake needs it (a reload that changes tls.* replaces it). */
  clientTls(): ClientTls;
  /** The context every session shares. */
  ctx: SessionContext;
  stats: ProxyStats;
  log: Logger;
  /**
   * Resolves once pgsplit is ready ('ready'), closes ('closed'), or `waitMs` passes ('timeout'): a client
   * that connects while the monitor's first checks run waits instead of being refused.
   */
  whenReady(waitMs: number): Promise<'ready' | 'closed' | 'timeout'>;
  adminSource(): AdminSource;
}

/**
 * The client side of the proxy: accepts each client, runs its handshake, and hands it to a Session (or
 * the admin console, or routes its CancelRequest), within limits.max_client_connections and
 * limits.max_user_connections. One client's failure never touches another's session.
 */
export class ClientAcceptor {
  private readonly open = new Set<net.Socket>();
  /** Admin console connections (counted apart from client sessions in the metrics). */
  private readonly admins = new Set<net.Socket>();
  private readonly live = new Map<number, Session>();
  private readonly cancelKeys = new CancelKeys<Session>();
  /** Client sessions by user (limits.max_user_connections). */
  private readonly perUser = new Map<string, number>();
  private nextId = 1;

  /** Every client socket's 'close': one function for all of them, not closures per client (idle memory). */
  private readonly onSocketClose: (this: AcceptedSocket) => void;

  constructor(private readonly host: AcceptorHost) {
    const acceptor = this;
    this.onSocketClose = function onSocketClose(this: AcceptedSocket): void {
      acceptor.socketClosed(this);
    };
  }

  /** A client socket closed: it is no longer open, and the session made on it (if any) leaves the books. */
  private socketClosed(socket: AcceptedSocket): void {
    this.open.delete(socket);
    const session = socket[SESSION];
    if (session === undefined) return;
    const left = (this.perUser.get(session.user) ?? 1) - 1;
    if (left > 0) this.perUser.set(session.user, left);
    else this.perUser.delete(session.user);
    this.live.delete(session.id);
    this.cancelKeys.delete(session.cancelKey);
    this.host.stats.closedClientBytesIn += socket.bytesRead;
    this.host.stats.closedClientBytesOut += Math.max(0, socket.bytesWritten - socket.writableLength);
  }

  /** Read again at each use: a reload may change the limits while a client is in its handshake. */
  private get config(): PgsplitConfig {
    return this.host.config();
  }

  private get state(): ProxyState {
    return this.host.state();
  }

  /** Every client socket open: in its handshake, in a session, or in the admin console. */
  get sockets(): ReadonlySet<net.Socket> {
    return this.open;
  }

  /** The client sessions, by id. */
  get sessions(): ReadonlyMap<number, Session> {
    return this.live;
  }

  /** Client sockets still in their startup handshake (no session or admin console yet). */
  handshaking(): number {
    return this.open.size - this.live.size - this.admins.size;
  }

  /** Refuses a client with a FATAL error, counted as a rejection and by its SQLSTATE, and logged with its address. */
  private refuse(socket: net.Socket, e: PgsplitError, user?: string): void {
    this.host.stats.clientsRejected++;
    this.host.ctx.events.error(e.sqlState);
    this.host.log.info({ client: clientAddress(socket), ...(user !== undefined ? { user } : {}), code: e.sqlState, err: e.message }, 'client rejected during startup');
    socket.end(errorFor(e));
  }

  /** A client connected: from here until its socket closes, it is this acceptor's to track. */
  accept(socket: net.Socket): void {
    if (this.state !== 'listening' && this.state !== 'starting') {
      socket.end(errorFor(errors.shuttingDown()));
      return;
    }
    // limits.startup_timeout bounds the handshake and any wait for pgsplit's own start together.
    const arrivedAt = performance.now();
    // Taken now: once the handshake has closed the socket its address is gone.
    const addr = clientAddress(socket);
    socket.setNoDelay(true);
    this.open.add(socket);
    socket.on('close', this.onSocketClose);
    socket.on('error', destroyOnError);
    if (this.open.size > this.config.limits.maxClientConnections) {
      this.refuse(socket, errors.tooManyClients(this.config.limits.maxClientConnections));
      return;
    }
    const hs = new ClientHandshake(socket, {
      users: this.config.users,
      method: this.config.auth.method,
      maxMessageSize: this.config.limits.maxMessageSize,
      timeoutMs: this.config.limits.startupTimeoutMs,
      tls: this.host.clientTls(),
    });
    hs.run().then(async (r) => {
      if (r.kind === 'cancel') {
        this.cancelKeys.cancel(r);
        socket.destroy();
        return;
      }
      // From here on the client's connection is r.socket: the TLS socket when it asked for TLS.
      const client = r.socket;
      if (this.state === 'starting') {
        // Held, not read, while waiting: a flowing socket with no listener would drop what the client sends.
        client.pause();
        const limit = this.config.limits.startupTimeoutMs;
        const how = await this.host.whenReady(limit - (performance.now() - arrivedAt));
        if (how === 'timeout') {
          this.refuse(client, errors.startingUp(limit), r.user);
          return;
        }
        if (client.destroyed) return;
      }
      if (this.state !== 'listening') {
        client.end(errorFor(errors.shuttingDown()));
        return;
      }
      if (r.database === ADMIN_DATABASE) {
        this.openAdminConsole(client, r.user, r.leftover);
        return;
      }
      const perUserLimit = this.config.limits.maxUserConnections;
      const mine = this.perUser.get(r.user) ?? 0;
      if (perUserLimit > 0 && mine >= perUserLimit) {
        this.refuse(client, errors.tooManyForUser(r.user, perUserLimit), r.user);
        return;
      }
      // Bytes the client sends while the session connects its first server wait in the socket
      // (Session.start resumes it): a flowing socket with no listener would drop them.
      client.pause();
      this.perUser.set(r.user, mine + 1);
      const id = this.nextId++;
      const cancelKey = CancelKeys.issue(id);
      const session = new Session({
        id, client, user: r.user, database: r.database, params: r.params, cancelKey,
        ctx: this.host.ctx, login: sessionLogin(this.config, r.user, r.database, r.scramClientKey),
      });
      this.host.stats.clientsAccepted++;
      this.live.set(id, session);
      this.cancelKeys.add(cancelKey, session);
      // Found by the socket's 'close' (socketClosed), registered when it was accepted.
      (socket as AcceptedSocket)[SESSION] = session;
      session.start(r.leftover).catch((e: unknown) => {
        this.host.log.error({ err: String(e) }, 'session failed');
        session.close();
      });
    }, (e: unknown) => {
      this.host.stats.clientsRejected++;
      // Wrong passwords (28P01), startup timeouts (57014), bad startup packets (08P01): worth alerting on.
      if (e instanceof PgsplitError) this.host.ctx.events.error(e.sqlState);
      this.host.log.info({ client: addr, ...(e instanceof PgsplitError ? { code: e.sqlState } : {}), err: e instanceof Error ? e.message : String(e) },
        'client rejected during startup');
    }).catch((e: unknown) => {
      this.host.log.error({ client: addr, err: String(e) }, 'client setup failed');
      socket.destroy();
    });
  }

  /**
   * The admin console: database `pgsplit`, for users listed in admin.users (anyone in development mode,
   * which only listens on loopback).
   */
  private openAdminConsole(socket: net.Socket, user: string, leftover: Buffer | null): void {
    if (this.config.users.length > 0 && !this.config.admin.users.includes(user)) {
      this.refuse(socket, new PgsplitError('AUTH_FAILED', SqlState.invalidAuthorizationSpecification,
        `user "${user}" may not open the pgsplit admin console; list the user in admin.users`, { severity: 'FATAL' }), user);
      return;
    }
    this.host.log.info({ user }, 'admin console opened');
    this.admins.add(socket);
    socket.on('close', () => this.admins.delete(socket));
    new AdminConsole(socket, this.host.adminSource(), this.config.limits.maxMessageSize).start(leftover);
  }
}
