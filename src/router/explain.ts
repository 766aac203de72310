/**
 * `pgsplit explain`: how the router would route a query string, or each statement of a psql script,
 * for a tagged session with healthy replicas.
 *
 * For a script, the session is approximated the way it behaves with the default routing.transactions
 * (replica-until-write): a plain BEGIN is answered by pgsplit ('tx-begin'), the transaction's reads run on
 * a replica ('tx-read') until its first statement that may write moves it to the primary ('tx-moved'),
 * where the rest runs ('transaction'); a repeatable read / serializable BEGIN runs on the primary with
 * everything after it until COMMIT/ROLLBACK; and once a statement pins the session
 * (LISTEN, a temporary table, a session-level advisory lock, ...) the rest goes to the primary
 * ('pinned:<why>'). `SET pgsplit.route` is not simulated: the session is assumed tagged throughout.
 */
import { lexSql, metaCommandStart, type Token } from './sql-lexer.js';
import type { Router } from './router.js';
import type { QueryClassification } from './statement-classifier.js';
import { isTransactionNeutral, movableIsolation, parseBeginModes } from './transaction-statements.js';

export type Route = 'primary' | 'replica';

export interface ExplainResult {
  route: Route;
  reason: string;
  classification: QueryClassification | undefined;
}

/** One query string, as a client would send it in one Query message. */
export function explainQuery(router: Router, sql: string): ExplainResult {
  const d = router.decide([sql], { tagged: true, pinned: null });
  return { route: d.target, reason: d.reason, classification: d.classifications[0] };
}

/** A statement of a psql script: its text as psql would send it, and the line its first token is on. */
export interface ScriptStatement {
  line: number;
  sql: string;
}

/** psql commands that send the query buffer (and so end a statement without `;`). */
const SEND_COMMANDS = new Set(['g', 'gx', 'gset', 'gexec', 'gdesc', 'crosstabview', 'watch', 'bind']);

/**
 * A line right after `COPY ... FROM stdin;` that is SQL rather than data: in scripts such as PostgreSQL's
 * regression suite, a COPY expected to fail has no data block.
 */
function looksLikeSql(line: string): boolean {
  const s = line.trim();
  if (s === '' || s.startsWith('--')) return true;
  return /^[A-Za-z_]+\s.*;\s*(--.*)?$/.test(s) || /^[A-Za-z_]+;$/.test(s);
}

function countNewlines(s: string, from: number, to: number): number {
  let n = 0;
  for (let k = from; k < to; k++) if (s.charCodeAt(k) === 10) n++;
  return n;
}

function isCopyFromStdin(toks: Token[]): boolean {
  if (!toks[0]?.is('copy')) return false;
  for (let k = 1; k + 1 < toks.length; k++) {
    if (toks[k]!.is('from') && toks[k]!.depth === 0 && (toks[k + 1]!.is('stdin') || toks[k + 1]!.is('stdout') || toks[k + 1]!.is('pstdin'))) return true;
  }
  return false;
}

/**
 * Splits a psql-style script into the statements psql would send: psql meta-commands (`\d`, `\set x 1`,
 * `\gset` at the end of a line, ...) are dropped, `\g`-like commands end the statement before them,
 * `\r` discards the buffer, `\;` separates statements, and the data lines after `COPY ... FROM stdin;`
 * (or `\copy ... from stdin`) up to `\.` are skipped. Statements are split with the SQL lexer, so `;`,
 * backslashes and line breaks inside strings, comments and dollar-quoted bodies stay where they are.
 * A statement without a final `;` at the end of the file is returned too (psql sends it).
 */
