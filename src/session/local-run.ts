/**
 * Statements pgsplit answers itself (SET / RESET / SHOW pgsplit.*, SHOW pgsplit.lsn), in a session's
 * stream: answered at once, after the primary's WAL position, or behind an unsynced batch through a
 * probe; after an error in its own extended messages the session skips to the client's Sync as a server
 * does. Module-level functions taking the session: no object or closure per session.
 */
import { readyForQuery } from '../codec/backend-messages.js';
import type { LocalAnswer } from './local-answers.js';
import type { LocalCommand } from './local-command.js';
import type { ServerLink } from './server-link.js';
import { writeToServer } from './server-writes.js';
import type { Session } from './session.js';

/**
 * Runs a statement pgsplit answers itself. False when the answer comes later (SHOW pgsplit.lsn asks the
 * primary): the units behind it wait until it is written.
 */
export function runLocal(session: Session, cmd: LocalCommand): boolean {
  if (session.local.needsLsn(cmd)) {
    session.connecting = true;
    void session.local.primaryLsn().then((lsn) => {
      session.connecting = false;
      if (session.state === 'closed') return;
      writeLocalAnswer(session, session.local.answer(cmd, session.txStatus, lsn));
      if (session.state === 'ready') session.pump();
    });
    return false;
  }
  writeLocalAnswer(session, session.local.answer(cmd, session.txStatus));
  return true;
}

/** Writes what LocalAnswers built; after an extended-protocol error, skips to the client's Sync as a server does. */
function writeLocalAnswer(session: Session, a: LocalAnswer): void {
  for (const code of a.errors) session.ctx.events.error(code);
  session.client.write(a.bytes);
  if (a.skipToSync) skipToClientSync(session);
}

/**
 * After an error in pgsplit's own extended messages, as a server does: everything up to the client's
 * next Sync is dropped, and that Sync is answered with ReadyForQuery.
 */
export function skipToClientSync(session: Session): void {
  if (session.input.skipToSync()) session.client.write(readyForQuery(session.txStatus));
}

/**
 * A statement pgsplit answers itself, behind `link`'s unsynced batch: a probe and an empty Query go in
 * its place, and it is answered when the server has answered them (see request-writer.ts, EMPTY_QUERY).
 */
export function sendLocalProbe(session: Session, link: ServerLink, cmd: LocalCommand): void {
  const bytes = session.writer.localProbe(link, cmd);
  // The empty Query ends the batch: an error before it skips it, not what follows.
  session.binding.openBatch = null;
  session.awaitingProbe = true;
  writeToServer(session, link, bytes);
}
