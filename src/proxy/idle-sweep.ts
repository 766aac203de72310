import type { Session } from '../session/session.js';

/**
 * limits.idle_in_transaction_timeout: a sweep, not a timer per session, so that statements inside
 * transactions cost nothing extra; a session is closed within a quarter of the timeout (at most 1 s) late.
 */
export class IdleSweep {
  private running: { timer: NodeJS.Timeout; every: number } | null = null;

  constructor(
    private readonly sessions: ReadonlyMap<number, Session>,
    /** limits.idle_in_transaction_timeout in force, ms; 0 = off. */
    private readonly timeoutMs: () => number,
    private readonly isClosed: () => boolean,
  ) {}

  /** Starts, re-paces or stops the sweep for the timeout in force (at start and after each reload). */
  arm(): void {
    const timeout = this.timeoutMs();
    const every = timeout > 0 ? Math.min(1000, Math.max(10, Math.floor(timeout / 4))) : 0;
    if (this.running !== null && this.running.every === every) return;
    if (this.running !== null) clearInterval(this.running.timer);
    this.running = null;
    if (every === 0 || this.isClosed()) return;
    const timer = setInterval(() => {
      const limit = this.timeoutMs();
      const now = performance.now();
      for (const s of this.sessions.values()) if (limit > 0 && s.idleInTransactionFor(now) >= limit) s.terminateIdleInTransaction(limit);
    }, every);
    timer.unref();
    this.running = { timer, every };
  }

  stop(): void {
    if (this.running !== null) clearInterval(this.running.timer);
    this.running = null;
  }
}
