/**
 * What a unit's statements do to the session, by their classification: end its transaction, commit it,
 * change its settings, start a COPY FROM, or carry effects an unsynced batch must keep until its answer
 * (the session's books and what it writes to servers use them; so do pgsplit's own settings, LocalAnswers).
 * Each test is a module-level predicate: nothing is allocated per unit.
 */
import type { RouteDecision } from '../router/router.js';
import type { QueryClassification, StatementInfo } from '../router/statement-classifier.js';

/** True when a unit ends the transaction it runs in, so the next unit's server depends on its outcome. */
export function endsTransaction(classifications: readonly QueryClassification[]): boolean {
  return someStatement(classifications, isTransactionEnd);
}

/** A statement after which the session's settings are read back from its server (see Session.settingsFrom). */
export function changesSettings(s: StatementInfo): boolean {
  if (s.replicaSafe) return false;
  if (s.discard === true || s.reason === 'load' || s.reason === 'set-from-current') return true;
  if (s.setting !== undefined) return !s.setting.local;
  return SET_CONFIG.test(s.text);
}
const SET_CONFIG = /\bset_config\b/i;
/** The parameter a set_config call names with a literal (a custom one, such as app.tenant_id, is then asked for). */
export const SET_CONFIG_NAME = /\bset_config\s*\(\s*'((?:[^']|'')*)'/gi;
const isTransactionEnd = (s: StatementInfo): boolean => (s.transaction === 'commit' || s.transaction === 'rollback' || s.transaction === 'prepare-transaction') && !s.chain;
const isEffect = (s: StatementInfo): boolean => s.setting !== undefined || s.discard === true || s.transaction === 'commit' || s.transaction === 'rollback';

/** Whether any statement of the classified queries passes `test` (a module-level predicate: no closure per call). */
function someStatement(classifications: readonly QueryClassification[], test: (s: StatementInfo) => boolean): boolean {
  for (const c of classifications) for (const s of c.statements) if (test(s)) return true;
  return false;
}

/**
 * The unit holds a COPY ... FROM, so its server may start COPY FROM STDIN. In an unsynced batch the
 * statement must name STDIN (a COPY from a file there is not worth holding the session for).
 */
export function startsCopyFrom(classifications: readonly QueryClassification[], complete: boolean): boolean {
  return someStatement(classifications, complete ? copyFrom : copyFromStdin);
}
const copyFrom = (s: StatementInfo): boolean => s.reason === 'copy-from';
const copyFromStdin = (s: StatementInfo): boolean => s.reason === 'copy-from' && /\bfrom\s+stdin\b/i.test(s.text);

/**
 * Whether every statement of the classified queries is a plain read (there is at least one): no
 * transaction control, setting or DISCARD, which would act differently inside the transaction a guard
 * ahead of them opens (see RequestWriter.guard).
 */
export function onlyReads(classifications: readonly QueryClassification[]): boolean {
  let reads = 0;
  for (const c of classifications) {
    for (const s of c.statements) {
      if (s.kind !== 'read' || s.transaction !== undefined || s.setting !== undefined || s.discard === true) return false;
      reads++;
    }
  }
  return reads > 0;
}

/** Whether the statements of a decision change session settings or end a transaction. */
export function hasEffects(d: RouteDecision): boolean {
  return someStatement(d.classifications, isEffect);
}

const isCommit = (s: StatementInfo): boolean => s.transaction === 'commit' || s.transaction === 'prepare-transaction';

/** A decision whose statements end the transaction by committing it (COMMIT, PREPARE TRANSACTION). */
export function commits(d: RouteDecision): boolean {
  return someStatement(d.classifications, isCommit);
}
