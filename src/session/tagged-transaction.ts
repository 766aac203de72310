import { replicaBegin } from '../router/transaction-statements.js';

/**
 * Explicit transactions of tagged sessions (routing.transactions: replica-until-write).
 *
 * A plain `BEGIN` is answered by pgsplit and opened on a server together with the first statement that
 * needs one. While the transaction only reads it runs on a replica; before its first statement that can
 * write, the replica transaction is rolled back (it only read) and the transaction is opened again on the
 * primary, where the statements the primary must know (SET, SET LOCAL, savepoints) are replayed in order.
 * Under READ COMMITTED every statement takes a new snapshot anyway, so the client sees no difference
 * beyond the staleness its tag accepts. Only READ COMMITTED (and READ UNCOMMITTED, which PostgreSQL runs
 * as READ COMMITTED) transactions move: REPEATABLE READ and SERIALIZABLE ones run on the primary from
 * their start.
 */

/** A tagged session's transaction while it may still run on (or move off) a replica. */
export class TaggedTransaction {
  /**
   * 'deferred': BEGIN was answered by pgsplit and nothing is open on a server yet. 'replica': open on
   * the session's replica, and it will move before its first statement that can write.
   */
  phase: 'deferred' | 'replica';
  /** The client's BEGIN, sent as written when the transaction opens on a server. */
  readonly begin: string;
  /** Statements that ran on the replica and that the primary must run too if the transaction moves. */
  readonly replay: string[] = [];
  /**
   * The session's read-your-writes floor that the transaction's replica had not been seen to replay when
   * a unit that reads nothing (a BEGIN alone, or the SET LOCAL or SAVEPOINT a deferred transaction opens
   * with) opened the transaction there without waiting; null when none is pending. Its first read waits for it (routing.read_your_writes_timeout) and, if it does not come,
   * moves the transaction to the primary as a write would; a write first moves it with no wait at all.
   */
  floorLsn: bigint | null;

  constructor(phase: 'deferred' | 'replica', begin: string, floorLsn: bigint | null = null) {
    this.phase = phase;
    this.begin = begin;
    this.floorLsn = floorLsn;
  }

  /**
   * What opens this transaction on a server: the BEGIN, then the replayed statements. On a replica the
   * BEGIN leaves out READ WRITE (a standby refuses it with 0A000; the transaction only reads there), and
   * the primary gets the client's own.
   */
  opening(onReplica: boolean): string[] {
    return [onReplica ? replicaBegin(this.begin) : this.begin, ...this.replay];
  }
}
