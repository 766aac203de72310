/**
 * Routing hints written in SQL comments.
 *
 * Two spellings are understood:
 * - pgsplit's own: a comment whose text starts with `pgsplit:`, then `key=value` pairs separated by commas
 *   and/or whitespace: `/* pgsplit:route=replica *\/`, `/* pgsplit:route=replica,max_lag=500ms *\/`,
 *   `-- pgsplit:route=primary after=0/16B3748`. Values may be quoted with '...' or "...".
 * - sqlcommenter (https://google.github.io/sqlcommenter/), as ORMs emit it: `key='url-encoded value'`
 *   pairs separated by commas, among other keys: `/*pgsplit_route='replica',pgsplit_max_lag='500ms'*\/`.
 *
 * Keys: `route` (`replica` | `primary`), `max_lag` (a duration: `500ms`, `2s`, `1.5s`, `1min`, `1h`, or a
 * bare number of milliseconds), `after` (an LSN such as `0/16B3748`: read only from a server that has
 * replayed it).
 *
 * Only comments before the first token or after the last token of the query string count, so a hint can
 * be prepended or appended to a query without parsing it. A malformed pgsplit hint (unknown key, bad value,
 * bad URL encoding) is described in `malformed` and otherwise ignored; comments that are not pgsplit hints
 * are ignored silently. When hints conflict the stricter one wins: `primary` over `replica`, the smaller
 * `max_lag`, the later `after` LSN (each conflict is also noted in `malformed`).
 */
import { formatLsn, parseLsn } from '../monitor/lsn.js';
import type { Comment } from './sql-lexer.js';

export interface RouteHints {
  route?: 'replica' | 'primary';
  maxLagMs?: number;
  /** LSN like 0/16B3748, normalised to upper-case hex without leading zeros. */
  after?: string;
  /** Descriptions of malformed pgsplit hints, which were ignored. */
  malformed: string[];
}

/**
 * Reads the hints of a query string from its comments (as `lexSql` returns them).
 * `firstTokenStart` / `lastTokenEnd` bound the query's tokens; for a query without tokens pass
 * `sqlLength` and 0, which makes every comment count.
 */
export function parseRouteHints(
  comments: Comment[],
  sqlLength: number,
  firstTokenStart: number,
  lastTokenEnd: number,
): RouteHints {
  const hints: RouteHints = { malformed: [] };
  if (comments.length === 0) return hints;
  const first = Math.min(firstTokenStart, sqlLength);
  for (const c of comments) {
    if (!c.terminated) continue;
    if (c.end > first && c.start < lastTokenEnd) continue; // neither leading nor trailing
    const body = c.body;
    // Cheap filter: every hint mentions pgsplit.
    if (!body.includes('pgsplit') && !/pgsplit/i.test(body)) continue;
    const trimmed = body.trim();
    if (/^pgsplit:/i.test(trimmed)) parseNative(trimmed.slice('pgsplit:'.length), hints);
    else parseSqlCommenter(trimmed, hints);
  }
  return hints;
}

function parseNative(s: string, hints: RouteHints): void {
  const n = s.length;
  let i = 0;
  let any = false;
  const isSep = (c: string | undefined) => c === ',' || c === ' ' || c === '\t' || c === '\n' || c === '\r';
  while (i < n) {
    while (i < n && isSep(s[i])) i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && /[A-Za-z0-9_.-]/.test(s[i]!)) i++;
    const key = s.slice(keyStart, i);
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
    if (key === '' || s[i] !== '=') {
      // Skip the rest of this item.
      const itemStart = keyStart;
      while (i < n && !isSep(s[i])) i++;
      hints.malformed.push(`pgsplit hint: expected key=value, got ${JSON.stringify(s.slice(itemStart, Math.max(i, itemStart + 1)))}`);
      any = true;
      continue;
    }
    i++; // '='
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
    let value: string;
    const q = s[i];
    if (q === "'" || q === '"') {
      const close = s.indexOf(q, i + 1);
      if (close < 0) {
        hints.malformed.push(`pgsplit hint: unterminated quoted value for ${key}`);
        return;
      }
      value = s.slice(i + 1, close);
      i = close + 1;
    } else {
      const vStart = i;
      while (i < n && !isSep(s[i])) i++;
      value = s.slice(vStart, i);
    }
    applyHint(key.toLowerCase(), value, hints);
    any = true;
  }
  if (!any) hints.malformed.push('pgsplit hint: no key=value pairs');
}

