import type net from 'node:net';
import crypto from 'node:crypto';
import tls from 'node:tls';
import { FrameReader, type Frame } from '../codec/frame-reader.js';
import {
  CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE, Frontend, typeChar,
} from '../codec/message-types.js';
import {
  authenticationMd5, authenticationOk, authenticationSasl, authenticationSaslContinue, authenticationSaslFinal,
  errorFor, sslAccepted, sslRefused,
} from '../codec/backend-messages.js';
import { readCString, readStartupParams } from '../codec/message-fields.js';
import { md5Verify } from '../auth/md5.js';
import { isMd5Hash } from '../auth/md5-hash.js';
import { ScramError, ScramServerSession, makeScramVerifier, mockSalt, parseScramVerifier } from '../auth/scram.js';
import { PgsplitError, SqlState, errors } from '../errors.js';
import type { AuthMethod, ClientTlsMode, UserEntry } from '../config/config.js';

/** What a client that passed startup and authentication asked for. */
export interface StartupResult {
  kind: 'startup';
  user: string;
  database: string;
  /** All startup parameters as sent (user, database, application_name, options, ...). */
  params: Record<string, string>;
  /** Bytes the client sent after its last handshake message, to be read by the session. */
  leftover: Buffer | null;
  /** The connection from here on: the TLS socket when the client asked for TLS, else the one accepted. */
  socket: net.Socket;
  /** The ClientKey the client proved it holds in a SCRAM login, for SCRAM pass-through to the servers; else null. */
  scramClientKey: Buffer | null;
}

/** A CancelRequest: the connection carries nothing else and is closed. */
export interface CancelResult {
  kind: 'cancel';
  pid: number;
  secret: number;
}

export interface HandshakeOptions {
  users: readonly UserEntry[];
  method: AuthMethod;
  maxMessageSize: number;
  timeoutMs: number;
  /** Client TLS (tls.mode); context is null when it is disabled. */
  tls: ClientTls;
}

/** What the handshake needs to offer TLS: built once per configuration by the proxy. */
export interface ClientTls {
  mode: ClientTlsMode;
  context: tls.SecureContext | null;
  /** tls.ca is set: the client must present a certificate it signed. */
  requestCert: boolean;
  /** tls-server-end-point data of the certificate, for SCRAM-SHA-256-PLUS; null = not offered. */
  endPoint: Buffer | null;
}

/** SCRAM verifiers derived from configured plaintext passwords, once per entry (a reload makes new entries). */
const derivedVerifiers = new WeakMap<UserEntry, string>();

/**
 * What SCRAM checks a configured user against: a stored verifier as is, a plaintext password as a verifier
 * derived once. Deriving at each login would cost a PBKDF2 (4096 rounds) per attempt, and would make a
 * wrong password for a real user measurably slower to refuse than an unknown user.
 */
function scramSecret(entry: UserEntry): string {
  const pw = entry.password;
  if (pw === '' || parseScramVerifier(pw) !== null || isMd5Hash(pw)) return pw;
  let v = derivedVerifiers.get(entry);
  if (v === undefined) {
    v = makeScramVerifier(pw);
    derivedVerifiers.set(entry, v);
  }
  return v;
}

/** Derives the verifiers of every configured user now (at start and on reload), not at their first login. */
export function prepareScramVerifiers(users: readonly UserEntry[]): void {
  for (const u of users) scramSecret(u);
}

/**
 * The client-facing side of connection setup: SSL negotiation (TLS per tls.mode; GSS encryption refused),
 * StartupMessage 3.0 (3.x negotiated down, anything else refused), CancelRequest, and authentication
 * with SCRAM-SHA-256 or md5 against the configured users, or trust in development mode (no users).
 * On failure it writes the ErrorResponse, closes the socket and rejects.
 */
export class ClientHandshake {
  private socket: net.Socket;
  private secure = false;
  /** Between the 'S' and the end of the TLS handshake: an error message could not be read by the client. */
  private tlsHandshaking = false;
  private readonly opts: HandshakeOptions;
  private readonly reader: FrameReader;
  private queue: Frame[] = [];
  private waiter: ((f: Frame | Error) => void) | null = null;
  private failure: Error | null = null;
  /** Set by a successful SCRAM login (see StartupResult.scramClientKey). */
  private scramClientKey: Buffer | null = null;
  /** Set while waiting for the TLS handshake: a failure (the startup timeout) ends the wait. */
  private onFailure: ((e: Error) => void) | null = null;

  constructor(socket: net.Socket, opts: HandshakeOptions) {
    this.socket = socket;
    this.opts = opts;
    // A startup-phase packet is at most 10000 bytes (as in PostgreSQL); auth messages are small too.
    this.reader = new FrameReader({ maxMessageSize: Math.min(opts.maxMessageSize, 65536), startupPhase: true });
  }

