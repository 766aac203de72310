import { errors, type PgsplitError } from '../errors.js';
import type { LocalFrame } from './extended-local.js';
import { parseLsn } from '../monitor/lsn.js';
import { parseDurationMs } from '../router/route-hint.js';

/**
 * Statements pgsplit answers itself, without a server: SET / RESET / SHOW of its session settings
 * (`pgsplit.route`, `pgsplit.max_lag`, `pgsplit.after`) and `SHOW pgsplit.lsn`. Only a query string
 * holding exactly one such statement is answered locally. Values are checked here, so that the
 * session only ever applies valid ones.
 */
export type LocalCommand =
  | { kind: 'set'; name: string; value: string }
  /** RESET, or SET ... TO DEFAULT (`viaSet`: answered with the tag SET, as PostgreSQL does). */
  | { kind: 'reset'; name: string; value: null; viaSet?: boolean }
  | { kind: 'show'; name: string }
  | { kind: 'error'; error: PgsplitError }
  | { kind: 'ready' }
  /** Extended-protocol messages about pgsplit's own statements (see extended-local.ts); `sync`: ends with Sync. */
  | { kind: 'extended'; frames: LocalFrame[]; sync: boolean };

/** pgsplit's session settings: SET / RESET / SHOW work on these (lsn is SHOW only). */
export const LOCAL_SETTINGS = ['route', 'max_lag', 'after', 'lsn'];

const SET_RE = /^set\s+(?:session\s+)?pgsplit\.([a-z_]+)\s*(?:=|\bto\b)\s*('(?:[^']|'')*'|[a-z0-9_./]+)\s*;?$/i;
const RESET_RE = /^reset\s+pgsplit\.([a-z_]+)\s*;?$/i;
const SHOW_RE = /^show\s+pgsplit\.([a-z_]+)\s*;?$/i;
const QUICK = /^(set|reset|show)\s/i;
/** A SET/RESET of a pgsplit setting anywhere in a string (after a statement boundary or at its start). */
const ANY_LOCAL_SET = /(?:^|;)\s*(?:set|reset)\s+(?:(?:session|local)\s+)?pgsplit\./i;

export const ROUTE_VALUES = ['replica', 'primary'];

/**
 * The text without the comments and white space around it (ORMs and sqlcommenter put comments before or
 * after a statement); comments inside it are kept, and such a text is then not pgsplit's own.
 */
export function stripOuterComments(sql: string): string {
  let a = 0;
  let b = sql.length;
  for (;;) {
    while (a < b && /\s/.test(sql[a] as string)) a++;
    if (sql.startsWith('--', a)) {
      const nl = sql.indexOf('\n', a);
      a = nl < 0 ? b : nl + 1;
    } else if (sql.startsWith('/*', a)) {
      // Block comments nest in PostgreSQL.
      let depth = 0;
      let i = a;
      while (i < b) {
        if (sql.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith('*/', i)) {
          depth--;
          i += 2;
          if (depth === 0) break;
        } else i++;
      }
      if (depth !== 0) return sql.slice(a, b);
      a = i;
    } else break;
  }
  for (;;) {
    while (b > a && /\s/.test(sql[b - 1] as string)) b--;
    // One statement terminator among the trailing comments (the patterns take it as optional).
    if (sql[b - 1] === ';' && !sql.slice(a, b - 1).includes(';')) {
      b--;
      continue;
    }
    if (sql.endsWith('*/', b) && b - a >= 4) {
      const open = sql.lastIndexOf('/*', b - 2);
      // Only a trailing comment that does not close a nested one and is not inside a string.
      if (open < a || sql.slice(open + 2, b - 2).includes('/*') || sql.slice(open + 2, b - 2).includes("'")) break;
      b = open;
    } else {
      // A trailing -- comment: the last line starts one outside quotes.
      const nl = sql.lastIndexOf('\n', b - 1);
      const line = sql.slice(nl + 1, b);
      const dash = line.indexOf('--');
      if (dash < 0 || line.slice(0, dash).split("'").length % 2 === 0) break;
      b = nl + 1 + dash;
    }
  }
  return sql.slice(a, b);
}

export function parseLocalCommand(sql: string): LocalCommand | null {
  if (!/pgsplit\./i.test(sql)) return null;
  const text = stripOuterComments(sql);
  if (!QUICK.test(text)) return misplaced(text);
  let m = SHOW_RE.exec(text);
  if (m) return { kind: 'show', name: (m[1] as string).toLowerCase() };
  m = RESET_RE.exec(text);
  if (m) return { kind: 'reset', name: (m[1] as string).toLowerCase(), value: null };
  m = SET_RE.exec(text);
  if (!m) return misplaced(text);
  const name = (m[1] as string).toLowerCase();
  let raw = m[2] as string;
  if (raw.startsWith("'")) raw = raw.slice(1, -1).replace(/''/g, "'");
  return checkSetting(name, raw);
}

/**
 * A SET/RESET of a pgsplit setting that is not a statement of its own (SET LOCAL, or with other
 * statements in one string): the server would take it as a placeholder and nothing would be tagged, so
 * it is refused, saying how to write it.
 */
function misplaced(text: string): LocalCommand | null {
  if (!ANY_LOCAL_SET.test(text)) return null;
  return { kind: 'error', error: errors.localCommandAlone() };
}

/** A SET of pgsplit.`name` to `raw` (unquoted), checked: the command to apply, or the error to answer. */
export function checkSetting(name: string, raw: string): LocalCommand {
  if (raw.toLowerCase() === 'default') return { kind: 'reset', name, value: null, viaSet: true };
  if (!LOCAL_SETTINGS.includes(name)) return { kind: 'error', error: errors.unknownSetting(`pgsplit.${name}`) };
  if (name === 'route' && !ROUTE_VALUES.includes(raw.toLowerCase())) {
    return { kind: 'error', error: errors.settingInvalid('pgsplit.route', raw, "'replica', 'primary', DEFAULT") };
  }
  if (name === 'max_lag') {
    const ms = parseDurationMs(raw);
    if (ms === undefined || ms < 0) return { kind: 'error', error: errors.settingInvalid('pgsplit.max_lag', raw, "a duration such as '500ms', '2s' or a number of milliseconds, DEFAULT") };
  }
  if (name === 'after' && parseLsn(raw) === null) {
    return { kind: 'error', error: errors.settingInvalid('pgsplit.after', raw, "a WAL position as SHOW pgsplit.lsn prints it, such as '0/16B3748', DEFAULT") };
  }
  if (name === 'lsn') return { kind: 'error', error: errors.settingReadOnly('pgsplit.lsn') };
  return { kind: 'set', name, value: raw };
}
