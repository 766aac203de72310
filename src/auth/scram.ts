/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it over SASL, built on node:crypto only.
 *
 * Two halves:
 * - {@link ScramServerSession} authenticates a client connecting to pgsplit.
 * - {@link ScramClientSession} authenticates pgsplit to a PostgreSQL server.
 *
 * PostgreSQL specifics followed here (see "SASL Authentication" in the PostgreSQL protocol docs):
 * - The user name in client-first-message is ignored (the startup packet's user counts); clients send
 *   an empty `n=` and the server accepts any value there.
 * - The gs2 header is `n,,` (client does no channel binding), `y,,` (client could bind but the server
 *   offered no -PLUS mechanism) or `p=tls-server-end-point,,` (binding in use). An authzid (`a=`) and
 *   mandatory extensions (`m=`) are rejected.
 * - Nonces are 18 random bytes, base64-encoded; salts default to 16 bytes; iterations default to 4096.
 * - The stored form is `SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.
 *
 * Passwords: SASLprep (RFC 4013) is NOT applied. Passwords are used as their UTF-8 bytes, unnormalised.
 * PostgreSQL itself falls back to the raw bytes when SASLprep fails (for instance when the password is
 * not valid UTF-8 or contains prohibited characters), and SASLprep leaves ASCII-only passwords unchanged,
 * so ASCII passwords always agree with PostgreSQL. A non-ASCII password that SASLprep would change
 * (NFKC-normalisable characters, non-ASCII spaces, soft hyphens, ...) will not match a verifier that
 * PostgreSQL computed from the same text.
 *
 * Key derivation uses crypto.pbkdf2Sync, so it blocks the event loop for the duration of Hi()
 * (a few milliseconds at 4096 iterations).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { isMd5Hash } from './md5-hash.js';

/** Malformed or out-of-order SCRAM input, an unsupported option, or (client side) a bad server proof. */
export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

const MECHANISM = 'SCRAM-SHA-256';
const MECHANISM_PLUS = 'SCRAM-SHA-256-PLUS';
const CB_TYPE = 'tls-server-end-point';
const DEFAULT_ITERATIONS = 4096;
const DEFAULT_SALT_LEN = 16;
const NONCE_LEN = 18;
const KEY_LEN = 32;

// ---------------------------------------------------------------------------------------------------
// Primitives

function hi(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, KEY_LEN, 'sha256');
}

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

/** Constant-time equality; unequal lengths compare unequal (the length itself is not secret). */
function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 decode (Buffer.from is lenient and would silently skip junk); null if invalid. */
function decodeBase64(text: string): Buffer | null {
  if (!BASE64_RE.test(text)) return null;
  return Buffer.from(text, 'base64');
}

/** RFC 5802 `printable`: %x21-2B / %x2D-7E (printable ASCII except ','). */
function isPrintable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false;
  }
  return true;
}

function newNonce(): string {
  return randomBytes(NONCE_LEN).toString('base64');
}

interface Attr {
  name: string;
  value: string;
}

/** Split `a=x,b=y,...` into attributes; each must be a single ASCII letter followed by '='. */
function parseAttrs(text: string, what: string): Attr[] {
  if (text === '') throw new ScramError(`malformed SCRAM ${what}: empty message`);
  return text.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part)) {
      throw new ScramError(`malformed SCRAM ${what}: expected attribute=value, found "${part.slice(0, 20)}"`);
    }
    return { name: part[0] as string, value: part.slice(2) };
  });
}

/** Take the next attribute, which must be `name`. */
function expectAttr(attrs: Attr[], index: number, name: string, what: string): string {
  const attr = attrs[index];
  if (attr === undefined) throw new ScramError(`malformed SCRAM ${what}: attribute "${name}" missing`);
  if (attr.name !== name) {
    throw new ScramError(`malformed SCRAM ${what}: expected attribute "${name}", found "${attr.name}"`);
  }
  return attr.value;
}

function computeKeys(password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer; clientKey: Buffer } {
  const salted = hi(password, salt, iterations);
  const clientKey = hmac(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

function checkIterations(iterations: number): void {
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new ScramError(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Stored verifiers

/** A secret of this process, for salts of users that do not exist (PostgreSQL keeps one per cluster). */
const MOCK_NONCE = randomBytes(32);

/**
 * The salt shown to a user name that does not exist: the same for every attempt with that name while
 * pgsplit runs, as a real user's salt is, so that probing names cannot tell them apart by the salt.
 */
export function mockSalt(user: string): Buffer {
  return createHmac('sha256', MOCK_NONCE).update(user, 'utf8').digest().subarray(0, DEFAULT_SALT_LEN);
}

/** Build PostgreSQL's stored form "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
export function makeScramVerifier(password: string, opts?: { salt?: Buffer; iterations?: number }): string {
  const iterations = opts?.iterations ?? DEFAULT_ITERATIONS;
  checkIterations(iterations);
  const salt = opts?.salt ?? randomBytes(DEFAULT_SALT_LEN);
  if (salt.length === 0) throw new ScramError('SCRAM salt must not be empty');
  const { storedKey, serverKey } = computeKeys(password, salt, iterations);
  return formatVerifier({ iterations, salt, storedKey, serverKey });
}

function formatVerifier(v: ScramVerifier): string {
  return `${MECHANISM}$${v.iterations}:${v.salt.toString('base64')}$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`;
}

/** Parse that stored form; null if it is not one. */
export function parseScramVerifier(text: string): ScramVerifier | null {
  const m = /^SCRAM-SHA-256\$([1-9][0-9]{0,9}):([^$:]+)\$([^$:]+):([^$:]+)$/.exec(text);
  if (m === null) return null;
  const iterations = Number(m[1]);
  if (!Number.isSafeInteger(iterations)) return null;
  const salt = decodeBase64(m[2] ?? '');
  const storedKey = decodeBase64(m[3] ?? '');
  const serverKey = decodeBase64(m[4] ?? '');
  if (salt === null || salt.length === 0) return null;
  if (storedKey === null || storedKey.length !== KEY_LEN) return null;
  if (serverKey === null || serverKey.length !== KEY_LEN) return null;
  return { iterations, salt, storedKey, serverKey };
}


// ---------------------------------------------------------------------------------------------------
// Server side

type ServerState =
  | { step: 'initial' }
  | {
      step: 'first-sent';
      cbindFlag: 'n' | 'y' | 'p';
      gs2Header: string;
      nonce: string;
      clientFirstBare: string;
      serverFirst: string;
    }
  | { step: 'done' };

/** Server side of one exchange, for authenticating a client connecting to pgsplit. */
export class ScramServerSession {
  private readonly verifier: ScramVerifier;
  /** False for an unknown user or an unusable secret: the exchange runs normally but always fails. */
  private readonly usable: boolean;
  private readonly channelBinding: Buffer | undefined;
  private state: ServerState = { step: 'initial' };

  /**
   * secret: either a plaintext password (a verifier is derived with a random salt, 4096 iterations) or a
   * stored verifier string; or null for an unknown user: the exchange then runs against a random fake
   * verifier and always fails at the end, so an unknown user looks like a wrong password.
   *
   * Like PostgreSQL, an empty plaintext password and an md5 stored hash ('md5' + 32 hex digits) are not
   * usable for SCRAM and are treated like an unknown user (the exchange always fails).
   *
   * Note: the fake verifier's salt is random per session, as is the salt derived for a plaintext secret;
   * only a stored verifier gives a stable salt across sessions.
   */
  constructor(secret: string | null, opts?: {
    channelBinding?: Buffer /* tls-server-end-point data if TLS */;
    /** For an unknown user: the salt to show (stable per user name, see mockSalt), so it looks like a real one. */
    mockSalt?: Buffer;
  }) {
    this.channelBinding = opts?.channelBinding;
    const parsed = secret === null ? null : parseScramVerifier(secret);
    if (parsed !== null) {
      this.verifier = parsed;
      this.usable = true;
    } else if (secret !== null && secret !== '' && !isMd5Hash(secret)) {
      const salt = randomBytes(DEFAULT_SALT_LEN);
      const { storedKey, serverKey } = computeKeys(secret, salt, DEFAULT_ITERATIONS);
      this.verifier = { iterations: DEFAULT_ITERATIONS, salt, storedKey, serverKey };
      this.usable = true;
    } else {
      this.verifier = {
        iterations: DEFAULT_ITERATIONS,
        salt: opts?.mockSalt ?? randomBytes(DEFAULT_SALT_LEN),
        storedKey: randomBytes(KEY_LEN),
        serverKey: randomBytes(KEY_LEN),
      };
      this.usable = false;
    }
  }

  /** Mechanisms to advertise in AuthenticationSASL: ['SCRAM-SHA-256'] (plus 'SCRAM-SHA-256-PLUS' when channelBinding given). */
  mechanisms(): string[] {
    return this.channelBinding !== undefined ? [MECHANISM_PLUS, MECHANISM] : [MECHANISM];
  }

  /** Handle SASLInitialResponse (mechanism + client-first-message); returns server-first-message. Throws ScramError on malformed input. */
  handleClientFirst(mechanism: string, clientFirst: string): string {
    if (this.state.step !== 'initial') throw new ScramError('SCRAM client-first-message received out of order');
    this.state = { step: 'done' }; // any error below ends the exchange
    if (!this.mechanisms().includes(mechanism)) {
      throw new ScramError(`client selected an invalid SASL authentication mechanism "${mechanism.slice(0, 40)}"`);
    }
    const usePlus = mechanism === MECHANISM_PLUS;
    const what = 'client-first-message';

    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    const firstComma = clientFirst.indexOf(',');
    if (firstComma < 0) throw new ScramError(`malformed SCRAM ${what}: missing gs2 header`);
    const flag = clientFirst.slice(0, firstComma);
    let cbindFlag: 'n' | 'y' | 'p';
    if (flag === 'n') {
      if (usePlus) {
        throw new ScramError(`malformed SCRAM ${what}: client selected ${MECHANISM_PLUS} but sent no channel binding data`);
      }
      cbindFlag = 'n';
    } else if (flag === 'y') {
      if (this.channelBinding !== undefined) {
        // Downgrade protection (RFC 5802 section 6): we did offer binding, so 'y' means tampering.
        throw new ScramError(
          'SCRAM channel binding negotiation error: the client supports channel binding but thinks the server does not',
        );
      }
      if (usePlus) throw new ScramError(`malformed SCRAM ${what}: client selected ${MECHANISM_PLUS} but sent flag "y"`);
      cbindFlag = 'y';
    } else if (flag.startsWith('p=')) {
      if (!usePlus) {
        throw new ScramError(`malformed SCRAM ${what}: client selected ${MECHANISM} but sent channel binding data`);
      }
      if (flag.slice(2) !== CB_TYPE) {
        throw new ScramError(`unsupported SCRAM channel binding type "${flag.slice(2, 40)}"`);
      }
      cbindFlag = 'p';
    } else {
      throw new ScramError(`malformed SCRAM ${what}: unexpected channel binding flag "${flag.slice(0, 20)}"`);
    }
    const rest = clientFirst.slice(firstComma + 1);
    if (rest.startsWith('a=')) throw new ScramError('client uses SCRAM authorization identity, which is not supported');
    if (!rest.startsWith(',')) throw new ScramError(`malformed SCRAM ${what}: malformed gs2 header`);
    const gs2Header = clientFirst.slice(0, firstComma + 2);
    const clientFirstBare = rest.slice(1);

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    if (clientFirstBare.startsWith('m=')) throw new ScramError('client requires an unsupported SCRAM extension');
    const attrs = parseAttrs(clientFirstBare, what);
    expectAttr(attrs, 0, 'n', what); // user name: ignored, as PostgreSQL does
    const clientNonce = expectAttr(attrs, 1, 'r', what);
    if (clientNonce === '' || !isPrintable(clientNonce)) {
      throw new ScramError(`malformed SCRAM ${what}: empty or non-printable nonce`);
    }

    const nonce = clientNonce + newNonce();
    const serverFirst = `r=${nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`;
    this.state = { step: 'first-sent', cbindFlag, gs2Header, nonce, clientFirstBare, serverFirst };
    return serverFirst;
  }

  /**
   * Handle client-final-message; returns { ok: true, serverFinal, clientKey } or { ok: false }. Throws
   * ScramError on malformed input (e.g. nonce mismatch). clientKey is recovered from the client's proof
   * (ClientProof XOR HMAC(StoredKey, AuthMessage)): with the verifier's ServerKey it lets pgsplit log in
   * to a server holding the same verifier without knowing the password (see ScramKeys).
   */
  handleClientFinal(clientFinal: string): { ok: true; serverFinal: string; clientKey: Buffer } | { ok: false } {
    const st = this.state;
    if (st.step !== 'first-sent') throw new ScramError('SCRAM client-final-message received out of order');
    this.state = { step: 'done' };
    const what = 'client-final-message';

    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const attrs = parseAttrs(clientFinal, what);
    const cbInput = decodeBase64(expectAttr(attrs, 0, 'c', what));
    if (cbInput === null) throw new ScramError(`malformed SCRAM ${what}: channel binding is not valid base64`);
    const expectedCb =
      st.cbindFlag === 'p'
        ? Buffer.concat([Buffer.from(st.gs2Header, 'utf8'), this.channelBinding ?? Buffer.alloc(0)])
        : Buffer.from(st.gs2Header, 'utf8');
    if (!safeEqual(cbInput, expectedCb)) {
      throw new ScramError(
        st.cbindFlag === 'p'
          ? 'SCRAM channel binding check failed'
          : `unexpected SCRAM channel-binding attribute in ${what}`,
      );
    }
    const nonce = expectAttr(attrs, 1, 'r', what);
    if (nonce !== st.nonce) throw new ScramError(`SCRAM nonce mismatch in ${what}`);
    const last = attrs[attrs.length - 1];
    if (attrs.length < 3 || last === undefined || last.name !== 'p') {
      throw new ScramError(`malformed SCRAM ${what}: proof missing or not last`);
    }
    if (attrs.slice(2, -1).some((a) => a.name === 'p')) {
      throw new ScramError(`malformed SCRAM ${what}: duplicate proof`);
    }
    const proof = decodeBase64(last.value);
    if (proof === null || proof.length !== KEY_LEN) throw new ScramError(`malformed SCRAM ${what}: invalid proof`);

    const withoutProof = clientFinal.slice(0, clientFinal.length - (last.value.length + 3));
    const authMessage = `${st.clientFirstBare},${st.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.verifier.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    const proofOk = safeEqual(sha256(clientKey), this.verifier.storedKey);
    if (!proofOk || !this.usable) return { ok: false };
    const serverSignature = hmac(this.verifier.serverKey, authMessage);
    return { ok: true, serverFinal: `v=${serverSignature.toString('base64')}`, clientKey };
  }
}

// ---------------------------------------------------------------------------------------------------
// Client side

type ClientState =
  | { step: 'initial' }
  | { step: 'started'; clientNonce: string; clientFirstBare: string }
  | { step: 'final-sent'; serverSignature: Buffer }
  | { step: 'done' };

/**
 * What SCRAM pass-through logs in with instead of a password (PgBouncer does the same): the ClientKey a
 * client proved it holds, and the ServerKey, salt and iteration count of the verifier it was checked
 * against. A server accepts the proof made from them only when its own verifier for the role is that same
 * one (same salt and iterations, hence the same keys).
 */
export interface ScramKeys {
  clientKey: Buffer;
  serverKey: Buffer;
  salt: Buffer;
  iterations: number;
}

/** The server's SCRAM verifier is another one than the keys pgsplit holds: pass-through cannot work. */
export class ScramVerifierMismatch extends ScramError {
  constructor() {
    super("the server's SCRAM verifier for this role has another salt or iteration count than the one pgsplit holds");
    this.name = 'ScramVerifierMismatch';
  }
}

/** Client side, for pgsplit authenticating to a PostgreSQL server, with a password or with ScramKeys. */
export class ScramClientSession {
  private readonly secret: string | ScramKeys;
  private state: ClientState = { step: 'initial' };

  constructor(secret: string | ScramKeys) {
    this.secret = secret;
  }

  /** Choose mechanism from the server's list ('SCRAM-SHA-256'; no channel binding for now) and return { mechanism, clientFirst }. Throws ScramError if unsupported. */
  start(serverMechanisms: string[]): { mechanism: string; clientFirst: string } {
    if (this.state.step !== 'initial') throw new ScramError('SCRAM client session already started');
    if (!serverMechanisms.includes(MECHANISM)) {
      throw new ScramError(
        `none of the server's SASL mechanisms is supported (server offered: ${serverMechanisms.join(', ') || 'none'}; supported: ${MECHANISM})`,
      );
    }
    const clientNonce = newNonce();
    // This client does not do channel binding, so the flag is 'n' (RFC 5802 section 6), and PostgreSQL
    // ignores the user name, so it is sent empty.
    const clientFirstBare = `n=,r=${clientNonce}`;
    this.state = { step: 'started', clientNonce, clientFirstBare };
    return { mechanism: MECHANISM, clientFirst: `n,,${clientFirstBare}` };
  }

  /** Given server-first-message, return client-final-message. Validate nonce prefix, iteration count >= 1, base64 salt. */
  handleServerFirst(serverFirst: string): string {
    const st = this.state;
    if (st.step !== 'started') throw new ScramError('SCRAM server-first-message received out of order');
    this.state = { step: 'done' };
    const what = 'server-first-message';

    if (serverFirst.startsWith('m=')) throw new ScramError('server requires an unsupported SCRAM extension');
    const attrs = parseAttrs(serverFirst, what);
    const nonce = expectAttr(attrs, 0, 'r', what);
    const saltText = expectAttr(attrs, 1, 's', what);
    const iterText = expectAttr(attrs, 2, 'i', what);
    if (!isPrintable(nonce)) throw new ScramError(`malformed SCRAM ${what}: non-printable nonce`);
    if (!nonce.startsWith(st.clientNonce) || nonce.length <= st.clientNonce.length) {
      throw new ScramError(`SCRAM ${what}: server nonce does not extend the client nonce`);
    }
    const salt = decodeBase64(saltText);
    if (salt === null || salt.length === 0) throw new ScramError(`malformed SCRAM ${what}: salt is not valid base64`);
    if (!/^[1-9][0-9]{0,9}$/.test(iterText)) {
      throw new ScramError(`malformed SCRAM ${what}: invalid iteration count "${iterText.slice(0, 20)}"`);
    }
    const iterations = Number(iterText);
    checkIterations(iterations);

    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
    const authMessage = `${st.clientFirstBare},${serverFirst},${withoutProof}`;
    let clientKey: Buffer;
    let serverKey: Buffer;
    if (typeof this.secret === 'string') {
      const salted = hi(this.secret, salt, iterations);
      clientKey = hmac(salted, 'Client Key');
      serverKey = hmac(salted, 'Server Key');
    } else {
      // The keys belong to one salt and iteration count: with others the server's keys differ and the
      // proof would only fail later, as a wrong password.
      if (!this.secret.salt.equals(salt) || this.secret.iterations !== iterations) throw new ScramVerifierMismatch();
      clientKey = this.secret.clientKey;
      serverKey = this.secret.serverKey;
    }
    const storedKey = sha256(clientKey);
    const proof = xor(clientKey, hmac(storedKey, authMessage));
    const serverSignature = hmac(serverKey, authMessage);
    this.state = { step: 'final-sent', serverSignature };
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Verify server-final-message (v=...), throwing ScramError if the server signature is wrong or e= is present. */
  handleServerFinal(serverFinal: string): void {
    const st = this.state;
    if (st.step !== 'final-sent') throw new ScramError('SCRAM server-final-message received out of order');
    this.state = { step: 'done' };
    const what = 'server-final-message';

    const attrs = parseAttrs(serverFinal, what);
    const first = attrs[0];
    if (first?.name === 'e') throw new ScramError(`SCRAM authentication failed on the server: ${first.value.slice(0, 100)}`);
    const sig = decodeBase64(expectAttr(attrs, 0, 'v', what));
    if (sig === null) throw new ScramError(`malformed SCRAM ${what}: server signature is not valid base64`);
    if (!safeEqual(sig, st.serverSignature)) throw new ScramError('SCRAM server signature is wrong');
  }
}
