/**
 * The wait of a replica transaction's first read for the session's floor: a BEGIN alone opened the
 * transaction on a replica that had not been seen to replay the session's writes (it did not wait, as it
 * reads nothing: see BehindFloor), and its first read needs them. Module-level function taking the session:
 * no object or closure per session.
 */
import type { NodeEntry } from '../server/server-nodes.js';
import type { Session } from './session.js';
import type { Unit } from './unit.js';

/**
 * Waits (up to routing.read_your_writes_timeout) for `node`, the transaction's replica, to replay `floor`
 * before `u`, the head of the session's queue, is chosen again: nothing else is sent meanwhile (as while a
 * server is attached). Then the choice follows the replica, or moves the transaction to the primary when
 * the replica did not replay it in time (see TargetChooser.choose, u.floorWaited).
 */
export function awaitTransactionFloor(session: Session, u: Unit, node: NodeEntry, floor: bigint): void {
  session.connecting = true;
  const done = (replayed: boolean): void => {
    session.connecting = false;
    u.floorWaited = replayed ? 'replayed' : 'missed';
    const tx = session.tx;
    // The replica has it: the transaction's later reads owe nothing more.
    if (replayed && tx !== null && tx.floorLsn !== null && tx.floorLsn <= floor) tx.floorLsn = null;
    if (!replayed) session.log.debug({ node: node.endpoint.name }, 'replica transaction\'s first read: the replica did not replay the session\'s writes in time; the transaction moves to the primary');
    if (session.state === 'ready') session.pump();
  };
  session.ctx.monitor.waitForReplay(node, floor, session.ctx.readYourWritesTimeoutMs).then(done, () => done(false));
}
