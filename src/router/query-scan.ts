/**
 * The rules for queries (SELECT, VALUES, TABLE, WITH and their parenthesised forms): the scan of a token
 * range for anything that makes it unsafe on a replica (locking clauses, INTO, DML, writing or unknown
 * function calls), and the session-pinning calls (advisory locks, setseed) any statement may hold.
 */
import type { Token } from './sql-lexer.js';
import { isWritingFunction, SESSION_PINNING_FUNCTIONS, unknownFunctionCall } from './function-policy.js';
import { statementText, type ClassifierContext } from './classifier-context.js';
import type { PinReason, StatementInfo, StatementKind } from './statement-info.js';

/** First keyword-like token after any leading `(`, or undefined. */
export function firstWordAfterParens(toks: Token[], from: number, to: number): Token | undefined {
  let k = from;
  while (k < to && toks[k]!.isPunct('(')) k++;
  const t = toks[k];
  return k < to && t && t.kind === 'keyword_or_ident' ? t : undefined;
}

export function isQueryStart(t: Token | undefined): boolean {
  return t !== undefined && (t.is('select') || t.is('values') || t.is('table') || t.is('with'));
}

interface ScanResult {
  /** First reason the range is not replica-safe, or undefined. */
  violation: string | undefined;
  violationKind: StatementKind;
  pin: PinReason | undefined;
}

/**
 * Scans tokens [from, to) of a query for anything that makes it unsafe. `isWith`: a DML keyword at the
 * range's top level is the main statement of a WITH. `checkCalls` false: `name(` is not looked up as a
 * function (COPY options such as FORCE_QUOTE (a)); writing-function names still count.
 */
export function scanQuery(toks: Token[], from: number, to: number, ctx: ClassifierContext, isWith: boolean, checkCalls = true): ScanResult {
  let violation: string | undefined;
  let violationKind: StatementKind = 'write';
  let pin: PinReason | undefined;
  let unknownFn: string | undefined;
  const lookup = checkCalls ? ctx.lookup : null;
  const base = toks[from]?.depth ?? 0;
  const note = (reason: string, kind: StatementKind = 'write'): void => {
    if (violation === undefined) {
      violation = reason;
      violationKind = kind;
    }
  };
  for (let k = from; k < to; k++) {
    const t = toks[k]!;
    if (t.kind === 'keyword_or_ident' || t.kind === 'quoted_ident') {
      const next = k + 1 < to ? toks[k + 1] : undefined;
      if (next !== undefined && isCall(toks, k, to)) {
        const name = t.kind === 'quoted_ident' ? t.text.toLowerCase() : t.text;
        pin ??= SESSION_PINNING_FUNCTIONS.get(name);
        if (isWritingFunction(name, ctx)) {
          note(`writing-function:${name}`);
        } else if (lookup !== null && unknownFn === undefined) {
          unknownFn = unknownFunctionCall(toks, k, next.isPunct('(') ? k + 1 : k + 3, from, to, lookup);
        }
      }
      if (t.kind === 'quoted_ident') continue;
      const len = t.end - t.start;
      if (len === 3) {
        if (t.is('for') && next !== undefined && isLockingStrength(toks, k + 1, to)) note('locking-clause');
      } else if (len === 4) {
        if (t.is('into')) {
          note('select-into');
          const n1 = next;
          if (n1 && (n1.is('temp') || n1.is('temporary') || n1.is('local') || n1.is('global'))) pin ??= 'temp-table';
        }
      } else if (len === 5 || len === 6) {
        if (t.is('insert') || t.is('update') || t.is('delete') || t.is('merge')) {
          const prev = k > 0 ? toks[k - 1] : undefined;
          if (prev?.isPunct('.') || next?.isPunct('.')) continue; // a qualified column or table name
          if (prev?.isPunct('(')) note('cte-dml');
          else if (isWith && t.depth === base) note(t.text);
          else note('dml-keyword');
        }
      }
    } else if (t.kind === 'punct' && t.isPunct(';')) {
      note('nested-semicolon', 'unknown');
    }
  }
  // Reported only when nothing more definite was found, so that a write keeps its own reason.
  if (unknownFn !== undefined) note(`unknown-function:${unknownFn}`, 'unknown');
  return { violation, violationKind, pin };
}

/**
 * True when the name token at `k` is followed by `(`: directly, or after `UESCAPE 'c'` for a U&"..."
 * identifier (the server reads `U&"..." UESCAPE 'c'` as one identifier).
 */
function isCall(toks: Token[], k: number, to: number): boolean {
  const next = k + 1 < to ? toks[k + 1] : undefined;
  if (next === undefined) return false;
  if (next.isPunct('(')) return true;
  const t = toks[k]!;
  if (t.kind === 'quoted_ident' && t.style === 'unicode' && next.is('uescape')) {
    return k + 3 < to && toks[k + 2]!.kind === 'string' && toks[k + 3]!.isPunct('(');
  }
  return false;
}

/** FOR followed by UPDATE | SHARE | NO KEY UPDATE | KEY SHARE. */
function isLockingStrength(toks: Token[], k: number, to: number): boolean {
  const a = toks[k];
  if (!a || k >= to) return false;
  if (a.is('update') || a.is('share')) return true;
  const b = k + 1 < to ? toks[k + 1] : undefined;
  if (a.is('key')) return b !== undefined && b.is('share');
  if (a.is('no')) return b !== undefined && b.is('key') && k + 2 < to && toks[k + 2]!.is('update');
  return false;
}

export function classifyReadQuery(toks: Token[], from: number, to: number, ctx: ClassifierContext, reason: string, isWith: boolean): StatementInfo {
  const r = scanQuery(toks, from, to, ctx, isWith);
  const s: StatementInfo = {
    kind: r.violation === undefined ? 'read' : r.violationKind,
    replicaSafe: r.violation === undefined,
    reason: r.violation ?? reason,
    text: statementText(toks, ctx),
  };
  if (r.pin) s.pinsPrimary = r.pin;
  return s;
}

/** Adds the pin of a statement that calls a session-pinning function (advisory locks, setseed). */
export function withAdvisoryPin(s: StatementInfo, toks: Token[]): StatementInfo {
  if (s.pinsPrimary) return s;
  for (let k = 0; k + 1 < toks.length; k++) {
    const t = toks[k]!;
    if (t.kind === 'keyword_or_ident') {
      const len = t.end - t.start;
      if (len !== 7 && (len < 16 || len > 27)) continue; // lengths of the pinning function names
    } else if (t.kind !== 'quoted_ident') continue;
    if (!isCall(toks, k, toks.length)) continue;
    const name = t.kind === 'quoted_ident' ? t.text.toLowerCase() : t.text;
    const pin = SESSION_PINNING_FUNCTIONS.get(name);
    if (pin !== undefined) {
      s.pinsPrimary = pin;
      return s;
    }
  }
  return s;
}