  private readonly onDataBound = (chunk: Buffer): void => this.onData(chunk);
  private readonly onEndBound = (): void => this.deliver(new Error('client closed the connection during startup'));

  private listen(s: net.Socket): void {
    s.on('data', this.onDataBound);
    s.on('end', this.onEndBound);
    s.on('close', this.onEndBound);
  }

  private unlisten(s: net.Socket): void {
    s.removeListener('data', this.onDataBound);
    s.removeListener('end', this.onEndBound);
    s.removeListener('close', this.onEndBound);
  }

  async run(): Promise<StartupResult | CancelResult> {
    this.listen(this.socket);
    const timer = setTimeout(() => {
      this.deliver(new PgsplitError('STARTUP_INVALID', SqlState.queryCanceled,
        `canceling authentication due to timeout: startup and authentication must finish within ${this.opts.timeoutMs} ms (limits.startup_timeout)`,
        { severity: 'FATAL' }));
    }, this.opts.timeoutMs);
    try {
      const result = await this.negotiate();
      if (result.kind === 'startup') {
        // Whatever the client pipelined behind its last handshake message belongs to the session:
        // complete messages already framed, then the incomplete rest, in the order they came.
        const rest = this.reader.drain();
        const parts = [...this.queue.map((f) => f.raw), ...(rest !== null ? [rest] : [])];
        this.queue = [];
        result.leftover = parts.length === 0 ? null : Buffer.concat(parts);
      }
      return result;
    } catch (e) {
      if (e instanceof PgsplitError && !this.socket.destroyed && !this.tlsHandshaking) this.socket.end(errorFor(e));
      else this.socket.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
      this.unlisten(this.socket);
    }
  }

  /**
   * Answers SSLRequest with 'S' and continues over TLS. Bytes the client sent after its SSLRequest and
   * before the TLS handshake would be read as if they came over TLS (CVE-2021-23214): refused.
   */
  private async startTls(context: tls.SecureContext): Promise<void> {
    if (this.reader.drain() !== null) {
      throw new PgsplitError('STARTUP_INVALID', SqlState.protocolViolation,
        'received unencrypted data after SSL request; the client must wait for the answer to SSLRequest before the TLS handshake', { severity: 'FATAL' });
    }
    const raw = this.socket;
    this.unlisten(raw);
    raw.write(sslAccepted());
    // Wrapped at once, in the same tick as the 'S': the client's ClientHello cannot have arrived yet.
    const secure = new tls.TLSSocket(raw, {
      isServer: true, secureContext: context, requestCert: this.opts.tls.requestCert, rejectUnauthorized: this.opts.tls.requestCert,
    });
    secure.on('error', () => secure.destroy());
    this.socket = secure;
    this.tlsHandshaking = true;
    this.listen(secure);
    await new Promise<void>((resolve, reject) => {
      const done = (e?: Error): void => {
        this.onFailure = null;
        secure.removeListener('secure', onSecure);
        secure.removeListener('close', onClose);
        if (e) reject(e);
        else resolve();
      };
      const onSecure = (): void => done();
      const onClose = (): void => done(new Error('the TLS handshake failed'));
      secure.once('secure', onSecure);
      secure.once('close', onClose);
      // The startup timeout also bounds a client that says SSLRequest and then nothing.
      this.onFailure = done;
    });
    this.tlsHandshaking = false;
    this.secure = true;
  }

  private onData(chunk: Buffer): void {
    if (this.failure) return;
    try {
      for (const f of this.reader.push(chunk)) this.deliver(f);
    } catch (e) {
      this.deliver(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private deliver(item: Frame | Error): void {
    if (item instanceof Error) {
      if (this.failure) return;
      this.failure = item;
      this.onFailure?.(item);
    }
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(item);
    } else if (!(item instanceof Error)) {
      this.queue.push(item);
    }
  }

  private next(): Promise<Frame> {
    const f = this.queue.shift();
    if (f) return Promise.resolve(f);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = (item) => (item instanceof Error ? reject(item) : resolve(item));
    });
  }

