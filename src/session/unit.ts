import type { Frame } from '../codec/frame-reader.js';
import type { RouteDecision } from '../router/router.js';
import type { NodeEntry } from '../server/server-nodes.js';
import type { LocalCommand } from './local-command.js';
import type { ServerLink } from './server-link.js';

export type UnitKind = 'simple' | 'extended' | 'function' | 'copy' | 'local' | 'terminate';

/** A piece of client traffic routed as a whole: one Query, or an extended batch up to Sync (or Flush). */
export interface Unit {
  kind: UnitKind;
  frames: Frame[];
  /** Ends the batch (Sync, or a message that is its own batch). False for a piece sent on Flush. */
  complete: boolean;
  /** Query texts that decide the route. */
  queries: string[];
  bytes: number;
  local?: LocalCommand;
  decision?: RouteDecision;
  /** Sent to a replica outside a transaction as a whole: a 25006 refusal may re-run it on the primary. */
  retryable?: boolean;
  /** Re-run after a replica refused it (the reason: rerun-25006, rerun-settings): the primary, whatever the router says. */
  forcePrimary?: 'rerun-25006' | 'rerun-settings';
  /** Restores the client's statement registry as it was before this unit was sent (for a re-run). */
  registryUndo?: Array<() => void>;
  /** A replica this unit failed on: its re-run goes elsewhere. */
  avoid?: NodeEntry;
  /** performance.now() when it was sent (for the duration histogram). */
  sentAt: number;
  /** Binds a named portal: a cursor the client may use after a later write, so it never runs on a replica inside a movable transaction. */
  namedPortal: boolean;
  /** Statements that open the session's transaction on the unit's server before it (BEGIN, then replayed ones). */
  txOpen: string[] | undefined;
  /** The replica the transaction leaves for the primary with this unit (see TaggedTransaction). */
  txMoveFrom: ServerLink | undefined;
  /** The unit begins a transaction (its first statement, this BEGIN) that may move off a replica later. */
  txBegin: string | undefined;
  /**
   * The replica chosen for this read has not been seen to replay this position (the session's floor) yet:
   * a guard goes ahead of the unit there (see RequestWriter.guard). Set per attempt, read once by send.
   */
  guardLsn: bigint | undefined;
  /**
   * Guards ahead of this unit that failed (the replica was behind, so the unit did not run); past
   * MAX_GUARD_TRIES its next attempt waits for the replica instead (see server-attach's mayGuard).
   */
  guardFailures: number;
  /**
   * A unit that only opens a transaction (a BEGIN alone, or a deferred one's SET LOCAL: see server-attach's
   * opensOnly) went to a replica not seen to replay this position (the session's floor) yet: the
   * transaction records it for its reads (TaggedTransaction.floorLsn). Set per attempt, read by send.
   */
  txFloorLsn: bigint | undefined;
  /**
   * A read of a replica transaction whose floor is pending, on a replica not known to have replayed it:
   * the session waits for it before sending the unit (see awaitTransactionFloor). Set by the chooser per choice.
   */
  floorWait: bigint | undefined;
  /** How that wait ended: the next choice of the unit follows the replica ('replayed') or moves the transaction to the primary ('missed'). */
  floorWaited: 'replayed' | 'missed' | undefined;
}

/** A unit with every field present from the start, so all units share one object shape (hot path). */
export function unit(kind: UnitKind, frames: Frame[], complete: boolean, queries: string[], bytes: number, local?: LocalCommand): Unit {
  return {
    kind, frames, complete, queries, bytes, local, decision: undefined, retryable: undefined, forcePrimary: undefined, registryUndo: undefined,
    avoid: undefined, sentAt: 0, namedPortal: false, txOpen: undefined, txMoveFrom: undefined, txBegin: undefined, guardLsn: undefined,
    guardFailures: 0, txFloorLsn: undefined, floorWait: undefined, floorWaited: undefined,
  };
}
