import { errors, type PgsplitError } from '../errors.js';

/**
 * Statements pgsplit answers itself, without a server: `SET pgsplit.route = ...`, `RESET pgsplit.route`,
 * `SHOW pgsplit.route`. Only a query string holding exactly one such statement is answered locally.
 */
export type LocalCommand =
  | { kind: 'set'; name: string; value: string }
  | { kind: 'reset'; name: string; value: null }
  | { kind: 'show'; name: string }
  | { kind: 'error'; error: PgsplitError }
  | { kind: 'ready' };

const SET_RE = /^\s*set\s+(?:session\s+)?pgsplit\.([a-z_]+)\s*(?:=|\bto\b)\s*('(?:[^']|'')*'|[a-z_]+)\s*;?\s*$/i;
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
  return { kind: 'set', name, value: raw };
}
