import {
  bindComplete, closeComplete, commandComplete, dataRow, errorFor, noData, parameterDescription, parseComplete, readyForQuery, rowDescription,
} from '../codec/backend-messages.js';
import { Frontend } from '../codec/message-types.js';
import { PgsplitError, errors } from '../errors.js';
import { formatLsn, parseLsn } from '../monitor/lsn.js';
import { parseDurationMs } from '../router/route-hint.js';
import type { RouteDecision } from '../router/router.js';
import type { LocalFrame } from './extended-local.js';
import { matchesAnyGlob } from './glob.js';
import { checkSetting, type LocalCommand } from './local-command.js';
import { LocalSettingsUndo, savepointName } from './local-settings-undo.js';
import { commits } from './statement-effects.js';

/** What LocalAnswers needs of the proxy around the session (the session's context satisfies it). */
export interface LocalAnswersContext {
  /** routing.max_lag, ms: what SHOW pgsplit.max_lag shows while the session has not set its own. Read live (a reload changes it). */
  readonly maxLagMs: number;
  /** Asked for the primary's WAL position (SHOW pgsplit.lsn). */
  readonly monitor: { primaryLsnNow(): Promise<bigint> };
}

/** How the session started, which decides its tag until (and after) SET / RESET pgsplit.route. */
export interface LocalAnswersStartup {
  /** pgsplit.* settings of the startup `options` (see splitStartupOptions), name without the prefix. */
  options: Readonly<Record<string, string>>;
  applicationName: string;
  /** routing.application_names: globs whose sessions are tagged. */
  tagApplicationNames: readonly string[];
  /** routing.default. */
  defaultRoute: 'primary' | 'replica';
}

/** What to write to the client for one statement pgsplit answers itself. */
export interface LocalAnswer {
  /** The backend messages, in order, as a server would send them. */
  bytes: Buffer;
  /** The SQLSTATE of each ErrorResponse in `bytes` (the session counts them). */
  errors: readonly string[];
  /**
   * An extended-protocol error with no Sync after it in this run: as a server does, the session drops the
   * client's messages up to its next Sync (and answers that Sync).
   */
  skipToSync: boolean;
}

type TxStatus = 'I' | 'T' | 'E';

/** pgsplit's own session settings, as one value (see LocalSettingsUndo). */
interface LocalValues {
  tagged: boolean;
  tagSource: string;
  maxLagMs: number | null;
  afterLsn: bigint | null;
}

const NO_ERRORS: readonly string[] = [];

/**
 * pgsplit's own session settings (pgsplit.route, max_lag, after) and the answers to the statements about
 * them (SET / RESET / SHOW pgsplit.*, SHOW pgsplit.lsn), in either protocol, without a server. Kept apart
 * from the session so that the session only routes with the values and writes the answers; the values
 * are plain fields because the session reads them for every unit it routes.
 */
export class LocalAnswers {
  /** Reads may go to replicas. Written only here (SET/RESET pgsplit.route, rollback undo). */
  tagged: boolean;
  /** Why the session is tagged or not: 'startup-option', 'application_name', 'default' or 'set'. */
  tagSource: string;
  /** SET pgsplit.max_lag (ms); null = routing.max_lag. */
  maxLagMs: number | null = null;
  /** SET pgsplit.after: a position handed over from another session; replicas must have replayed it. */
  afterLsn: bigint | null = null;
  /** A pgsplit setting in the startup options that is unknown or has a bad value: the connection is refused with it. */
  readonly startupError: PgsplitError | null = null;

  private readonly ctx: LocalAnswersContext;
  /** The tag the session started with (RESET pgsplit.route returns to it). */
  private readonly startupTag: { tagged: boolean; source: string };
  /** pgsplit.* values as they were when the transaction began and at each savepoint (see LocalSettingsUndo). */
  private readonly undo = new LocalSettingsUndo<LocalValues>();

  constructor(ctx: LocalAnswersContext, startup: LocalAnswersStartup) {
    this.ctx = ctx;
    // pgsplit settings given at startup (options=-c pgsplit.NAME=VALUE) are checked like a SET: a mistake
    // refuses the connection (see Session.start) instead of leaving the session silently untagged.
    let startupError: PgsplitError | null = null;
    for (const [name, raw] of Object.entries(startup.options)) {
      const cmd = checkSetting(name, raw);
      if (cmd.kind === 'error') startupError ??= cmd.error;
      else if (cmd.kind === 'set' && name === 'max_lag') this.maxLagMs = parseDurationMs(cmd.value) ?? null;
      else if (cmd.kind === 'set' && name === 'after') this.afterLsn = parseLsn(cmd.value);
    }
    this.startupError = startupError;
    const route = startup.options.route?.toLowerCase();
    if (route === 'replica' || route === 'primary') {
      this.tagged = route === 'replica';
      this.tagSource = 'startup-option';
    } else if (startup.applicationName && matchesAnyGlob(startup.applicationName, startup.tagApplicationNames)) {
      this.tagged = true;
      this.tagSource = 'application_name';
    } else {
      this.tagged = startup.defaultRoute === 'replica';
      this.tagSource = 'default';
    }
    this.startupTag = { tagged: this.tagged, source: this.tagSource };
  }

