import type { NodeEntry } from '../server/server-nodes.js';
import type { ServerLink } from './server-link.js';
import type { Unit } from './unit.js';

/**
 * A COPY ... FROM unit sent whose server has not yet said whether COPY FROM STDIN started: only COPY data
 * goes on until it does, as the server reads what follows the COPY as part of its data. A unit ending in
 * Sync is settled by its ReadyForQuery at the latest; an unsynced one (sent with a Flush) when each of its
 * `executes` Execute messages has ended.
 */
export interface CopyPending {
  link: ServerLink;
  unit: Unit;
  executes: number;
}

/** Why a session keeps a server connection (see Binding.reasons). */
export type BindingReason = 'transaction' | 'open-batch' | 'copy' | 'copy-pending' | 'last' | 'replica';

/**
 * Which server connections a session holds, and why: the one place that says what binds a session to a
 * server. A link is attached (the session may send to it) until released; while attached it may also be
 * the link of the session's transaction, of an extended batch not yet synced, of a COPY running or about
 * to start, the link the last unit went to, or the session's replica. Releasing a link drops every reason
 * at once, so none can outlive the connection.
 *
 * The replica is a node, counted in `node.sessions` (the replica choice balances on it) from the moment it
 * becomes the session's replica until its link is released.
 */
/** What `attached()` iterates while nothing was ever attached (never written to). */
const NO_LINKS: ReadonlyMap<NodeEntry, ServerLink> = new Map();

export class Binding {
  /**
   * By node: a replica replaced by a reload may share its name with the one in service. Made when the
   * first link is attached: an idle client that never ran anything would carry an empty Map (~200 bytes).
   */
  private map: Map<NodeEntry, ServerLink> | null = null;
  /** The link the session's transaction runs on (the server's last ReadyForQuery said T or E). */
  tx: ServerLink | null = null;
  /** An extended batch not yet ended by Sync (or a server skipping to the client's Sync after an error). */
  openBatch: ServerLink | null = null;
  /** A COPY runs here (CopyIn, CopyOut or CopyBoth started, not yet ended). */
  copy: ServerLink | null = null;
  /** A COPY ... FROM sent, not yet started or refused (see CopyPending). */
  copyPending: CopyPending | null = null;
  /** Where the last unit went: COPY data with no COPY running, and units with no statement, follow it. */
  last: ServerLink | null = null;
  private replicaNode: NodeEntry | null = null;

  /** The session's replica: the node its reads stay on while it meets their requirement. */
  get replica(): NodeEntry | null {
    return this.replicaNode;
  }

  /** The attached link to the session's replica, if any. */
  get replicaLink(): ServerLink | undefined {
    return this.replicaNode !== null ? this.map?.get(this.replicaNode) : undefined;
  }

  /** Every attached link (a live view: releasing the current one while iterating is safe). */
  attached(): IterableIterator<ServerLink> {
    return (this.map ?? NO_LINKS).values();
  }

  /**
   * Where the next unit runs depends on answers still to come (`txStatus`: the session's): a COMMIT or
   * ROLLBACK in flight, or a failed ('E') transaction on a replica whose statements in flight may repair it
   * (ROLLBACK TO SAVEPOINT): a write chosen on the 'E' would follow the replica instead of moving the
   * transaction, and fail there (25006).
   */
  placeAwaitsAnswers(txStatus: 'I' | 'T' | 'E'): boolean {
    const tx = this.tx;
    if (txStatus === 'E' && tx !== null && tx.node.role === 'replica' && tx.tracker.busy && this.openBatch === null) return true;
    if (this.map === null) return false;
    for (const l of this.map.values()) {
      for (const e of l.tracker.queue) if (e.endsTx) return true;
    }
    return false;
  }

  /** No link is attached. */
  get empty(): boolean {
    return this.map === null || this.map.size === 0;
  }

  /** The attached link to `node`, if any. */
  linkTo(node: NodeEntry): ServerLink | undefined {
    return this.map?.get(node);
  }

  /** Whether `link` is attached (not released, and not replaced by another link to its node). */
  holds(link: ServerLink): boolean {
    return this.map?.get(link.node) === link;
  }

  /** Whether some link to `node` is attached. */
  hasNode(node: NodeEntry): boolean {
    return this.map?.has(node) === true;
  }

  attach(link: ServerLink): void {
    (this.map ??= new Map()).set(link.node, link);
  }

  /**
   * Makes `node` the session's replica, counted in its `sessions`. The previous replica's link is the
   * caller's to release first (Session.connectReplica): its count drops when it is released. A previous
   * replica whose link was not released (busy) keeps its count until then: Session never attaches a new
   * server while a link is busy, so that does not happen today.
   */
  bindReplica(node: NodeEntry): void {
    if (this.replicaNode === node) return;
    // A replica kept with no link (see release, keepReplica) stops counting when another takes its place.
    if (this.replicaNode !== null && !this.hasNode(this.replicaNode)) this.replicaNode.sessions--;
    this.replicaNode = node;
    node.sessions++;
  }

  /** The session ends: a replica kept with no link (see release, keepReplica) stops counting. */
  forgetReplica(): void {
    if (this.replicaNode !== null && !this.hasNode(this.replicaNode)) {
      this.replicaNode.sessions--;
      this.replicaNode = null;
    }
  }

  /** The link carries state the client relies on: a transaction, an open extended batch, a COPY. */
  holdsState(link: ServerLink): boolean {
    return this.tx === link || this.openBatch === link || this.copy === link;
  }

  /** Everything that binds the session to `link` now (for tests and logs; the hot paths read the fields). */
  reasons(link: ServerLink): BindingReason[] {
    const out: BindingReason[] = [];
    if (this.tx === link) out.push('transaction');
    if (this.openBatch === link) out.push('open-batch');
    if (this.copy === link) out.push('copy');
    if (this.copyPending?.link === link) out.push('copy-pending');
    if (this.last === link) out.push('last');
    if (this.replicaNode === link.node) out.push('replica');
    return out;
  }

  /**
   * Lets `link` go from the session: detached, and no longer the reason for anything. Null when it was
   * not attached (already released, or replaced); else whether it was the session's replica (its node's
   * count has dropped: the next replica may be behind it). With `keepReplica` (pool.mode transaction
   * giving an idle connection back) its node stays the session's replica, counted, with no link: the
   * next read borrows a connection there and reads no older data than this one did.
   */
  release(link: ServerLink, keepReplica = false): { wasReplica: boolean } | null {
    if (this.map?.get(link.node) !== link) return null;
    this.map.delete(link.node);
    let wasReplica = false;
    if (this.replicaNode === link.node && !keepReplica) {
      this.replicaNode = null;
      link.node.sessions--;
      wasReplica = true;
    }
    if (this.tx === link) this.tx = null;
    if (this.last === link) this.last = null;
    if (this.copy === link) this.copy = null;
    if (this.openBatch === link) this.openBatch = null;
    if (this.copyPending?.link === link) this.copyPending = null;
    return { wasReplica };
  }
}
