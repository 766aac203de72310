/**
 * A conservative statement classifier: decides, from tokens alone, whether a query string can run on a
 * read replica, and which session effects (transaction control, SET/RESET, things only the primary
 * remembers) each of its statements has.
 *
 * The rule is one-sided: `replicaSafe` is true only for a statement that cannot write. Anything the
 * classifier does not recognise, or is unsure about, is not safe and goes to the primary.
 *
 * Replica-safe statements: SELECT, VALUES, TABLE, WITH whose CTE bodies and main statement are queries,
 * a parenthesised query, SHOW, EXPLAIN [ANALYZE] of such a query, COPY table|(query) TO STDOUT, provided
 * that nowhere in them (at any depth) there is:
 * - a locking clause (FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE) -> 'locking-clause';
 * - INTO (SELECT ... INTO creates a table) -> 'select-into';
 * - INSERT / UPDATE / DELETE / MERGE right after `(` (a data-modifying CTE) -> 'cte-dml'; as the main
 *   statement of a WITH -> 'insert' etc.; anywhere else, for instance as an unquoted column name,
 *   -> 'dml-keyword' (conservative: quote such columns);
 * - a call of a function in the deny list (`DEFAULT_WRITING_FUNCTIONS`, or names starting with one of
 *   `DEFAULT_WRITING_FUNCTION_PREFIXES`, plus routing.writing_functions): an identifier, possibly
 *   schema-qualified or quoted (compared lowercased), followed by `(` -> 'writing-function:<name>';
 * - a `;` that did not end the statement (inside parentheses) -> 'nested-semicolon';
 * - with the default function policy (`unknownFunctions: 'primary'`), a call of a function that is
 *   neither writing nor known to be read-only (a built-in, KNOWN_BUILTIN_READ_ONLY_FUNCTIONS, or a name in
 *   `readOnlyFunctions`) -> 'unknown-function:<name>' (kind 'unknown'). This reason is reported only
 *   when nothing else in the statement is unsafe. See ./function-policy.ts for what counts as a call and
 *   how names are matched. With `unknownFunctions: 'replica'` such calls are allowed: a write inside one
 *   fails on the replica with SQLSTATE 25006 (read_only_sql_transaction), and the session re-runs the
 *   statement on the primary.
 *
 * The lexer assumes standard_conforming_strings=on unless told otherwise; the proxy should pass the
 * server's value (ParameterStatus), because with it off `'\'` does not end a string.
 */
import { lexSql, type Token } from './sql-lexer.js';
import { parseRouteHints } from './route-hint.js';
import { classifyCommonShape, type CommonShapePolicy } from './common-shape.js';
import type { ClassifyOptions } from './classify-options.js';
import { info, makeCtx, statementText, type ClassifierContext } from './classifier-context.js';
import { classifyReadQuery, firstWordAfterParens, isQueryStart, scanQuery, withAdvisoryPin } from './query-scan.js';
import { classifyBegin, classifyDeclare, classifyEnd, classifyReset, classifySet } from './session-statements.js';
import type { QueryClassification, StatementInfo } from './statement-info.js';

// The result types are part of classifyQuery's contract: importers keep getting them from here.
export type { PinReason, QueryClassification, SettingEffect, StatementInfo, StatementKind, TransactionEffect } from './statement-info.js';

/**
 * Classifies every statement of a query string (as sent in one Query or Parse message). Never throws.
 * The common OLTP shapes take a fast path (./common-shape.ts) that returns what the full path would.
 */
export function classifyQuery(sql: string, options?: ClassifyOptions): QueryClassification {
  const ctx = makeCtx(sql, options);
  const scs = options?.standardConformingStrings !== false;
  if (scs) {
    const fast = classifyCommonShape(sql, ctx);
    if (fast !== undefined) return fast;
  }
  return classifyLexed(sql, scs, ctx);
}

/** The function policy of an option set in the form the fast path takes (make it once, use it often). */
export function commonShapePolicy(options?: ClassifyOptions): CommonShapePolicy {
  return makeCtx('', options);
}

/** The full path of classifyQuery (lexer and statement rules), without the fast path. */
export function classifyQueryFully(sql: string, options?: ClassifyOptions): QueryClassification {
  return classifyLexed(sql, options?.standardConformingStrings !== false, makeCtx(sql, options));
}

function classifyLexed(sql: string, scs: boolean, ctx: ClassifierContext): QueryClassification {
  const lex = lexSql(sql, { standardConformingStrings: scs });
  const statements: StatementInfo[] = [];
  for (const toks of lex.statements) statements.push(classifyStatement(toks, ctx));

  const firstStmt = lex.statements[0];
  const lastStmt = lex.statements[lex.statements.length - 1];
  const firstTokenStart = firstStmt?.[0]?.start ?? sql.length;
  const lastTokenEnd = lastStmt?.[lastStmt.length - 1]?.end ?? 0;
  const hints = parseRouteHints(lex.comments, sql.length, firstTokenStart, lastTokenEnd);

  if (lex.unterminated) {
    // The server rejects the whole string; make sure no statement of it looks usable on a replica.
    const text = lastStmt ? statements[statements.length - 1]!.text : '';
    const info: StatementInfo = { kind: 'unknown', replicaSafe: false, reason: 'unterminated', text };
    if (lastStmt) statements[statements.length - 1] = info;
    else statements.push(info);
    return { statements, replicaSafe: false, reason: 'unterminated', hints };
  }
  if (statements.length === 0) return { statements, replicaSafe: false, reason: 'empty', hints };
  for (const s of statements) {
    if (!s.replicaSafe) return { statements, replicaSafe: false, reason: s.reason, hints };
  }
  return { statements, replicaSafe: true, reason: 'read-only', hints };
}

