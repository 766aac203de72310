/**
 * What a session does when a server fails or leaves: a startup refused, a unit that could not be sent
 * anywhere, a replica the monitor took out of rotation or a reload removed, a connection lost (a read
 * runs elsewhere; what holds the client's state ends the session with a clear error).
 * Module-level functions taking the session: no object or closure per session.
 */
import { errorFor, errorResponse, readyForQuery } from '../codec/backend-messages.js';
import { PgsplitError, SqlState, errors } from '../errors.js';
import { ServerStartupError } from '../server/server-connection.js';
import type { NodeEntry } from '../server/server-nodes.js';
import type { ServerLink } from './server-link.js';
import type { Session } from './session.js';
import type { Unit } from './unit.js';
import { detach } from './server-attach.js';

export function failStartup(session: Session, e: unknown): void {
  const code = e instanceof ServerStartupError ? e.fields.C ?? SqlState.connectionException : e instanceof PgsplitError ? e.sqlState : SqlState.internalError;
  session.ctx.events.error(code);
  // A server refusing pgsplit's own login is the operator's to fix (error); one refusing the client (no such database) is the client's (info).
  const level = e instanceof PgsplitError && e.code === 'SERVER_LOGIN_FAILED' ? 'error' : e instanceof ServerStartupError ? 'info' : 'warn';
  session.log[level]({ client: `${session.client.remoteAddress ?? ''}:${session.client.remotePort ?? 0}`, user: session.user, database: session.database, code,
    err: e instanceof Error ? e.message : String(e) }, 'client rejected during startup');
  if (e instanceof ServerStartupError) {
    session.client.end(e.raw);
  } else if (e instanceof PgsplitError) {
    session.client.end(errorFor(new PgsplitError(e.code, e.sqlState, e.message, { severity: 'FATAL', hint: e.hint })));
  } else {
    session.client.end(errorFor(errors.internal(String(e))));
  }
  session.close();
}

/**
 * The monitor took a replica out of rotation (refused, failed or stopped answering its checks). An
 * idle link to it is let go; a read waiting on it runs elsewhere if nothing of it reached the client;
 * anything else on it fails with a clear error (a frozen server would otherwise hang the client).
 */
export function serverDown(session: Session, node: NodeEntry, reason: string): void {
  if (session.state === 'closed') return;
  const link = session.binding.linkTo(node);
  if (!link) return;
  if (node.role === 'primary') {
    // An idle link to a primary the monitor finds down (frozen, gone) would take the next write and
    // hold it for as long as the server stays so; let it go, so that the write connects afresh and
    // fails within the down-server connect bound (see server-attach.ts, connect). A link with state the
    // client relies on (transaction, batch, COPY, a pin such as LISTEN or a temporary table) stays.
    if (!link.tracker.busy && !session.binding.holdsState(link) && session.pinned === null) detach(session, link, true);
    return;
  }
  if (!link.tracker.busy && !session.binding.holdsState(link)) {
    detach(session, link, true);
    return;
  }
  // A read whose answer is held can run elsewhere. Anything else is left alone while its server still
  // sends (a check can time out on a replica that is only slow); if it has sent nothing for a check
  // timeout, it is treated as lost.
  const quietMs = performance.now() - link.lastDataAt;
  const limit = session.ctx.monitorTimeoutMs;
  if (link.held !== null || quietMs >= limit) {
    onServerLost(session, link, `out of rotation: ${reason}`);
    return;
  }
  setTimeout(() => {
    if (session.binding.holds(link) && link.tracker.busy && performance.now() - link.lastDataAt >= limit) {
      onServerLost(session, link, `out of rotation, and silent for ${limit} ms: ${reason}`);
    }
  }, limit - quietMs + 10).unref();
}

/**
 * A reload removed this replica: an idle link to it is let go now (politely: the server is fine); one
 * running a statement or holding a transaction, batch or COPY is let go when that ends (the relay's
 * `answered`: Session.answered).
 * The next read goes to another replica, after raising the floor (monotonic reads).
 */
export function retire(session: Session, node: NodeEntry): void {
  if (session.state === 'closed') return;
  const link = session.binding.linkTo(node);
  if (link) letGoIfRetired(session, link);
}

export function letGoIfRetired(session: Session, link: ServerLink): void {
  if (link.node.retiring && !link.tracker.busy && !session.binding.holdsState(link)) detach(session, link);
}

/**
 * A server connection ended or failed. A replica is checked again at once (one lost backend says little
 * about the server). A read held on it runs elsewhere; an idle link is let go; a link holding a
 * transaction, a batch, a COPY or a streaming answer ends the session with the server's own FATAL when
 * it sent one (`serverError`), else 08006.
 */
export function onServerLost(session: Session, link: ServerLink, why: string, serverError?: Buffer): void {
  if (!session.binding.holds(link) || session.state === 'closed') return;
  if (session.terminating) {
    // The end the client asked for (see Session.pump, Terminate): it has had all the server sent.
    detach(session, link);
    session.leave();
    return;
  }
  // pgsplit's own question about the session (captureSession) is not the client's: losing it loses nothing.
  const inFlight = link.tracker.queue.some((e) => e.capture === undefined);
  const holds = session.binding.holdsState(link);
  session.log.warn({ node: link.name, why, inFlight, holdsState: holds }, 'server connection lost');
  if (link.node.role === 'replica') session.ctx.monitor.recheck(link.node);
  if (link.node.role === 'replica' && inFlight && !holds && session.txStatus === 'I' && session.relay.retryElsewhere(link)) {
    // The read is back at the front of the queue, to run elsewhere.
    detach(session, link, true);
    session.pump();
    return;
  }
  const asked = link.tracker.busy;
  detach(session, link, true);
  if (!inFlight && !holds) {
    if (asked && session.state === 'ready') session.pump();
    return;
  }
  if (link.fatalForwarded) {
    // The client has the server's own FATAL (a protocol violation during COPY, a terminated backend).
    if (!session.client.destroyed) session.client.end();
    session.close();
    return;
  }
  if (serverError !== undefined && !session.client.destroyed) {
    session.client.end(serverError);
    session.close();
    return;
  }
  session.fatal(errors.serverLost(link.name, why));
}

/** A unit that could not be sent anywhere: tell the client, keeping the protocol in step. */
export function failUnit(session: Session, u: Unit, e: unknown): void {
  // The session goes on, so a server's FATAL startup error (bad password in a URL, ...) becomes an ERROR.
  const err = e instanceof ServerStartupError
    ? errorResponse({ severity: 'ERROR', code: e.fields.C ?? SqlState.connectionException, message: e.fields.M ?? e.message, detail: e.fields.D, hint: e.fields.H })
    : errorFor(e instanceof PgsplitError ? asError(e) : errors.internal(String(e)));
  session.log[e instanceof PgsplitError && e.code === 'SERVER_LOGIN_FAILED' ? 'error' : 'warn']({ err: e instanceof Error ? e.message : String(e) }, 'could not run statement');
  session.ctx.events.error(e instanceof ServerStartupError ? e.fields.C ?? SqlState.connectionException : e instanceof PgsplitError ? e.sqlState : SqlState.internalError);
  if (u.kind === 'extended' && !u.complete) {
    session.client.write(err);
    session.input.discardUntilSync();
    return;
  }
  session.client.write(Buffer.concat([err, readyForQuery(session.txStatus)]));
}

/** The same error with severity ERROR: the session survives it. */
function asError(e: PgsplitError): PgsplitError {
  return e.severity === 'ERROR' ? e : new PgsplitError(e.code, e.sqlState, e.message, { detail: e.detail, hint: e.hint });
}
