import net from 'node:net';
import tls from 'node:tls';
import { serialize } from '../codec/frontend-messages.js';
import { FrameReader, type Frame } from '../codec/frame-reader.js';
import { Backend } from '../codec/message-types.js';
import { readErrorFields, readParameterStatus } from '../codec/message-fields.js';
import { md5HashResponse, md5PasswordResponse } from '../auth/md5.js';
import { ScramClientSession, ScramVerifierMismatch } from '../auth/scram.js';
import type { ServerSecret } from './server-login.js';
import { PgsplitError, SqlState, errors } from '../errors.js';
import type { ServerTls } from '../config/config.js';

/** Where and as whom to connect: one primary or replica from the config. */
export interface ServerTarget {
  /** Node name for messages and logs ('primary', 'replica1', ...). */
  name: string;
  /** Where its URL is in the configuration ('primary', 'replicas[0]', ...), for messages that say what to fix. */
  configKey?: string | undefined;
  host: string;
  port: number;
  /** Overrides the client's user when set (the URL's user, or the one server-login.ts chose). */
  user?: string | undefined;
  /** The URL's password; `secret` wins when both are set. */
  password?: string | undefined;
  /** What to answer a password request with (see server-login.ts); else `password`. */
  secret?: ServerSecret | undefined;
  /** The config key the secret comes from ('primary', 'users[2].password'), for messages. */
  secretKey?: string | undefined;
  /** Overrides the client's database when set (databases:). */
  database?: string | undefined;
  /** sslmode / sslrootcert of the server's URL; plain text when absent. */
  tls?: ServerTls | undefined;
}

/** SSLRequest: length 8, code 1234.5679. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * The server refused the credentials pgsplit chose (server-login.ts): a password from the configuration
 * (a server URL, users[].password or server_password; what the client typed was checked by pgsplit
 * already), and a role pgsplit picked. Relayed as the server said it, 28P01 would tell the client that its
 * own password is wrong.
 */
function ownLoginRefused(target: ServerTarget, fields: Record<string, string>): boolean {
  return fields.C === SqlState.invalidPassword || (fields.C === SqlState.invalidAuthorizationSpecification && target.user !== undefined);
}

/** The refusal of a login pgsplit chose, worded for whoever has to fix it (see ownLoginRefused). */
function loginRefused(target: ServerTarget, user: string, serverMessage: string): PgsplitError {
  const key = target.secretKey ?? target.configKey ?? 'primary / replicas';
  if (key.startsWith('monitor.')) return errors.monitorLoginFailed(target.name, user, serverMessage);
  return key.startsWith('users[')
    ? errors.serverUserLoginFailed(target.name, user, key, serverMessage)
    : errors.serverLoginFailed(target.name, target.configKey ?? 'primary / replicas', user, serverMessage);
}

/** Whether `mode` asks for TLS at all (disable and allow talk plain text first, as libpq does). */
function wantsTls(t: ServerTls | undefined): boolean {
  return t !== undefined && (t.mode === 'prefer' || t.mode === 'require' || t.mode === 'verify-ca' || t.mode === 'verify-full');
}

/** Lifecycle of a server connection; each transition happens in one place in this file. */
export type ServerConnectionState = 'connecting' | 'authenticating' | 'ready' | 'closed';

/** An error the server sent during startup (bad database, role, password): relayed to the client as is. */
export class ServerStartupError extends Error {
  readonly fields: Record<string, string>;
  readonly raw: Buffer;
  constructor(fields: Record<string, string>, raw: Buffer) {
    super(fields.M ?? 'server refused the connection');
    this.fields = fields;
    this.raw = raw;
  }
}

/**
 * One authenticated connection from pgsplit to a PostgreSQL server, owned by one client session.
 * `connect` performs the startup handshake; afterwards the session owns the socket and the frame reader.
 */
const noop = (): void => {};