function classifyStatement(toks: Token[], ctx: ClassifierContext): StatementInfo {
  const t0 = toks[0]!;
  if (t0.isPunct('(')) {
    const w = firstWordAfterParens(toks, 0, toks.length);
    if (isQueryStart(w)) return classifyReadQuery(toks, 0, toks.length, ctx, 'select', false);
    return withAdvisoryPin(info('unknown', 'unknown-statement', toks, ctx), toks);
  }
  if (t0.kind !== 'keyword_or_ident') return info('unknown', 'unknown-statement', toks, ctx);
  const w = t0.text;
  switch (w) {
    case 'select':
    case 'values':
    case 'table':
      return classifyReadQuery(toks, 0, toks.length, ctx, w, false);
    case 'with':
      return classifyReadQuery(toks, 0, toks.length, ctx, 'with', true);
    case 'show':
      return { kind: 'read', replicaSafe: true, reason: 'show', text: statementText(toks, ctx) };
    case 'explain':
      return classifyExplain(toks, ctx);
    case 'copy':
      return classifyCopy(toks, ctx);

    case 'insert':
    case 'update':
    case 'delete':
    case 'merge':
    case 'alter':
    case 'drop':
    case 'truncate':
    case 'grant':
    case 'revoke':
    case 'comment':
    case 'security':
    case 'refresh':
    case 'reassign':
    case 'import':
    case 'call':
    case 'do':
    case 'notify':
      return withAdvisoryPin(info('write', w, toks, ctx), toks);
    case 'create':
      return classifyCreate(toks, ctx);
    case 'vacuum':
    case 'analyze':
    case 'analyse':
    case 'cluster':
    case 'reindex':
    case 'checkpoint':
    case 'lock':
      return info('utility', w, toks, ctx);

    case 'begin':
    case 'start':
      return classifyBegin(toks, ctx);
    case 'commit':
    case 'end':
    case 'rollback':
    case 'abort':
      return classifyEnd(toks, ctx);
    case 'savepoint':
      return info('transaction', 'savepoint', toks, ctx, { transaction: 'savepoint' });
    case 'release':
      return info('transaction', 'release', toks, ctx, { transaction: 'release' });
    case 'prepare':
      if (toks[1]?.is('transaction') && toks[2]?.kind === 'string') {
        return info('transaction', 'prepare-transaction', toks, ctx, { transaction: 'prepare-transaction' });
      }
      return withAdvisoryPin(info('session', 'prepare', toks, ctx, { pinsPrimary: 'sql-prepare' }), toks);

    case 'set':
      return classifySet(toks, ctx);
    case 'reset':
      return classifyReset(toks, ctx);
    case 'discard':
      if (toks[1]?.is('all') && toks.length === 2) return info('session', 'discard', toks, ctx, { discard: true });
      return info('session', 'discard', toks, ctx);
    case 'listen':
      return info('session', 'listen', toks, ctx, { pinsPrimary: 'listen' });
    case 'unlisten':
      return info('session', 'unlisten', toks, ctx);
    case 'declare':
      return classifyDeclare(toks, ctx);
    case 'execute':
    case 'deallocate':
    case 'fetch':
    case 'move':
    case 'close':
    case 'load':
      return info('session', w, toks, ctx);
    default:
      return info('unknown', 'unknown-statement', toks, ctx);
  }
}

/** EXPLAIN [ ( options ) | ANALYZE | VERBOSE ... ] statement. */
function classifyExplain(toks: Token[], ctx: ClassifierContext): StatementInfo {
  let k = 1;
  const n = toks.length;
  const afterParen = toks[k + 1];
  if (k < n && toks[k]!.isPunct('(') && !(isQueryStart(afterParen) || afterParen?.isPunct('('))) {
    // EXPLAIN ( option [, ...] ) statement; `EXPLAIN (SELECT 1)` is a parenthesised query instead
    const depth = toks[k]!.depth;
    k++;
    while (k < n && !(toks[k]!.isPunct(')') && toks[k]!.depth === depth)) k++;
    k++;
  } else {
    while (k < n && (toks[k]!.is('analyze') || toks[k]!.is('analyse') || toks[k]!.is('verbose'))) k++;
  }
  if (k >= n) return info('unknown', 'unknown-statement', toks, ctx);
  const innerFirst = toks[k]!;
  const inner = isQueryStart(innerFirst) || innerFirst.isPunct('(')
    ? classifyReadQuery(toks, k, n, ctx, 'explain', innerFirst.is('with'))
    : classifyStatement(toks.slice(k), ctx);
  if (inner.replicaSafe) {
    const s: StatementInfo = { kind: 'read', replicaSafe: true, reason: 'explain', text: statementText(toks, ctx) };
    return s;
  }
  const s = info(inner.kind === 'write' ? 'write' : inner.kind === 'unknown' ? 'unknown' : 'utility', `explain:${inner.reason}`, toks, ctx);
  if (inner.pinsPrimary) s.pinsPrimary = inner.pinsPrimary;
  return s;
}

