import { errors, type PgsplitError } from '../errors.js';
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
  | { kind: 'reset'; name: string; value: null }
  | { kind: 'show'; name: string }
  | { kind: 'error'; error: PgsplitError }
  | { kind: 'ready' };

const SET_RE = /^\s*set\s+(?:session\s+)?pgsplit\.([a-z_]+)\s*(?:=|\bto\b)\s*('(?:[^']|'')*'|[a-z0-9_./]+)\s*;?\s*$/i;
const RESET_RE = /^\s*reset\s+pgsplit\.([a-z_]+)\s*;?\s*$/i;
const SHOW_RE = /^\s*show\s+pgsplit\.([a-z_]+)\s*;?\s*$/i;
const QUICK = /^\s*(set|reset|show)\s/i;

export const ROUTE_VALUES = ['replica', 'primary'];

export function parseLocalCommand(sql: string): LocalCommand | null {
  if (!QUICK.test(sql) || !/pgsplit\./i.test(sql)) return null;
  let m = SHOW_RE.exec(sql);
  if (m) return { kind: 'show', name: (m[1] as string).toLowerCase() };
  m = RESET_RE.exec(sql);
  if (m) return { kind: 'reset', name: (m[1] as string).toLowerCase(), value: null };
  m = SET_RE.exec(sql);
  if (!m) return null;
  const name = (m[1] as string).toLowerCase();
  let raw = m[2] as string;
  if (raw.startsWith("'")) raw = raw.slice(1, -1).replace(/''/g, "'");
  if (raw.toLowerCase() === 'default') return { kind: 'reset', name, value: null };
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
