import type { WaitSignal } from '../pool/server-pool.js';

/**
 * Ends a session's waits for pooled connections when it closes: the part of an AbortSignal that
 * ServerPool.acquire uses, without an EventTarget. An AbortSignal costs ~0.8 KiB of heap: kept by every
 * session it showed in idle memory, made per wait it cost 5-10 % of the throughput of 1,000 clients
 * waiting on a pool of 20 (bench:pool).
 */
export class SessionClosing implements WaitSignal {
  aborted = false;
  reason: Error | undefined = undefined;
  /** The pools' listeners of the waits under way (a tagged session may wait on two pools). */
  private listeners: Array<() => void> | null = null;

  addEventListener(_type: 'abort', listener: () => void): void {
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.listeners?.splice(i, 1);
  }

  /** The session closed: every wait ends with `reason`. Once. */
  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    for (const listener of this.listeners?.splice(0) ?? []) listener();
  }
}