/**
 * COPY [BINARY] table [(cols)] TO STDOUT ... and COPY (query) TO STDOUT ... are reads; COPY ... FROM
 * writes; COPY ... TO 'file' / PROGRAM writes a file on the server.
 */
function classifyCopy(toks: Token[], ctx: ClassifierContext): StatementInfo {
  const n = toks.length;
  let k = 1;
  let queryFrom = -1;
  let queryTo = -1;
  if (k < n && toks[k]!.is('binary')) k++;
  if (k < n && toks[k]!.isPunct('(')) {
    const depth = toks[k]!.depth;
    queryFrom = k + 1;
    k++;
    while (k < n && !(toks[k]!.isPunct(')') && toks[k]!.depth === depth)) k++;
    queryTo = k;
    k++;
  } else {
    // qualified name
    while (k < n && (toks[k]!.kind === 'keyword_or_ident' || toks[k]!.kind === 'quoted_ident')) {
      k++;
      if (k < n && toks[k]!.isPunct('.')) k++;
      else break;
    }
    if (k < n && toks[k]!.isPunct('(')) {
      const depth = toks[k]!.depth;
      k++;
      while (k < n && !(toks[k]!.isPunct(')') && toks[k]!.depth === depth)) k++;
      k++;
    }
  }
  const dir = toks[k];
  if (dir?.is('from')) return withAdvisoryPin(info('write', 'copy-from', toks, ctx), toks);
  if (!dir?.is('to')) return withAdvisoryPin(info('unknown', 'unknown-statement', toks, ctx), toks);
  if (!toks[k + 1]?.is('stdout')) return withAdvisoryPin(info('utility', 'copy-to-file', toks, ctx), toks);
  if (queryFrom >= 0) {
    const first = toks[queryFrom];
    if (queryFrom >= queryTo || !(isQueryStart(first) || first?.isPunct('('))) {
      const inner = queryFrom < queryTo ? classifyStatement(toks.slice(queryFrom, queryTo), ctx) : undefined;
      const s = info(inner?.kind === 'write' ? 'write' : 'unknown', `copy:${inner?.reason ?? 'empty'}`, toks, ctx);
      if (inner?.pinsPrimary) s.pinsPrimary = inner.pinsPrimary;
      return s;
    }
    const inner = classifyReadQuery(toks, queryFrom, queryTo, ctx, 'copy-to', first!.is('with'));
    if (!inner.replicaSafe) {
      inner.text = statementText(toks, ctx);
      return inner;
    }
  }
  // The options after STDOUT cannot write; still scan them for anything odd.
  const rest = scanQuery(toks, k + 2, n, ctx, false, false);
  if (rest.violation) return info(rest.violationKind, rest.violation, toks, ctx);
  return { kind: 'read', replicaSafe: true, reason: 'copy-to', text: statementText(toks, ctx) };
}

/** CREATE ...: a write; CREATE [GLOBAL|LOCAL] TEMP|TEMPORARY ... (or in schema pg_temp) pins the session. */
function classifyCreate(toks: Token[], ctx: ClassifierContext): StatementInfo {
  const s = info('write', 'create', toks, ctx);
  let k = 1;
  if (toks[k]?.is('or') && toks[k + 1]?.is('replace')) k += 2;
  if (toks[k]?.is('global') || toks[k]?.is('local')) k++;
  let temp = toks[k]?.is('temp') === true || toks[k]?.is('temporary') === true;
  if (!temp) {
    // CREATE [UNLOGGED] TABLE|VIEW|SEQUENCE [IF NOT EXISTS] pg_temp.name
    if (toks[k]?.is('unlogged')) k++;
    if (toks[k]?.is('recursive')) k++;
    const objectKind = toks[k];
    if (objectKind && (objectKind.is('table') || objectKind.is('view') || objectKind.is('sequence'))) {
      k++;
      if (toks[k]?.is('if') && toks[k + 1]?.is('not') && toks[k + 2]?.is('exists')) k += 3;
      const schema = toks[k];
      if (schema && (schema.kind === 'keyword_or_ident' || schema.kind === 'quoted_ident') && toks[k + 1]?.isPunct('.')) {
        const name = schema.text;
        if (name === 'pg_temp' || name.startsWith('pg_temp_')) temp = true;
      }
    }
  }
  if (temp) s.pinsPrimary = 'temp-table';
  return withAdvisoryPin(s, toks);
}
