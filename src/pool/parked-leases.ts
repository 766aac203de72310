/**
 * Leases parked by their clients (pool.mode transaction): a connection that holds nothing of its client's
 * between two transactions stays with that client, so that its next transaction takes it back with no
 * borrow, no new link and no settings check, until another client needs a connection while the pool is
 * full (pool.size) and has no idle one of its login. Then the oldest parked lease is reclaimed: its holder
 * lets it go at once (as it would have at the end of its transaction) and it goes back through release and
 * cleanup like any other. Below pool.size the pool opens a connection instead, so a pool of busy clients
 * grows to one connection per client, up to pool.size, rather than to as many as run at one moment.
 *
 * Why: borrowing and giving back at every transaction cost a busy client a few microseconds of CPU each
 * time (a lease, a link with its protocol state, the handlers), a good part of what pgsplit spends per
 * statement beyond a bare relay. A parked connection counts as idle in SHOW POOLS and the metrics, a
 * client never waits for one, and one parked as long as pool.server_idle_timeout comes back (and closes).
 */
import type { Lease } from './lease.js';

export class ParkedLeases {
  /** In no particular order (removal swaps the last one in): each lease knows its index (Lease.parkIndex). */
  private readonly list: Lease[] = [];

  get size(): number {
    return this.list.length;
  }

  /** Parks `lease`; `reclaim` is how its holder is told to let it go (synchronously). */
  add(lease: Lease, reclaim: () => void, now: number): void {
    if (lease.parkIndex >= 0) return;
    lease.parkIndex = this.list.length;
    lease.parkedSince = now;
    lease.reclaim = reclaim;
    this.list.push(lease);
  }

  /** Its holder took it back (or it ended): no longer anyone's to reclaim. */
  remove(lease: Lease): void {
    const i = lease.parkIndex;
    if (i < 0) return;
    const last = this.list.pop() as Lease;
    if (last !== lease) {
      this.list[i] = last;
      last.parkIndex = i;
    }
    lease.parkIndex = -1;
    lease.reclaim = null;
  }

  /** Every parked lease (a copy: reclaiming them changes the list). */
  all(): Lease[] {
    return [...this.list];
  }

  /**
   * Tells `lease`'s holder to let it go now: it comes back through the pool's release (or releaseWithError)
   * before this returns. Whether it ended; a holder that could not let go keeps it, in use, not parked.
   */
  reclaim(lease: Lease): boolean {
    const tell = lease.reclaim;
    this.remove(lease);
    tell?.();
    return lease.ended;
  }

  /** Reclaims the lease parked longest of those logged in with `login` (of any login: null); false when none came back. */
  reclaimOldest(login: string | null): boolean {
    let found: Lease | undefined;
    for (const l of this.list) {
      if ((login === null || l.server.login === login) && (found === undefined || l.parkedSince < found.parkedSince)) found = l;
    }
    return found !== undefined && this.reclaim(found);
  }

  reclaimAll(): void {
    for (const l of this.all()) this.reclaim(l);
  }
}