export function splitPsqlScript(text: string): ScriptStatement[] {
  const lines = text.split('\n');
  const out: ScriptStatement[] = [];
  let buf = ''; // text after the last complete statement
  let bufLine = 1; // line number of buf's first character
  let copyPending = 0; // COPY ... FROM stdin statements whose data block (if any) is still to come
  let inCopyData = false;

  /** Emits the complete statements at the start of buf and drops them (and their `;`) from it. */
  const emitComplete = (atEnd: boolean): void => {
    const lx = lexSql(buf);
    if (lx.unterminated && !atEnd) return;
    let consumed = 0;
    let chunkStart = 0;
    for (let i = 0; i < lx.statements.length; i++) {
      const st = lx.statements[i]!;
      const first = st[0]!;
      const last = st[st.length - 1]!;
      const limit = lx.statements[i + 1]?.[0]?.start ?? buf.length;
      const semi = findSemicolon(buf, last.end, limit, lx.comments);
      if (semi < 0 && !atEnd) break;
      const end = semi < 0 ? buf.length : semi;
      out.push({ line: bufLine + countNewlines(buf, 0, first.start), sql: buf.slice(chunkStart, end).trim() });
      if (isCopyFromStdin(st)) copyPending++;
      consumed = semi < 0 ? buf.length : semi + 1;
      chunkStart = consumed;
    }
    if (consumed > 0) {
      bufLine += countNewlines(buf, 0, consumed);
      buf = buf.slice(consumed);
    }
  };

  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const last = i === lines.length - 1;
    const nl = last ? '' : '\n';
    if (!inCopyData && copyPending > 0) {
      copyPending--;
      inCopyData = !looksLikeSql(line);
    }
    if (inCopyData) {
      if (line === '\\.') inCopyData = false;
      buf += nl; // keep line numbers
      continue;
    }
    // A backslash outside literals and comments starts a psql meta-command, which runs to the end of the line.
    let sqlPart = '';
    let rest = line;
    let copyAfter = 0;
    for (;;) {
      const base = buf + sqlPart;
      const at = metaCommandStart(base + rest, base.length);
      if (at < 0) {
        sqlPart += rest;
        break;
      }
      const q = at - base.length;
      sqlPart += rest.slice(0, q);
      const after = rest.slice(q + 1);
      if (after.startsWith(';')) {
        sqlPart += ';';
        rest = after.slice(1);
        continue;
      }
      const cmd = /^[A-Za-z]+/.exec(after)?.[0].toLowerCase() ?? '';
      if (SEND_COMMANDS.has(cmd)) sqlPart += ';';
      else if (cmd === 'r' || cmd === 'reset') {
        // \r empties the query buffer: what was typed is never sent.
        bufLine += countNewlines(buf, 0, buf.length);
        buf = '';
        sqlPart = '';
      } else if (cmd === 'copy' && /\bfrom\s+(stdin|stdout|pstdin)\b/i.test(after)) copyAfter++;
      break;
    }
    buf += sqlPart + nl;
    emitComplete(false);
    copyPending += copyAfter;
  }
  if (buf.trim() !== '') emitComplete(true);
  return out.filter((s) => s.sql !== '');
}

/** Offset of the first `;` in [from, to) that is not inside a comment, or -1. */
function findSemicolon(s: string, from: number, to: number, comments: readonly { start: number; end: number }[]): number {
  for (let k = from; k < to; k++) {
    if (s.charCodeAt(k) !== 59) continue;
    if (comments.some((c) => c.start <= k && k < c.end)) continue;
    return k;
  }
  return -1;
}

export interface ScriptRow {
  line: number;
  route: Route;
  reason: string;
  /** The statement's first 80 characters, whitespace collapsed, comments before it left out. */
  statement: string;
}

export interface ScriptSummary {
  statements: number;
  replica: number;
  primary: number;
}

/** First `max` characters of a statement for display: from its first token, whitespace runs collapsed. */
export function statementPreview(sql: string, max = 80): string {
  const lx = lexSql(sql);
  const first = lx.statements[0]?.[0];
  const body = (first ? sql.slice(first.start) : sql).replace(/\s+/g, ' ').trim();
  return body.length > max ? body.slice(0, max) : body;
}

/** Explains every statement of a psql script, in order, for one tagged session. */
export function explainScript(router: Router, script: string): { rows: ScriptRow[]; summary: ScriptSummary } {
  const rows: ScriptRow[] = [];
  let pinned: string | null = null;
  // The transaction: where it runs, or (routing.transactions: replica-until-write) 'movable' while a plain
  // READ COMMITTED BEGIN has only read, on a replica until its first statement that may write.
  let txRoute: Route | 'movable' | null = null;
  for (const st of splitPsqlScript(script)) {
    let route: Route;
    let reason: string;
    let c: QueryClassification | undefined;
    const d = router.decide([st.sql], { tagged: true, pinned });
    c = d.classifications[0];
    const first = c?.statements[0];
    if (txRoute === 'movable') {
      const neutral = c !== undefined && c.statements.every((s) => s.replicaSafe || isTransactionNeutral(s));
      if (d.target === 'replica' || (neutral && d.reason !== 'hint-primary' && !d.reason.startsWith('pinned:'))) {
        route = 'replica';
        reason = d.target === 'replica' ? 'tx-read' : 'transaction';
      } else {
        route = 'primary';
        reason = 'tx-moved';
        txRoute = 'primary';
      }
    } else if (txRoute !== null) {
      route = txRoute;
      reason = 'transaction';
    } else if (first?.transaction === 'begin' && c?.statements.length === 1 && d.reason === 'begin' && pinned === null) {
      const modes = parseBeginModes(first.text);
      const movable = modes !== null && modes.readOnly !== true && (modes.isolation === undefined || movableIsolation(modes.isolation));
      route = movable ? 'replica' : 'primary';
      reason = movable ? 'tx-begin' : 'begin';
      txRoute = movable ? 'movable' : 'primary';
    } else {
      route = d.target;
      reason = d.reason;
    }
    for (const s of c?.statements ?? []) {
      if (s.transaction === 'begin' || s.transaction === 'begin-read-only') txRoute ??= route;
      else if ((s.transaction === 'commit' || s.transaction === 'rollback' || s.transaction === 'prepare-transaction') && !s.chain) txRoute = null;
      if (s.pinsPrimary && pinned === null) pinned = s.pinsPrimary;
    }
    rows.push({ line: st.line, route, reason, statement: statementPreview(st.sql) });
  }
  const replica = rows.filter((r) => r.route === 'replica').length;
  return { rows, summary: { statements: rows.length, replica, primary: rows.length - replica } };
}