  /** Whether answering `cmd` needs the primary's position first (SHOW pgsplit.lsn, see primaryLsn). */
  needsLsn(cmd: LocalCommand): boolean {
    return cmd.kind === 'show' ? cmd.name === 'lsn'
      : cmd.kind === 'extended' && cmd.frames.some((f) => f.frame.type === Frontend.Execute && f.cmd?.kind === 'show' && f.cmd.name === 'lsn');
  }

  /**
   * SHOW pgsplit.lsn: the primary's WAL position now, which covers every write this session (or anyone)
   * has seen complete. Another session given it with SET pgsplit.after (or an after= hint) reads only
   * from replicas that have replayed that far. Asked before the answer is built, in either protocol;
   * never rejects (the error is the answer).
   */
  async primaryLsn(): Promise<bigint | PgsplitError> {
    try {
      return await this.ctx.monitor.primaryLsnNow();
    } catch (e) {
      return errors.primaryLsnUnknown((e as Error).message);
    }
  }

  /**
   * Applies `cmd` and builds its answer. `txStatus` is the session's transaction status (it goes into
   * ReadyForQuery, and a failed transaction refuses everything with 25P02); `lsn` is primaryLsn's result
   * when needsLsn(cmd).
   */
  answer(cmd: LocalCommand, txStatus: TxStatus, lsn?: bigint | PgsplitError): LocalAnswer {
    if (cmd.kind === 'ready') return { bytes: readyForQuery(txStatus), errors: NO_ERRORS, skipToSync: false };
    if (cmd.kind === 'extended') return this.answerExtended(cmd.frames, txStatus, lsn);
    const rfq = readyForQuery(txStatus);
    const r = this.apply(cmd, txStatus, lsn);
    if (r instanceof PgsplitError) return { bytes: Buffer.concat([errorFor(r), rfq]), errors: [r.sqlState], skipToSync: false };
    if (r.show !== undefined) {
      return { bytes: Buffer.concat([rowDescription([r.show.column]), dataRow([r.show.value]), commandComplete('SHOW'), rfq]), errors: NO_ERRORS, skipToSync: false };
    }
    return { bytes: Buffer.concat([commandComplete(r.tag), rfq]), errors: NO_ERRORS, skipToSync: false };
  }

  /** A transaction began that the session answered itself (a deferred BEGIN): a rollback returns to the values now. */
  transactionBegan(): void {
    this.undo.began(this.values());
  }

  /** A transaction the session answered itself ended (COMMIT / ROLLBACK of a deferred one). */
  transactionEnded(committed: boolean): void {
    this.restore(this.undo.ended(committed));
  }

  /**
   * Keeps pgsplit's own settings transactional, once a unit's ReadyForQuery arrived: snapshots at BEGIN
   * and SAVEPOINT, restored on rollback. `before` and `status` are the transaction status before and
   * after the unit, `ok` that it ran without error; `carried` and `d` are its classified statements.
   */
  trackUndo(before: TxStatus, status: TxStatus, ok: boolean, carried: readonly RouteDecision[] | undefined, d: RouteDecision | undefined): void {
    if (before === 'I' && status !== 'I') this.undo.began(this.values());
    if (this.undo.inTransaction && ok) {
      if (carried !== undefined) for (const dd of carried) this.savepoints(dd);
      if (d !== undefined) this.savepoints(d);
    }
    if (before !== 'I' && status === 'I') {
      // Committed only when it ended without error by a COMMIT (a COMMIT of a failed transaction rolls back).
      const committed = ok && before === 'T' && ((carried !== undefined && carried.some(commits)) || (d !== undefined && commits(d)));
      this.restore(this.undo.ended(committed));
    }
  }

  /** SAVEPOINT / RELEASE / ROLLBACK TO among a decision's statements, in order. */
  private savepoints(d: RouteDecision): void {
    for (const c of d.classifications) {
      for (const s of c.statements) {
        const name = s.transaction === 'savepoint' || s.transaction === 'release' || s.transaction === 'rollback-to' ? savepointName(s.text) : null;
        if (name === null) continue;
        if (s.transaction === 'savepoint') this.undo.savepoint(name, this.values());
        else if (s.transaction === 'release') this.undo.release(name);
        else this.restore(this.undo.rollbackTo(name));
      }
    }
  }