export class ServerConnection {
  readonly target: ServerTarget;
  /** The connection: the TLS socket once TLS is up (set before connect resolves, fixed afterwards). */
  socket: net.Socket;
  readonly reader: FrameReader;
  state: ServerConnectionState = 'connecting';
  /** ParameterStatus values the server sent during startup. */
  readonly parameters = new Map<string, string>();
  /**
   * Named statements prepared on this connection under the names clients gave them: name -> Parse
   * payload. It belongs to the connection, not to a client: a pooled connection keeps its statements
   * from one borrower to the next, and the next one's statement of the same name and text is not
   * prepared again (see RequestWriter.ensurePrepared; a different text under the name is closed first).
   */
  readonly prepared = new Map<string, Buffer>();
  backendPid = 0;
  backendSecret = 0;
  /**
   * Receives what the server sends. The chunk is a view of a buffer reused for the next read: whoever
   * keeps a reference past the call (a client write the kernel did not take at once) calls
   * {@link retainChunk} first. Reading into one buffer spares an allocation per read on the relay path.
   */
  onData: (chunk: Buffer) => void = noop;
  /**
   * The holder's view of the socket's 'drain', 'error' and 'close' (a session's link; see
   * {@link dispatchEvents}). Fields set at each borrow rather than listeners added and removed: a
   * pooled connection changes hands at every transaction.
   */
  onDrain: () => void = noop;
  onError: (e: Error) => void = noop;
  onClose: () => void = noop;
  private dispatching = false;
  private readBuffer: Buffer | null = null;

  /**
   * Sends the socket's 'drain', 'error' and 'close' to onDrain, onError and onClose from now on. Called
   * by the first holder, so that these listeners come after the ones its pool added when it opened the
   * connection (a pool counts a closed connection lost before its holder hears of it).
   */
  dispatchEvents(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    this.socket.on('drain', () => this.onDrain());
    this.socket.on('error', (e: Error) => this.onError(e));
    this.socket.on('close', () => this.onClose());
  }

  /** Nothing the server sends or its socket reports reaches a holder any more (it let the connection go). */
  clearHolder(): void {
    this.onData = noop;
    this.onDrain = noop;
    this.onError = noop;
    this.onClose = noop;
  }

  private constructor(target: ServerTarget, socket: net.Socket) {
    this.target = target;
    this.socket = socket;
    // Servers may legitimately send messages up to 1 GB (a large row or COPY chunk).
    this.reader = new FrameReader({ maxMessageSize: 0x3fffffff });
  }

