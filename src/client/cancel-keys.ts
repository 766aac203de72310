import crypto from 'node:crypto';

/** A cancel key as sent to the client in BackendKeyData. */
export interface CancelKey {
  pid: number;
  secret: number;
}

/**
 * The cancel keys pgsplit gave its clients, and whose they are: a CancelRequest arrives on a connection
 * of its own and names only the key, so this is how it finds the session whose statement to cancel.
 */
export class CancelKeys<S extends { cancel(): void }> {
  private readonly byKey = new Map<string, S>();

  /** A new key for the session numbered `pid`; the secret is random so that no other client can guess it. */
  static issue(pid: number): CancelKey {
    return { pid, secret: crypto.randomBytes(4).readInt32BE(0) };
  }

  add(key: CancelKey, session: S): void {
    this.byKey.set(CancelKeys.text(key), session);
  }

  delete(key: CancelKey): void {
    this.byKey.delete(CancelKeys.text(key));
  }

  /** A CancelRequest: cancels what the key's session runs; a key that is unknown (or gone) does nothing. */
  cancel(key: CancelKey): void {
    this.byKey.get(CancelKeys.text(key))?.cancel();
  }

  private static text(k: CancelKey): string {
    return `${k.pid}:${k.secret}`;
  }
}
