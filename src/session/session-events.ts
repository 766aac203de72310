/**
 * What a session reports as it runs: one interface, implemented by the proxy's stats (ProxyStats), so
 * that a reader sees in one place everything a session counts. Called on the hot path: implementations
 * bump counters and do nothing slow.
 */
export interface SessionEvents {
  /** A unit of work was routed to `node`, for `reason` (the router's, or the session's: transaction, open-batch, ...). */
  routed(node: string, reason: string): void;
  /** A read is run again elsewhere because its replica (`node`) failed before answering. */
  retry(node: string): void;
  /** A replica refused a unit (25006, or its settings: `reason`) and it is re-run on the primary. */
  rerun(reason: string): void;
  /**
   * The guard ahead of a read on a replica (read-your-writes, see RequestWriter.guard): it passed, the
   * replica was behind (the read waits and runs again), or the replica refused it (the session stops guarding).
   */
  guard(result: 'passed' | 'behind' | 'refused'): void;
  /** Well-formed pgsplit hints in a routed unit. */
  hints(count: number): void;
  /** Malformed pgsplit hints in a routed unit (ignored). */
  malformedHints(count: number): void;
  /** A unit's answer is complete: the node and the milliseconds since it was sent. */
  unitDone(node: string, ms: number): void;
  /** An error was sent to the client (from a server or from pgsplit), with its SQLSTATE. */
  error(sqlState: string): void;
  /**
   * The session keeps its pooled server connection past the end of a transaction, for `reason` (a fixed
   * word per cause, never a client's value: it is a metric label). Optional while pooling is being wired.
   */
  pinned?(reason: string): void;
}

