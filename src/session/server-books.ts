/**
 * The session's books on what servers answer (ResponseRelay takes the answers to the client): the end
 * of a unit (transaction status, the settings it changed, DISCARD, a tagged transaction's replay), an
 * error, a COPY starting or ending, a ParameterStatus, and the answers to what pgsplit sent itself.
 * Module-level functions taking the session: no object or closure per session, nothing allocated per message.
 */
import type { Frame } from '../codec/frame-reader.js';
import { readParameterStatus } from '../codec/message-fields.js';
import { Backend } from '../codec/message-types.js';
import { SqlState } from '../errors.js';
import type { RouteDecision } from '../router/router.js';
import { needsReplay, statementsOf } from '../router/transaction-statements.js';
import { runLocal, skipToClientSync } from './local-run.js';
import type { Expect, ServerLink } from './server-link.js';
import type { Session } from './session.js';
import { SET_CONFIG_NAME, changesSettings } from './statement-effects.js';

const NO_DECISIONS: readonly RouteDecision[] = [];

/**
 * The session's books on a server message the client gets (see RelaySession.observe): the end of a
 * unit, an error, a COPY starting or ending, a ParameterStatus. True when it may free waiting units.
 */
export function observe(session: Session, link: ServerLink, f: Frame, errorCode: string | undefined): boolean {
  const t = f.type;
  if (t === Backend.ParameterStatus || t === Backend.ReadyForQuery) link.hold.observe?.(t, f.payload);
  const cp = session.binding.copyPending;
  let freed = false;
  if (cp !== null && cp.link === link && cp.executes > 0 &&
    (t === Backend.CommandComplete || t === Backend.EmptyQueryResponse || t === Backend.PortalSuspended) && --cp.executes === 0) {
    // Every Execute of the unsynced COPY unit ended without starting COPY FROM STDIN.
    session.binding.copyPending = null;
    freed = true;
  }
  switch (t) {
    case Backend.ErrorResponse:
      session.ctx.events.error(errorCode ?? SqlState.internalError);
      afterError(session, link);
      // An error may free what waits (behind a COPY, a probe).
      return true;
    case Backend.ReadyForQuery: {
      // A Parse or Close still expected here was skipped by the server (it followed an error).
      const done = link.tracker.readyForQuery();
      if (session.binding.copyPending !== null && done !== undefined && done.unit === session.binding.copyPending.unit) session.binding.copyPending = null;
      afterUnit(session, link, done, (f.payload[0] ?? 0x49) as number);
      return true;
    }
    case Backend.CopyInResponse:
      session.binding.copy = link;
      if (session.binding.copyPending?.link === link) session.binding.copyPending = null;
      startCopyIn(session, link);
      // COPY data waiting behind the COPY statement may go now.
      return true;
    case Backend.CopyOutResponse:
    case Backend.CopyBothResponse:
      session.binding.copy = link;
      return freed;
    case Backend.CommandComplete:
      copyEnded(session, link);
      return freed;
    case Backend.ParameterStatus:
      noteParameter(session, ...readParameterStatus(f.payload));
      return freed;
    default:
      return freed;
  }
}

/**
 * The ReadyForQuery of something pgsplit sent itself (see RelaySession.ownQueryAnswered): the empty
 * Query in place of a statement pgsplit answers (answered now, behind the batch's answer), the Sync
 * ending a replica's batch (a failed one skips the client's messages up to its own Sync), an internal query.
 */
export function ownQueryAnswered(session: Session, link: ServerLink, head: Expect, status: number): void {
  if (head.local !== undefined) {
    afterUnit(session, link, head, status);
    session.awaitingProbe = false;
    runLocal(session, head.local);
  } else if (head.endsReplicaBatch === true) {
    afterUnit(session, link, head, status);
    session.awaitingInternal = false;
    if (head.failed === true) skipToClientSync(session);
  }
  if (head.capture !== undefined) {
    head.capture(null);
    if (head.position !== true) session.awaitingInternal = false;
  }
}

/**
 * COPY FROM STDIN started on `link`: the Syncs the client sent inside the COPY get no answer (see
 * ProtocolTracker.copyInStarted); if one was among them, the batch stays open until the client's next Sync.
 */
function startCopyIn(session: Session, link: ServerLink): void {
  if (link.tracker.copyInStarted()) session.binding.openBatch = link;
}

