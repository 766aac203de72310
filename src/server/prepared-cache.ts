/**
 * The server-side prepared statements pgsplit created on one server connection (names such as
 * `pgsplit_7`), least recently used first. A pooled connection keeps them from one client to the next:
 * the same statement text always gets the same name, so a later client binding it finds it ready. The
 * cache is bounded (pool.prepared_statements): adding past the bound evicts the least recently used name,
 * and the caller sends the server a Close for it, as PgDog and PgBouncer (max_prepared_statements) do.
 */
export class PreparedCache {
  /** Map iteration order is insertion order: re-inserting a name on use keeps the oldest use first. */
  private readonly names = new Map<string, true>();

  /** `capacity`: pool.prepared_statements (at least 1: the statement being bound must stay). */
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.names.size;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /** Marks `name` as just used (a Bind to it); false when the server does not have it. */
  touch(name: string): boolean {
    if (!this.names.delete(name)) return false;
    this.names.set(name, true);
    return true;
  }

  /**
   * Records that `name` is (about to be) prepared on the server, and returns the names to Close there so
   * that at most `capacity` remain, oldest use first. Neither `name` nor a name in `keep` is evicted:
   * closing a statement closes the portals bound from it, so a name the current batch uses stays until
   * its Sync (the cache is over capacity until a later add).
   */
  add(name: string, keep: ReadonlySet<string> = NONE): string[] {
    this.names.delete(name);
    this.names.set(name, true);
    const evicted: string[] = [];
    for (const old of this.names.keys()) {
      if (this.names.size <= this.capacity) break;
      if (old === name || keep.has(old)) continue;
      this.names.delete(old);
      evicted.push(old);
    }
    return evicted;
  }

  /**
   * The server still has `name` after all (the Close evicting it was skipped): back in, as least recently
   * used, even past the capacity; the next add evicts it again.
   */
  restore(name: string): void {
    if (this.names.has(name)) return;
    const rest = [...this.names.keys()];
    this.names.clear();
    this.names.set(name, true);
    for (const n of rest) this.names.set(n, true);
  }

  /** The server no longer has `name` (a Close ran, or its Parse failed). */
  delete(name: string): void {
    this.names.delete(name);
  }

  /** DEALLOCATE ALL or DISCARD ALL ran: the server has none of them any more. */
  clear(): void {
    this.names.clear();
  }

  /** Names, least recently used first (for tests and SHOW). */
  list(): string[] {
    return [...this.names.keys()];
  }
}

const NONE: ReadonlySet<string> = new Set();