  /** Reads startup-phase packets until a StartupMessage or CancelRequest. */
  private async negotiate(): Promise<StartupResult | CancelResult> {
    for (;;) {
      const f = await this.next();
      const code = f.payload.readInt32BE(0);
      if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
        if (f.payload.length !== 4) throw errors.startupNotPostgres();
        const context = this.opts.tls.context;
        if (code === SSL_REQUEST_CODE && context !== null && this.opts.tls.mode !== 'disable' && !this.secure) {
          await this.startTls(context);
          continue;
        }
        // GSS encryption is not offered, nor TLS when disabled (or a second time): 'N' means go on as you are.
        this.socket.write(sslRefused());
        this.continueStartup();
        continue;
      }
      if (code === CANCEL_REQUEST_CODE) {
        if (f.payload.length !== 12) throw errors.startupNotPostgres();
        return { kind: 'cancel', pid: f.payload.readInt32BE(4), secret: f.payload.readInt32BE(8) };
      }
      const major = code >>> 16;
      const minor = code & 0xffff;
      // Like PostgreSQL: any other protocol number is an unsupported version (0A000).
      if (major !== 3) throw errors.unsupportedProtocol(major, minor);
      const params = readStartupParams(f.payload, 4);
      if (!params) throw errors.startupNotPostgres();
      if (minor !== 0 || Object.keys(params).some((k) => k.startsWith('_pq_.'))) {
        this.socket.write(negotiateProtocolVersion(Object.keys(params).filter((k) => k.startsWith('_pq_.'))));
        for (const k of Object.keys(params)) if (k.startsWith('_pq_.')) delete params[k];
      }
      const user = params.user;
      if (!user) throw errors.startupMissingUser();
      if (this.opts.tls.mode === 'require' && !this.secure) throw errors.tlsRequired();
      params.database = params.database || user;
      this.reader.startupPhase = false;
      await this.authenticate(user);
      return { kind: 'startup', user, database: params.database, params, leftover: null, socket: this.socket, scramClientKey: this.scramClientKey };
    }
  }

  /** The reader stops after each startup-phase packet; re-feed what it held back. */
  private continueStartup(): void {
    const rest = this.reader.drain();
    if (rest) this.onData(rest);
  }

  private async authenticate(user: string): Promise<void> {
    const users = this.opts.users;
    if (users.length === 0) {
      // Trust: what follows the StartupMessage is the session's, unframed (framing it here with the
      // handshake's small limit would throw on a large message and lose the bytes).
      this.socket.write(authenticationOk());
      return;
    }
    this.continueStartup();
    const entry = users.find((u) => u.name === user);
    const secret = entry?.password ?? null;
    const isVerifier = secret !== null && parseScramVerifier(secret) !== null;
    const md5Hash = secret !== null && isMd5Hash(secret);
    // A stored verifier can only do SCRAM and a stored md5 hash only md5, whatever auth.method says.
    const useScram = isVerifier || (!md5Hash && this.opts.method === 'scram-sha-256');
    if (useScram) await this.scram(user, entry === undefined ? null : scramSecret(entry));
    else await this.md5(user, secret);
    this.socket.write(authenticationOk());
  }

  private async passwordMessage(): Promise<Buffer> {
    const f = await this.next();
    if (f.type !== Frontend.Password) throw errors.unexpectedMessage(typeChar(f.type), 'during authentication; expected a password message');
    return f.payload;
  }

  private async md5(user: string, secret: string | null): Promise<void> {
    const salt = crypto.randomBytes(4);
    this.socket.write(authenticationMd5(salt));
    const p = await this.passwordMessage();
    const s = readCString(p, 0);
    if (!s || !md5Verify(user, secret, salt, s[0])) throw errors.passwordFailed(user);
  }

  private async scram(user: string, secret: string | null): Promise<void> {
    // Over TLS, SCRAM-SHA-256-PLUS binds the exchange to this connection (a client asking for
    // channel_binding=require gets it; one that does not still may use it).
    const endPoint = this.secure ? this.opts.tls.endPoint : null;
    // An unknown user runs the same exchange against a verifier that cannot match, with a salt that stays
    // the same for that name: the same error, the same work, the same kind of answer as a wrong password.
    const session = new ScramServerSession(secret, {
      ...(endPoint !== null ? { channelBinding: endPoint } : {}),
      ...(secret === null ? { mockSalt: mockSalt(user) } : {}),
    });
    this.socket.write(authenticationSasl(session.mechanisms()));
    try {
      const init = await this.passwordMessage();
      const mech = readCString(init, 0);
      if (!mech || init.length < mech[1] + 4) throw errors.authProtocol('malformed SASLInitialResponse');
      const len = init.readInt32BE(mech[1]);
      const clientFirst = init.toString('utf8', mech[1] + 4, len < 0 ? mech[1] + 4 : mech[1] + 4 + len);
      this.socket.write(authenticationSaslContinue(session.handleClientFirst(mech[0], clientFirst)));
      const fin = await this.passwordMessage();
      const r = session.handleClientFinal(fin.toString('utf8'));
      if (!r.ok) throw errors.passwordFailed(user);
      this.scramClientKey = r.clientKey;
      this.socket.write(authenticationSaslFinal(r.serverFinal));
    } catch (e) {
      if (e instanceof ScramError) throw errors.authProtocol(e.message);
      throw e;
    }
  }
}

function negotiateProtocolVersion(unrecognized: string[]): Buffer {
  const names = Buffer.concat(unrecognized.map((n) => Buffer.from(n + '\0', 'utf8')));
  const out = Buffer.alloc(5 + 8 + names.length);
  out[0] = 0x76;
  out.writeInt32BE(4 + 8 + names.length, 1);
  out.writeInt32BE(0x30000, 5);
  out.writeInt32BE(unrecognized.length, 9);
  names.copy(out, 13);
  return out;
}
