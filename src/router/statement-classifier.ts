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
import { parseRouteHints, type RouteHints } from './route-hint.js';
import { classifyCommonShape, type CommonShapePolicy } from './common-shape.js';
import {
  functionKey,
  isWritingFunction,
  KNOWN_BUILTIN_READ_ONLY_FUNCTIONS,
  parseFunctionName,
  SESSION_PINNING_FUNCTIONS,
  unknownFunctionCall,
  type FunctionLookup,
  type UnknownFunctionPolicy,
} from './function-policy.js';

export type StatementKind = 'read' | 'write' | 'transaction' | 'session' | 'utility' | 'unknown';

export type TransactionEffect =
  | 'begin'
  | 'begin-read-only'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'release'
  | 'rollback-to'
  | 'prepare-transaction';

export type PinReason = 'listen' | 'temp-table' | 'advisory-lock' | 'setseed' | 'cursor-with-hold' | 'sql-prepare';

export interface SettingEffect {
  /** Parameter name, lowercased (quoted parts kept as written); dotted names are joined with '.'. */
  name: string;
  /** Value as written (strings unquoted, identifiers lowercased, list items joined with ', '); null = RESET / DEFAULT. */
  value: string | null;
  local: boolean;
  /** RESET ALL. */
  all?: boolean;
}

export interface StatementInfo {
  kind: StatementKind;
  /** True only for statements that can never write. */
  replicaSafe: boolean;
  /** Short and stable, e.g. 'select', 'insert', 'locking-clause', 'writing-function:nextval', 'begin', 'set'. */
  reason: string;
  /** The statement's source text, from its first token to its last (comments outside it excluded). */
  text: string;
  /** Transaction control effect. */
  transaction?: TransactionEffect;
  /** COMMIT/ROLLBACK/END/ABORT ... AND CHAIN: a new transaction starts right after this one ends. */
  chain?: boolean;
  /** SET/RESET of a parameter. */
  setting?: SettingEffect;
  /** This statement ties the session to the primary from now on. */
  pinsPrimary?: PinReason;
  /** DISCARD ALL / RESET ALL (clears session state). */
  discard?: boolean;
}

export interface QueryClassification {
  statements: StatementInfo[];
  /** Every statement replicaSafe, and the string is non-empty and lexed cleanly. */
  replicaSafe: boolean;
  /** 'unterminated', 'empty', the reason of the first statement that is not safe, else 'read-only'. */
  reason: string;
  hints: RouteHints;
}

export interface ClassifyOptions {
  /** Function names (lowercase, unqualified) whose call makes a statement unsafe. Default DEFAULT_WRITING_FUNCTIONS. */
  writingFunctions?: ReadonlySet<string>;
  /** Name prefixes with the same effect. Default DEFAULT_WRITING_FUNCTION_PREFIXES. */
  writingFunctionPrefixes?: readonly string[];
  /**
   * Functions vouched for as read-only besides the built-ins: 'name' (any schema) or 'schema.name', in
   * the normalized form of functionKey(parseFunctionName(...)) (unquoted parts lowercased). Default none.
   */
  readOnlyFunctions?: ReadonlySet<string>;
  /** Built-in read-only names; default KNOWN_BUILTIN_READ_ONLY_FUNCTIONS (generated list + later releases). */
  builtinReadOnlyFunctions?: ReadonlySet<string>;
  /** What a call of a function that is neither writing nor known read-only does; default 'primary'. */
  unknownFunctions?: UnknownFunctionPolicy;
  /** The server's standard_conforming_strings; default true. */
  standardConformingStrings?: boolean;
}

/**
 * Functions that write, change session state a replica would not share, depend on session state only the
 * primary has, or fail on a standby.
 */