/** A COPY on `link` (if any) is over: it completed, failed, or its statement's answer ended. */
function copyEnded(session: Session, link: ServerLink): void {
  if (session.binding.copy === link) session.binding.copy = null;
  link.tracker.copyEnded();
}

/**
 * An ErrorResponse: the tracker drops what the server will not run now (see ProtocolTracker.error). When
 * the server skips to a Sync the client has not sent yet, the batch is open until it comes.
 */
function afterError(session: Session, link: ServerLink): void {
  copyEnded(session, link);
  const skipsToSync = link.tracker.error();
  const head = link.tracker.head;
  const pending = session.binding.copyPending;
  // The COPY that was to start failed (its unit's own error, or one before it in its batch).
  if (pending !== null && pending.link === link && (pending.executes > 0 || head === undefined || head.unit === pending.unit)) session.binding.copyPending = null;
  if (skipsToSync) session.binding.openBatch = link;
}

/** A statement set (or reset) `name` on `link`: asked for from now on when custom; who the session is, when an identity. */
function noteSettingName(session: Session, name: string, link: ServerLink): void {
  session.settings.noteName(name);
  const n = name.toLowerCase();
  if (n === 'role' || n === 'session_authorization') {
    session.identityChanged = true;
    link.hold.left?.('identity');
  }
}

export function noteParameter(session: Session, name: string, value: string): void {
  if (name === 'client_encoding') session.clientEncoding = value;
  else if (name === 'standard_conforming_strings') session.standardConformingStrings = value !== 'off';
}

/** Bookkeeping when a unit's ReadyForQuery arrives: transaction status and the unit's effects. */
function afterUnit(session: Session, link: ServerLink, done: Expect | undefined, statusByte: number): void {
  const before = session.txStatus;
  const status = statusByte === 0x54 ? 'T' : statusByte === 0x45 ? 'E' : 'I';
  session.txStatus = status;
  session.binding.tx = status === 'I' ? null : link;
  if (status === 'I') session.tx = null;
  // This ReadyForQuery came in the chunk being relayed, whose arrival time the relay just noted.
  const now = link.lastDataAt;
  session.consistency.answered(link.node.role, now);
  copyEnded(session, link);
  const unit = done?.unit;
  if (unit && unit.sentAt > 0) session.ctx.events.unitDone(link.name, now - unit.sentAt);
  const ok = done?.failed !== true;
  // This answer ends the unsynced pieces sent before it too (their SET, DISCARD, ...).
  for (const d of done?.carried ?? NO_DECISIONS) unitEffects(session, link, d, ok);
  if (unit?.decision) unitEffects(session, link, unit.decision, ok);
  session.local.trackUndo(before, status, ok, done?.carried, unit?.decision);
  const tx = session.tx;
  if (tx !== null && ok && status === 'T' && unit?.decision && link === session.binding.tx && link.node.role === 'replica') {
    // What the primary must run too if the transaction moves there (see TargetChooser.mustLeaveReplica: a unit with
    // such a statement holds only that one, so having run is certain).
    for (const s of statementsOf(unit.decision.classifications)) {
      if (s.chain) tx.replay.length = 0;
      else if (needsReplay(s)) tx.replay.push(s.text);
    }
  }
}

/**
 * The effects of one routed piece whose answer came (`ok`: without error): a statement that may change
 * the session's settings marks them to be read back from `link` (see Session.settingsFrom), whether it failed
 * or ran in a transaction that ends later: the server's values once it is idle say what holds. DISCARD
 * ALL also deallocates the statements prepared on `link`.
 */
function unitEffects(session: Session, link: ServerLink, d: RouteDecision, ok: boolean): void {
  for (const c of d.classifications) {
    for (const s of c.statements) {
      if (s.reason === 'create' || s.reason === 'alter' || s.reason === 'drop') session.sequences.invalidate();
      if (changesSettings(s)) {
        if (s.setting !== undefined) noteSettingName(session, s.setting.name, link);
        for (const m of s.text.matchAll(SET_CONFIG_NAME)) noteSettingName(session, (m[1] ?? '').replace(/''/g, "'"), link);
        if (s.reason === 'load') link.hold.left?.('load');
        if (ok && s.reason === 'load') session.settings.noteLoad(s.text);
        link.settingsTouched = true;
        session.settingsFrom = link;
        // The default isolation may be among them: asked again with them, before the next replica read.
        session.isolation = null;
      }
      if (ok && s.discard && s.reason === 'discard') {
        session.writer.forgetStatements();
        link.prepared.clear();
      }
    }
  }
}
