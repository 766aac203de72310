/**
 * The rules for statements that change the session rather than data: transaction control (BEGIN,
 * START TRANSACTION, COMMIT/END/ROLLBACK/ABORT [AND CHAIN]), SET / RESET and their setting effects, and
 * DECLARE (a cursor WITH HOLD pins the session to the primary).
 */
import type { Token } from './sql-lexer.js';
import { info, type ClassifierContext } from './classifier-context.js';
import type { SettingEffect, StatementInfo } from './statement-info.js';
import { withAdvisoryPin } from './query-scan.js';

/** BEGIN [WORK|TRANSACTION] [modes] / START TRANSACTION [modes]. */
export function classifyBegin(toks: Token[], ctx: ClassifierContext): StatementInfo {
  const t1 = toks[1];
  if (toks[0]!.is('start') && !t1?.is('transaction')) return info('unknown', 'unknown-statement', toks, ctx);
  let readOnly = false;
  let readWrite = false;
  for (let k = 1; k + 1 < toks.length; k++) {
    if (toks[k]!.is('read')) {
      const m = toks[k + 1]!;
      if (m.is('only')) readOnly = true;
      else if (m.is('write')) readWrite = true;
    }
  }
  const ro = readOnly && !readWrite;
  return info('transaction', 'begin', toks, ctx, { transaction: ro ? 'begin-read-only' : 'begin' });
}

/** COMMIT / END / ROLLBACK / ABORT [WORK|TRANSACTION] [AND [NO] CHAIN], ROLLBACK TO, COMMIT/ROLLBACK PREPARED. */
export function classifyEnd(toks: Token[], ctx: ClassifierContext): StatementInfo {
  const t0 = toks[0]!;
  const isRollback = t0.is('rollback') || t0.is('abort');
  let k = 1;
  if (toks[k]?.is('prepared')) {
    return info('write', isRollback ? 'rollback-prepared' : 'commit-prepared', toks, ctx);
  }
  if (toks[k]?.is('work') || toks[k]?.is('transaction')) k++;
  if (isRollback && toks[k]?.is('to')) {
    return info('transaction', 'rollback-to', toks, ctx, { transaction: 'rollback-to' });
  }
  const s = info('transaction', isRollback ? 'rollback' : 'commit', toks, ctx, { transaction: isRollback ? 'rollback' : 'commit' });
  if (toks[k]?.is('and') && toks[k + 1]?.is('chain')) s.chain = true;
  return s;
}

/** Value text of SET: items [from, to) separated by top-level commas. */
function settingValue(toks: Token[], from: number, to: number, ctx: ClassifierContext): string | null {
  if (from >= to) return null;
  if (to - from === 1 && toks[from]!.is('default')) return null;
  const base = toks[from]!.depth;
  const items: string[] = [];
  let itemStart = from;
  for (let k = from; k <= to; k++) {
    if (k === to || (toks[k]!.isPunct(',') && toks[k]!.depth === base)) {
      if (k > itemStart) items.push(itemText(toks, itemStart, k, ctx));
      itemStart = k + 1;
    }
  }
  return items.join(', ');
}

function itemText(toks: Token[], from: number, to: number, ctx: ClassifierContext): string {
  const t = toks[from]!;
  if (to - from === 1) {
    return t.text;
  }
  if (to - from === 2 && (t.isOperator('-') || t.isOperator('+')) && toks[from + 1]!.kind === 'number') {
    return (t.isOperator('-') ? '-' : '') + toks[from + 1]!.text;
  }
  return ctx.sql.slice(t.start, toks[to - 1]!.end);
}

function setting(name: string, value: string | null, local: boolean): SettingEffect {
  return { name, value, local };
}