  /**
   * Opens a TCP connection and completes startup and authentication (trust, cleartext, md5, SCRAM).
   * `params` are the client's startup parameters (database, application_name, options, ...).
   * Rejects with ServerStartupError when the server says no, PgsplitError when it cannot be reached.
   */
  static connect(target: ServerTarget, params: Record<string, string>, timeoutMs: number, timeoutKey = 'limits.connect_timeout'): Promise<ServerConnection> {
    return new Promise((resolve, reject) => {
      // Node asks for the first read buffer while connecting, before `conn` exists.
      let conn: ServerConnection | null = null;
      let firstBuffer: Buffer | null = null;
      const useTls = wantsTls(target.tls);
      // Plain text reads into one reused buffer (see onData); TLS reads through 'data' events, because the
      // TLS layer takes the socket's reads over.
      const socket = useTls ? net.connect({ host: target.host, port: target.port }) : net.connect({
        host: target.host,
        port: target.port,
        onread: {
          buffer: () => (conn !== null ? conn.nextReadBuffer() : (firstBuffer ??= Buffer.allocUnsafe(READ_BUFFER_SIZE))),
          callback: (n: number, buf: Uint8Array) => {
            (conn as ServerConnection).onData((buf as Buffer).subarray(0, n));
            return true;
          },
        },
      });
      socket.setNoDelay(true);
      conn = new ServerConnection(target, socket);
      conn.readBuffer = firstBuffer;
      const user = target.user ?? params.user ?? '';
      const startupParams: Record<string, string> = { ...params, user };
      if (target.database !== undefined) startupParams.database = target.database;
      const secret: ServerSecret | undefined = target.secret ?? (target.password !== undefined ? { kind: 'password', password: target.password } : undefined);
      let scram: ScramClientSession | null = null;
      let settled = false;
      const timer = setTimeout(() => fail(errors.serverUnavailable(target.name, `no answer within ${timeoutMs} ms (${timeoutKey})`)), timeoutMs);

      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        conn.state = 'closed';
        conn.onData = noop;
        conn.socket.destroy();
        socket.destroy();
        reject(err);
      };
      /** The secret, when it can answer the server's method (cleartext, md5 or SCRAM-SHA-256). */
      const secretFor = <K extends ServerSecret['kind']>(method: string, ...kinds: K[]): Extract<ServerSecret, { kind: K }> => {
        if (secret === undefined) {
          throw errors.serverUnavailable(target.name, `the server asked for a password for ${JSON.stringify(user)} but pgsplit has none for this login; ` +
            'put it in the URL (postgres://USER:PASSWORD@HOST/...), or for a user mapped with users[].server_user in users[].server_password');
        }
        if (!(kinds as string[]).includes(secret.kind)) throw errors.serverLoginUnsupported(target.name, user, target.secretKey ?? target.configKey ?? 'primary', method, secret.kind);
        return secret as Extract<ServerSecret, { kind: K }>;
      };

      const onFrame = (f: Frame) => {
        switch (f.type) {
          case Backend.Authentication: {
            const code = f.payload.readInt32BE(0);
            conn.state = 'authenticating';
            if (code === 0) return;
            if (code === 3) {
              socket.write(serialize.password(secretFor('password (cleartext)', 'password').password));
            } else if (code === 5) {
              const salt = f.payload.subarray(4, 8);
              const md5 = secretFor('md5', 'password', 'md5-hash');
              socket.write(serialize.password(md5.kind === 'password' ? md5PasswordResponse(user, md5.password, salt) : md5HashResponse(md5.hash, salt)));
            } else if (code === 10) {
              const mechs = f.payload.subarray(4).toString('utf8').split('\0').filter((m) => m.length > 0);
              const sc = secretFor('SCRAM-SHA-256', 'password', 'scram-keys');
              scram = new ScramClientSession(sc.kind === 'password' ? sc.password : sc.keys);
              const first = scram.start(mechs);
              socket.write(serialize.sendSASLInitialResponseMessage(first.mechanism, first.clientFirst));
            } else if (code === 11) {
              if (!scram) throw errors.authProtocol('SASLContinue before SASL start');
              let final: string;
              try {
                final = scram.handleServerFirst(f.payload.subarray(4).toString('utf8'));
              } catch (e) {
                if (e instanceof ScramVerifierMismatch) throw errors.scramVerifierMismatch(target.name, user, target.secretKey ?? 'users');
                throw e;
              }
              socket.write(serialize.sendSCRAMClientFinalMessage(final));
            } else if (code === 12) {
              if (!scram) throw errors.authProtocol('SASLFinal before SASL start');
              scram.handleServerFinal(f.payload.subarray(4).toString('utf8'));
            } else {
              throw errors.serverUnavailable(target.name, `the server asked for authentication method ${code}, which pgsplit does not support; use trust, md5 or scram-sha-256 for pgsplit's user`);
            }
            return;
          }
          case Backend.ParameterStatus: {
            const [name, value] = readParameterStatus(f.payload);
            conn.parameters.set(name, value);
            return;
          }
          case Backend.BackendKeyData:
            conn.backendPid = f.payload.readInt32BE(0);
            conn.backendSecret = f.payload.readInt32BE(4);
            return;
          case Backend.ErrorResponse: {
            const fields = readErrorFields(f.payload);
            fail(ownLoginRefused(target, fields)
              ? loginRefused(target, user, fields.M ?? 'authentication failed')
              : new ServerStartupError(fields, Buffer.from(f.raw)));
            return;
          }
          case Backend.ReadyForQuery:
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            conn.state = 'ready';
            conn.onData = noop;
            for (const sk of new Set([socket, conn.socket])) {
              sk.removeListener('error', onError);
              sk.removeListener('close', onClose);
            }
            resolve(conn);
            return;
          default:
            // NoticeResponse and NegotiateProtocolVersion during startup carry nothing routing needs.
            return;
        }
      };
      const onData = (chunk: Buffer) => {
        try {
          const frames = conn.reader.push(chunk);
          for (const f of frames) {
            onFrame(f);
            if (settled) return;
          }
        } catch (e) {
          fail(e instanceof Error ? e : new Error(String(e)));
        }
      };
      const onError = (e: Error) => fail(errors.serverUnavailable(target.name, e.message));
      const onClose = () => fail(errors.serverUnavailable(target.name, 'the server closed the connection during startup'));
      const startup = (): void => {
        conn.socket.write(serialize.startup(startupParams));
      };
      socket.on('connect', () => {
        if (!useTls) startup();
        else socket.write(SSL_REQUEST);
      });
      if (useTls) {
        const t = target.tls as ServerTls;
        // The answer to SSLRequest is one byte; anything after an 'S' before the TLS handshake would be
        // read as if it came over TLS (CVE-2021-23222): refused.
        const onAnswer = (b: Buffer): void => {
          socket.removeListener('data', onAnswer);
          if (b[0] === 0x53 && b.length === 1) {
            const verify = t.mode === 'verify-ca' || t.mode === 'verify-full' || (t.mode === 'require' && t.rootCertPem !== undefined);
            const secure = tls.connect({
              socket,
              servername: net.isIP(target.host) === 0 ? target.host : undefined,
              ...(t.rootCertPem !== undefined ? { ca: t.rootCertPem } : {}),
              rejectUnauthorized: verify,
              // verify-full checks the name; verify-ca (and require with a root) the chain only.
              checkServerIdentity: t.mode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
            });
            conn.socket = secure;
            secure.setNoDelay(true);
            secure.on('data', (d: Buffer) => conn.onData(d));
            secure.on('error', onError);
            secure.on('close', onClose);
            secure.once('secureConnect', startup);
          } else if (b[0] === 0x4e && b.length === 1 && t.mode === 'prefer') {
            socket.on('data', (d: Buffer) => conn.onData(d));
            startup();
          } else if (b[0] === 0x4e && b.length === 1) {
            fail(errors.serverUnavailable(target.name, `the server does not accept TLS, and its URL says sslmode=${t.mode}; enable ssl on the server or lower sslmode`));
          } else {
            fail(errors.serverUnavailable(target.name, 'the server answered SSLRequest with something other than S or N'));
          }
        };
        socket.on('data', onAnswer);
      }
      conn.onData = onData;
      socket.on('error', onError);
      socket.on('close', onClose);
    });
  }

  /** The last chunk passed to onData stays referenced: the next read goes into a new buffer. */
  retainChunk(): void {
    this.readBuffer = null;
  }

  private nextReadBuffer(): Buffer {
    return (this.readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_SIZE));
  }

  /** Asks the server to cancel whatever this connection is running (a separate short connection). */
  cancel(): void {
    if (this.state !== 'ready' || this.backendPid === 0) return;
    const s = net.connect({ host: this.target.host, port: this.target.port });
    // Written, not ended: the server closes the connection once it has taken the request. PgBouncer drops a
    // cancel whose sender has already closed its side (as libpq, wait for the server to close instead).
    s.on('connect', () => s.write(serialize.cancel(this.backendPid, this.backendSecret)));
    s.on('error', () => s.destroy());
    s.setTimeout(5000, () => s.destroy());
    inFlightCancels.add(s);
    s.on('close', () => inFlightCancels.delete(s));
  }

  /**
   * Ends a connection that is running something for a client that is gone: cancel the statement and
   * drop the socket, so the backend stops at once instead of blocking on a result nobody reads.
   */
  abort(): void {
    if (this.state === 'closed') return;
    this.cancel();
    this.state = 'closed';
    this.socket.destroy();
  }

  /** Ends the connection politely (Terminate) and marks it closed. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (!this.socket.destroyed) this.socket.end(serialize.end());
  }
}

/** Cancel requests still on their way: a process about to exit waits for them (see settleCancels). */
const inFlightCancels = new Set<net.Socket>();

/**
 * Resolves once every cancel request sent so far has been delivered (or `timeoutMs` passed): at shutdown,
 * so that statements of closed sessions stop on the servers instead of running on after pgsplit exits.
 */
export async function settleCancels(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (inFlightCancels.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** As much as one read takes (libuv's own read size for a stream). */
const READ_BUFFER_SIZE = 64 * 1024;

/** True for errors meaning "this server could not be reached", as opposed to the server refusing us. */
export function isUnreachable(e: unknown): boolean {
  return e instanceof PgsplitError && e.sqlState === SqlState.sqlclientUnableToEstablishSqlconnection;
}