/** sqlcommenter: key='value' pairs, comma separated; keys and values URL-encoded; `\'` escapes a quote. */
function parseSqlCommenter(s: string, hints: RouteHints): void {
  const n = s.length;
  let i = 0;
  while (i < n) {
    while (i < n && (s[i] === ',' || s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
    if (i >= n) break;
    const eq = s.indexOf('=', i);
    if (eq < 0) return; // not sqlcommenter
    const rawKey = s.slice(i, eq).trim();
    i = eq + 1;
    while (i < n && s[i] === ' ') i++;
    let rawValue: string;
    if (s[i] === "'") {
      let j = i + 1;
      let v = '';
      let closed = false;
      while (j < n) {
        const ch = s[j]!;
        if (ch === '\\' && j + 1 < n) {
          v += s[j + 1];
          j += 2;
          continue;
        }
        if (ch === "'") {
          closed = true;
          j++;
          break;
        }
        v += ch;
        j++;
      }
      rawValue = v;
      i = j;
      if (!closed) {
        if (isPgsplitKey(rawKey)) hints.malformed.push(`sqlcommenter: unterminated value for ${rawKey}`);
        return;
      }
    } else {
      const j = s.indexOf(',', i);
      rawValue = s.slice(i, j < 0 ? n : j).trim();
      i = j < 0 ? n : j;
    }
    let key: string;
    try {
      key = decodeURIComponent(rawKey);
    } catch {
      if (isPgsplitKey(rawKey)) hints.malformed.push(`sqlcommenter: bad URL encoding in key ${JSON.stringify(rawKey)}`);
      continue;
    }
    if (!isPgsplitKey(key)) continue;
    let value: string;
    try {
      value = decodeURIComponent(rawValue);
    } catch {
      hints.malformed.push(`sqlcommenter: bad URL encoding in value of ${key}`);
      continue;
    }
    applyHint(key.slice('pgsplit_'.length).toLowerCase(), value, hints);
  }
}

function isPgsplitKey(key: string): boolean {
  return key.length > 8 && key.slice(0, 8).toLowerCase() === 'pgsplit_';
}

function applyHint(key: string, value: string, hints: RouteHints): void {
  switch (key) {
    case 'route': {
      const v = value.trim().toLowerCase();
      if (v !== 'replica' && v !== 'primary') {
        hints.malformed.push(`pgsplit hint: route must be replica or primary, got ${JSON.stringify(value)}`);
        return;
      }
      if (hints.route !== undefined && hints.route !== v) {
        hints.malformed.push('pgsplit hint: conflicting route hints, primary wins');
        hints.route = 'primary';
        return;
      }
      hints.route = v;
      return;
    }
    case 'max_lag': {
      const ms = parseDurationMs(value);
      if (ms === undefined) {
        hints.malformed.push(`pgsplit hint: max_lag must be a duration like 500ms, 2s, 1min, got ${JSON.stringify(value)}`);
        return;
      }
      if (hints.maxLagMs !== undefined && hints.maxLagMs !== ms) {
        hints.malformed.push('pgsplit hint: conflicting max_lag hints, the smallest wins');
        hints.maxLagMs = Math.min(hints.maxLagMs, ms);
        return;
      }
      hints.maxLagMs = ms;
      return;
    }
    case 'after': {
      const lsn = parseLsn(value);
      if (lsn === null) {
        hints.malformed.push(`pgsplit hint: after must be an LSN like 0/16B3748, got ${JSON.stringify(value)}`);
        return;
      }
      const text = formatLsn(lsn);
      if (hints.after !== undefined && hints.after !== text) {
        hints.malformed.push('pgsplit hint: conflicting after hints, the latest LSN wins');
        const prev = parseLsn(hints.after);
        if (prev !== null && prev >= lsn) return;
      }
      hints.after = text;
      return;
    }
    default:
      hints.malformed.push(`pgsplit hint: unknown key ${JSON.stringify(key)}`);
  }
}

const DURATION_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000 };

/** '500ms', '2s', '1.5s', '1min', '1h', '250us', bare number = milliseconds. Undefined when invalid. */
export function parseDurationMs(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$/.exec(value);
  if (!m) return undefined;
  const num = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const factor = unit === '' ? 1 : DURATION_UNITS[unit];
  if (factor === undefined || !Number.isFinite(num)) return undefined;
  return num * factor;
}