/** SET [SESSION|LOCAL] ... */
export function classifySet(toks: Token[], ctx: ClassifierContext): StatementInfo {
  const n = toks.length;
  let k = 1;
  let local = false;
  if (toks[k]?.is('local')) {
    local = true;
    k++;
  } else if (toks[k]?.is('session') && !toks[k + 1]?.is('characteristics') && !toks[k + 1]?.is('authorization')) {
    k++;
  }
  const t = toks[k];
  if (!t) return info('session', 'set', toks, ctx);
  const session = (name: string, value: string | null): StatementInfo =>
    info('session', 'set', toks, ctx, { setting: setting(name, value, local) });

  if (t.is('transaction')) return info('transaction', 'set-transaction', toks, ctx);
  if (t.is('constraints')) return info('transaction', 'set-constraints', toks, ctx);
  if (t.is('session') && toks[k + 1]?.is('characteristics')) {
    // SET SESSION CHARACTERISTICS AS TRANSACTION modes
    const from = k + 4;
    const value = from < n ? ctx.sql.slice(toks[from]!.start, toks[n - 1]!.end) : null;
    return session('session_characteristics', value);
  }
  if (t.is('session') && toks[k + 1]?.is('authorization')) {
    return session('session_authorization', settingValue(toks, k + 2, n, ctx));
  }
  if (t.is('time') && toks[k + 1]?.is('zone')) {
    const v = toks[k + 2];
    if (n === k + 3 && v && (v.is('local') || v.is('default'))) return session('timezone', null);
    return session('timezone', settingValue(toks, k + 2, n, ctx));
  }
  if (t.is('names')) return session('client_encoding', settingValue(toks, k + 1, n, ctx));
  if (t.is('schema')) return session('search_path', settingValue(toks, k + 1, n, ctx));
  if (t.is('role')) return session('role', settingValue(toks, k + 1, n, ctx));
  if (t.is('xml') && toks[k + 1]?.is('option')) return session('xmloption', settingValue(toks, k + 2, n, ctx));

  // SET name {TO|=} value
  const dotted = readDottedName(toks, k, n);
  const name = dotted.name;
  k = dotted.end;
  if (name === '') return info('session', 'set', toks, ctx);
  const op = toks[k];
  if (op?.is('from') && toks[k + 1]?.is('current')) return info('session', 'set-from-current', toks, ctx);
  if (!op || !(op.is('to') || op.isOperator('='))) return info('session', 'set', toks, ctx);
  return session(name, settingValue(toks, k + 1, n, ctx));
}

/** RESET name | ALL | TIME ZONE | SESSION AUTHORIZATION | ROLE | TRANSACTION ISOLATION LEVEL. */
export function classifyReset(toks: Token[], ctx: ClassifierContext): StatementInfo {
  const n = toks.length;
  const t = toks[1];
  const reset = (name: string): StatementInfo => info('session', 'reset', toks, ctx, { setting: setting(name, null, false) });
  if (!t) return info('session', 'reset', toks, ctx);
  if (t.is('all') && n === 2) {
    return info('session', 'reset', toks, ctx, { setting: { name: 'all', value: null, local: false, all: true }, discard: true });
  }
  if (t.is('time') && toks[2]?.is('zone')) return reset('timezone');
  if (t.is('session') && toks[2]?.is('authorization')) return reset('session_authorization');
  if (t.is('transaction') && toks[2]?.is('isolation')) return reset('transaction_isolation');
  const { name, end: k } = readDottedName(toks, 1, n);
  if (name === '' || k !== n) return info('session', 'reset', toks, ctx);
  return reset(name);
}

/** DECLARE name [...] CURSOR [WITH HOLD | WITHOUT HOLD] FOR query. */
export function classifyDeclare(toks: Token[], ctx: ClassifierContext): StatementInfo {
  let hold = false;
  for (let k = 1; k < toks.length; k++) {
    const t = toks[k]!;
    if (t.is('for') && t.depth === 0) break;
    if (t.is('with') && toks[k + 1]?.is('hold')) hold = true;
  }
  const s = info('session', 'declare', toks, ctx);
  if (hold) s.pinsPrimary = 'cursor-with-hold';
  return withAdvisoryPin(s, toks);
}

/** A parameter name as SET and RESET write it (`work_mem`, `app.tenant_id`, `"my"."x"`) from toks[k], and where it ends. */
function readDottedName(toks: Token[], k: number, n: number): { name: string; end: number } {
  let name = '';
  while (k < n) {
    const p = toks[k]!;
    if (p.kind !== 'keyword_or_ident' && p.kind !== 'quoted_ident') break;
    name += p.text;
    k++;
    if (k < n && toks[k]!.isPunct('.')) {
      name += '.';
      k++;
    } else break;
  }
  return { name, end: k };
}