  private values(): LocalValues {
    return { tagged: this.tagged, tagSource: this.tagSource, maxLagMs: this.maxLagMs, afterLsn: this.afterLsn };
  }

  private restore(v: LocalValues | null): void {
    if (v === null) return;
    this.tagged = v.tagged;
    this.tagSource = v.tagSource;
    this.maxLagMs = v.maxLagMs;
    this.afterLsn = v.afterLsn;
  }

  /**
   * Parse, Bind, Describe, Execute, Close and Sync of pgsplit's own statements (see LocalStatements),
   * answered as a server answers them. After an error the rest is skipped up to the client's Sync.
   */
  private answerExtended(frames: readonly LocalFrame[], txStatus: TxStatus, lsn: bigint | PgsplitError | undefined): LocalAnswer {
    const out: Buffer[] = [];
    const codes: string[] = [];
    let failed = false;
    const fail = (e: PgsplitError): void => {
      codes.push(e.sqlState);
      out.push(errorFor(e));
      failed = true;
    };
    for (const { frame: f, cmd } of frames) {
      if (f.type === Frontend.Sync) {
        out.push(readyForQuery(txStatus));
        failed = false;
        continue;
      }
      if (failed || f.type === Frontend.Flush) continue;
      if (txStatus === 'E') {
        fail(errors.inFailedTransaction());
        continue;
      }
      if (f.type === Frontend.Parse) out.push(parseComplete());
      else if (f.type === Frontend.Bind) out.push(bindComplete());
      else if (f.type === Frontend.Close) out.push(closeComplete());
      else if (f.type === Frontend.Describe) {
        if (f.payload[0] === 0x53) out.push(parameterDescription());
        out.push(cmd?.kind === 'show' ? rowDescription([`pgsplit.${cmd.name}`]) : noData());
      } else if (f.type === Frontend.Execute) {
        const r = cmd === undefined ? errors.internal('a pgsplit portal without its statement')
          : cmd.kind === 'set' || cmd.kind === 'reset' || cmd.kind === 'show' || cmd.kind === 'error' ? this.apply(cmd, txStatus, lsn) : errors.internal('not a pgsplit statement');
        if (r instanceof PgsplitError) fail(r);
        else if (r.show !== undefined) out.push(dataRow([r.show.value]), commandComplete('SHOW'));
        else out.push(commandComplete(r.tag));
      }
    }
    // An error with no Sync in this run: the server-side rule is to skip everything up to it.
    return { bytes: Buffer.concat(out), errors: codes, skipToSync: failed };
  }

  /** Applies SET / RESET / SHOW of a pgsplit setting: the command tag (and the value SHOW shows), or the error. */
  private apply(cmd: Extract<LocalCommand, { kind: 'set' | 'reset' | 'show' | 'error' }>, txStatus: TxStatus, lsn: bigint | PgsplitError | undefined): PgsplitError | { tag: string; show?: { column: string; value: string } } {
    if (txStatus === 'E') return errors.inFailedTransaction();
    if (cmd.kind === 'error') return cmd.error;
    if (cmd.kind === 'show') {
      if (cmd.name === 'lsn') {
        if (lsn === undefined) return errors.internal('SHOW pgsplit.lsn answered before the primary was asked');
        return lsn instanceof PgsplitError ? lsn : { tag: 'SHOW', show: { column: 'pgsplit.lsn', value: formatLsn(lsn) } };
      }
      const value = this.setting(cmd.name);
      if (value === null) return errors.unknownSetting(`pgsplit.${cmd.name}`);
      return { tag: 'SHOW', show: { column: `pgsplit.${cmd.name}`, value } };
    }
    const tag = cmd.kind === 'set' || cmd.viaSet === true ? 'SET' : 'RESET';
    if (cmd.name === 'max_lag') this.maxLagMs = cmd.value === null ? null : (parseDurationMs(cmd.value) ?? null);
    else if (cmd.name === 'after') this.afterLsn = cmd.value === null ? null : parseLsn(cmd.value);
    else if (cmd.name === 'route') {
      // RESET returns to the session's value at startup (its options, application_name or the default),
      // as PostgreSQL's RESET does.
      this.tagged = cmd.value === null ? this.startupTag.tagged : cmd.value.toLowerCase() === 'replica';
      this.tagSource = cmd.value === null ? this.startupTag.source : 'set';
    } else return errors.unknownSetting(`pgsplit.${cmd.name}`);
    return { tag };
  }

  /** The value SHOW pgsplit.`name` shows, or null for a name that is not a setting. */
  private setting(name: string): string | null {
    if (name === 'route') return this.tagged ? 'replica' : 'primary';
    if (name === 'max_lag') return `${this.maxLagMs ?? this.ctx.maxLagMs}ms`;
    if (name === 'after') return this.afterLsn === null ? '' : formatLsn(this.afterLsn);
    return null;
  }
}