export const DEFAULT_WRITING_FUNCTIONS: ReadonlySet<string> = new Set([
  // sequences
  'nextval',
  'setval',
  'currval', // read-only, but depends on this session's nextval calls, which happened on the primary
  'lastval',
  // advisory locks (session-level ones also pin the session to the primary)
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  // large objects
  'lo_create',
  'lo_creat',
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_open',
  'lo_close',
  'lo_write',
  'lo_put',
  'lo_get',
  'lo_truncate',
  'lo_truncate64',
  'lo_lseek',
  'lo_lseek64',
  'lo_tell',
  'lo_tell64',
  'lo_from_bytea',
  'loread',
  'lowrite',
  // transaction ids (assigning one writes)
  'txid_current',
  'txid_current_if_assigned',
  'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  // session state
  'pg_notify',
  'set_config',
  'setseed',
  // remote execution
  'dblink',
  'dblink_exec',
  'dblink_connect',
  'dblink_connect_u',
  'dblink_disconnect',
  'dblink_open',
  'dblink_fetch',
  'dblink_close',
  'dblink_send_query',
  // WAL, replication and server administration
  'pg_switch_wal',
  'pg_switch_xlog',
  'pg_create_restore_point',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_replication_slot_advance',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_logical_slot_peek_changes',
  'pg_logical_slot_peek_binary_changes',
  'pg_logical_emit_message',
  'pg_log_standby_snapshot',
  'pg_cancel_backend',
  'pg_terminate_backend',
  'pg_log_backend_memory_contexts',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_stat_reset',
  'pg_stat_reset_shared',
  'pg_stat_reset_single_table_counters',
  'pg_stat_reset_single_function_counters',
  'pg_stat_reset_slru',
  'pg_stat_reset_replication_slot',
  'pg_stat_reset_subscription_stats',
  'pg_stat_statements_reset',
  'pg_promote',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_xlog_replay_pause',
  'pg_xlog_replay_resume',
  'pg_current_wal_lsn',
  'pg_current_wal_insert_lsn',
  'pg_current_wal_flush_lsn',
  'pg_current_xlog_location',
  'pg_current_xlog_insert_location',
  'pg_current_xlog_flush_location',
  'pg_walfile_name',
  'pg_walfile_name_offset',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_import_system_collations',
  // index maintenance functions that write
  'brin_summarize_new_values',
  'brin_summarize_range',
  'brin_desummarize_range',
  'gin_clean_pending_list',
  // adminpack file writes
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_file_sync',
]);

/** Name prefixes treated like DEFAULT_WRITING_FUNCTIONS (families with many members). */
export const DEFAULT_WRITING_FUNCTION_PREFIXES: readonly string[] = [
  'pg_advisory_',
  'pg_try_advisory_',
  'lo_',
  'pg_stat_reset',
  'dblink_',
  'pg_replication_origin_',
];

interface Ctx {
  fns: ReadonlySet<string>;
  prefixes: readonly string[];
  /** Null when unknown functions are allowed (policy 'replica'). */
  lookup: FunctionLookup | null;
  sql: string;
}

const NO_READ_ONLY: ReadonlySet<string> = new Set();
const DEFAULT_LOOKUP: FunctionLookup = { builtins: KNOWN_BUILTIN_READ_ONLY_FUNCTIONS, readOnly: NO_READ_ONLY };

const lookups = new WeakMap<ClassifyOptions, FunctionLookup>();

/** The name look-up of an option set (made once per options object), or null under policy 'replica'. */
function functionLookup(options: ClassifyOptions | undefined): FunctionLookup | null {
  if (options === undefined) return DEFAULT_LOOKUP;
  if (options.unknownFunctions === 'replica') return null;
  if (options.readOnlyFunctions === undefined && options.builtinReadOnlyFunctions === undefined) return DEFAULT_LOOKUP;
  let l = lookups.get(options);
  if (l === undefined) {
    l = {
      builtins: options.builtinReadOnlyFunctions ?? KNOWN_BUILTIN_READ_ONLY_FUNCTIONS,
      readOnly: options.readOnlyFunctions ?? NO_READ_ONLY,
    };
    lookups.set(options, l);
  }
  return l;
}

/** Operator-facing function policy, as in the config file (names as written there). */
export interface FunctionPolicyConfig {
  /** Added to DEFAULT_WRITING_FUNCTIONS (a qualified name counts in every schema). */
  writingFunctions?: readonly string[];
  /** User functions the operator vouches for: 'fn' (any schema) or 'schema.fn'. */
  readOnlyFunctions?: readonly string[];
  unknownFunctions?: UnknownFunctionPolicy;
}

/**
 * Turns the configured function policy into ClassifyOptions. Throws an Error naming the entry for a name
 * that does not parse (the config loader reports these with the key first).
 */
export function functionPolicyOptions(cfg: FunctionPolicyConfig = {}): ClassifyOptions {
  const opts: ClassifyOptions = { unknownFunctions: cfg.unknownFunctions ?? 'primary' };
  const writing = cfg.writingFunctions ?? [];
  if (writing.length > 0) {
    const fns = new Set(DEFAULT_WRITING_FUNCTIONS);
    for (const w of writing) {
      const f = parseFunctionName(w);
      if (typeof f === 'string') throw new Error(`writing function ${JSON.stringify(w)}: ${f}`);
      fns.add(f.name.toLowerCase());
    }
    opts.writingFunctions = fns;
  }
  const readOnly = cfg.readOnlyFunctions ?? [];
  if (readOnly.length > 0) {
    const ro = new Set<string>();
    for (const r of readOnly) {
      const f = parseFunctionName(r);
      if (typeof f === 'string') throw new Error(`read-only function ${JSON.stringify(r)}: ${f}`);
      ro.add(functionKey(f));
    }
    opts.readOnlyFunctions = ro;
  }
  return opts;
}

