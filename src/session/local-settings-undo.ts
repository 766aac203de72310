/**
 * pgsplit's own settings (pgsplit.route, max_lag, after) are transactional, like PostgreSQL's: a SET
 * made in a transaction that rolls back, or after a savepoint rolled back to, is undone. Kept as
 * snapshots of the values: one when the transaction begins, one per savepoint.
 */
export class LocalSettingsUndo<S> {
  private begin: S | null = null;
  private savepoints: Array<{ name: string; at: S }> = [];

  /** A transaction began: `now` is what a rollback returns to. */
  began(now: S): void {
    this.begin = now;
    this.savepoints = [];
  }

  get inTransaction(): boolean {
    return this.begin !== null;
  }

  /** SAVEPOINT name. */
  savepoint(name: string, now: S): void {
    this.savepoints.push({ name, at: now });
  }

  /** RELEASE name: it and the savepoints after it are gone; their changes stay. */
  release(name: string): void {
    const i = this.find(name);
    if (i >= 0) this.savepoints.length = i;
  }

  /** ROLLBACK TO name: the values at that savepoint, which stays; null if it is unknown. */
  rollbackTo(name: string): S | null {
    const i = this.find(name);
    if (i < 0) return null;
    this.savepoints.length = i + 1;
    return (this.savepoints[i] as { at: S }).at;
  }

  /** The transaction ended: on rollback, the values at its start (null when nothing to restore). */
  ended(committed: boolean): S | null {
    const at = this.begin;
    this.begin = null;
    this.savepoints = [];
    return committed ? null : at;
  }

  private find(name: string): number {
    for (let i = this.savepoints.length - 1; i >= 0; i--) if ((this.savepoints[i] as { name: string }).name === name) return i;
    return -1;
  }
}

/** The savepoint a SAVEPOINT / RELEASE / ROLLBACK TO statement names, as PostgreSQL folds it. */
export function savepointName(text: string): string | null {
  const m = /(?:savepoint|release|to)\s+(?:savepoint\s+)?("(?:[^"]|"")+"|[^\s;]+)\s*;?\s*$/i.exec(text);
  if (!m) return null;
  const raw = m[1] as string;
  return raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw.toLowerCase();
}
