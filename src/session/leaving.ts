/**
 * How a session leaves politely: at the client's Terminate (behind what it still waits for), or when it
 * is drained. Module-level functions taking the session: no object or closure per session.
 */
import { detach } from './server-attach.js';
import type { ServerLink } from './server-link.js';
import type { Session } from './session.js';

/**
 * The client's Terminate is the head of the queue (`batch`: the session's unsynced extended batch, if
 * any). Answers up to the last Sync or Query sent still come, and go to the client first; then the
 * session leaves.
 */
export function terminate(session: Session, batch: ServerLink | null): void {
  for (const l of session.binding.attached()) if (l.tracker.queue.some((e) => e.kind === 'sync')) return;
  if (batch === null && session.anyBusy()) return;
  session.input.shift();
  if (batch === null) {
    session.leave();
    return;
  }
  // An unsynced batch: the Terminate goes to its server, as on a direct connection. What the server
  // sends before it ends (answers a Flush asked for) still reaches the client; the server rolls the
  // batch's implicit transaction back. The session leaves when that server has closed.
  session.terminating = true;
  batch.conn.close();
  const timer = setTimeout(() => session.leave(), session.ctx.monitorTimeoutMs);
  timer.unref();
  batch.conn.socket.once('close', () => clearTimeout(timer));
}

/**
 * Ends the session politely (see Session.leave): every server link is closed with Terminate, and the
 * client takes what is still queued for it before its socket goes, with `last` after it; destroyed if it
 * does not within `destroyAfterMs` (null: no limit here, the caller has one).
 */
export function leave(session: Session, last: Buffer | undefined, destroyAfterMs: number | null): void {
  const client = session.client;
  if (!client.destroyed) {
    if (destroyAfterMs !== null) {
      const timer = setTimeout(() => client.destroy(), destroyAfterMs);
      timer.unref();
      client.once('close', () => clearTimeout(timer));
    }
    // Once all of it, the end included, is with the kernel, the socket need not wait for the client to
    // close its side: a client that does not read, or keeps its half open, would hold it (and a drain).
    client.once('finish', () => client.destroy());
    if (last !== undefined) client.end(last);
    else client.end();
  }
  session.state = 'closed';
  for (const l of session.binding.attached()) detach(session, l);
  session.binding.forgetReplica();
}