/** True when a (bare) function name is writing under the given list and prefixes (compared lowercased). */
export function isWritingFunctionName(
  name: string,
  fns: ReadonlySet<string> = DEFAULT_WRITING_FUNCTIONS,
  prefixes: readonly string[] = DEFAULT_WRITING_FUNCTION_PREFIXES,
): boolean {
  return isWritingFunction(name.toLowerCase(), { fns, prefixes });
}

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

function makeCtx(sql: string, options: ClassifyOptions | undefined): Ctx {
  return {
    fns: options?.writingFunctions ?? DEFAULT_WRITING_FUNCTIONS,
    prefixes: options?.writingFunctionPrefixes ?? DEFAULT_WRITING_FUNCTION_PREFIXES,
    lookup: functionLookup(options),
    sql,
  };
}

function classifyLexed(sql: string, scs: boolean, ctx: Ctx): QueryClassification {
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

function statementText(toks: Token[], ctx: Ctx): string {
  const first = toks[0];
  const last = toks[toks.length - 1];
  return first && last ? ctx.sql.slice(first.start, last.end) : '';
}

function info(kind: StatementKind, reason: string, toks: Token[], ctx: Ctx, extra?: Partial<StatementInfo>): StatementInfo {
  const s: StatementInfo = { kind, replicaSafe: false, reason, text: statementText(toks, ctx) };
  return extra ? Object.assign(s, extra) : s;
}

/** First keyword-like token after any leading `(`, or undefined. */
function firstWordAfterParens(toks: Token[], from: number, to: number): Token | undefined {
  let k = from;
  while (k < to && toks[k]!.isPunct('(')) k++;
  const t = toks[k];
  return k < to && t && t.kind === 'keyword_or_ident' ? t : undefined;
}

function isQueryStart(t: Token | undefined): boolean {
  return t !== undefined && (t.is('select') || t.is('values') || t.is('table') || t.is('with'));
}

function classifyStatement(toks: Token[], ctx: Ctx): StatementInfo {
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
function scanQuery(toks: Token[], from: number, to: number, ctx: Ctx, isWith: boolean, checkCalls = true): ScanResult {
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

function classifyReadQuery(toks: Token[], from: number, to: number, ctx: Ctx, reason: string, isWith: boolean): StatementInfo {
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
function withAdvisoryPin(s: StatementInfo, toks: Token[]): StatementInfo {
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

/** EXPLAIN [ ( options ) | ANALYZE | VERBOSE ... ] statement. */
function classifyExplain(toks: Token[], ctx: Ctx): StatementInfo {
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
function classifyCopy(toks: Token[], ctx: Ctx): StatementInfo {
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
function classifyCreate(toks: Token[], ctx: Ctx): StatementInfo {
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

/** BEGIN [WORK|TRANSACTION] [modes] / START TRANSACTION [modes]. */
function classifyBegin(toks: Token[], ctx: Ctx): StatementInfo {
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
function classifyEnd(toks: Token[], ctx: Ctx): StatementInfo {
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
function settingValue(toks: Token[], from: number, to: number, ctx: Ctx): string | null {
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

function itemText(toks: Token[], from: number, to: number, ctx: Ctx): string {
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
function classifySet(toks: Token[], ctx: Ctx): StatementInfo {
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
  if (name === '') return info('session', 'set', toks, ctx);
  const op = toks[k];
  if (op?.is('from') && toks[k + 1]?.is('current')) return info('session', 'set-from-current', toks, ctx);
  if (!op || !(op.is('to') || op.isOperator('='))) return info('session', 'set', toks, ctx);
  return session(name, settingValue(toks, k + 1, n, ctx));
}

/** RESET name | ALL | TIME ZONE | SESSION AUTHORIZATION | ROLE | TRANSACTION ISOLATION LEVEL. */
function classifyReset(toks: Token[], ctx: Ctx): StatementInfo {
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
  let name = '';
  let k = 1;
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
  if (name === '' || k !== n) return info('session', 'reset', toks, ctx);
  return reset(name);
}

/** DECLARE name [...] CURSOR [WITH HOLD | WITHOUT HOLD] FOR query. */
function classifyDeclare(toks: Token[], ctx: Ctx): StatementInfo {
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
