/**
 * The function policy of the classifier: which function calls a replica-safe statement may contain.
 *
 * A call (an identifier, possibly schema-qualified, followed by `(`) is one of:
 * - a writing function (DEFAULT_WRITING_FUNCTIONS, its prefixes, routing.writing_functions): never on a
 *   replica, whatever the policy or a hint says;
 * - a read-only function: a built-in (BUILTIN_READ_ONLY_FUNCTIONS, generated from pg_catalog, plus
 *   LATER_RELEASE_READ_ONLY_FUNCTIONS; called unqualified or as pg_catalog.name) or one the operator
 *   vouches for in routing.read_only_functions;
 * - an unknown function: anything else, for instance a user-defined function. With the policy
 *   `unknown_functions: primary` (the default: when in doubt, primary) the statement goes to the primary
 *   with reason 'unknown-function:<name>'; with `replica` it may go to a replica, where a write fails
 *   with SQLSTATE 25006 and the session re-runs the statement on the primary. A `route=replica` hint on
 *   the statement has the same effect as `replica` for that statement.
 *
 * Configured names are written as in SQL: `my_fn`, `myschema.my_fn`, `"MyFn"` (unquoted parts are
 * lowercased). A bare read-only name covers the function in every schema; a qualified one only calls
 * written with that schema. A writing name, bare or qualified, covers the name in every schema and
 * unqualified calls (a call's schema can come from search_path).
 *
 * Not calls, although an identifier is followed by `(`: SQL syntax (IN (, EXISTS (, ANY (, ROW (, CAST (,
 * COALESCE (, OVER (, FILTER (, CUBE (, ...), type modifiers (varchar(10), numeric(10,2), after `::` or
 * AS), alias and CTE column lists (AS x(a, b), FROM t x(a), WITH x(a) AS (...)), TABLESAMPLE methods.
 * Unqualified built-in names are assumed to resolve to pg_catalog (it is searched first unless a
 * search_path names it later).
 */
import type { Token } from './sql-lexer.js';
import {
  BUILTIN_READ_ONLY_FUNCTIONS,
  PG_COL_NAME_KEYWORDS,
  PG_RESERVED_KEYWORDS,
  PG_TYPE_FUNC_NAME_KEYWORDS,
} from './builtin-functions.js';

export type UnknownFunctionPolicy = 'primary' | 'replica';
export const UNKNOWN_FUNCTION_POLICIES: readonly UnknownFunctionPolicy[] = ['primary', 'replica'];

/** A function name as configured: unquoted parts lowercased, quoted parts as written. */
export interface FunctionName {
  schema: string | null;
  name: string;
}

/** 'schema.name' or 'name': the form used in read-only sets and in 'unknown-function:' reasons. */
export function functionKey(f: FunctionName): string {
  return f.schema === null ? f.name : `${f.schema}.${f.name}`;
}

/**
 * Parses a configured function name: `fn`, `schema.fn`, with `"..."` for parts that need quoting
 * (`""` inside is one quote). Returns an error text (what is wrong) instead of throwing.
 */
export function parseFunctionName(text: string): FunctionName | string {
  const parts: string[] = [];
  let k = 0;
  const n = text.length;
  for (;;) {
    if (k >= n) return 'it is empty or ends with a dot';
    if (text[k] === '"') {
      let part = '';
      k++;
      for (;;) {
        if (k >= n) return 'a double quote is not closed';
        if (text[k] === '"') {
          if (text[k + 1] === '"') {
            part += '"';
            k += 2;
            continue;
          }
          k++;
          break;
        }
        part += text[k];
        k++;
      }
      if (part === '') return 'a quoted part is empty';
      parts.push(part);
    } else {
      const m = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(text.slice(k));
      if (m === null) {
        if (text[k] === '(') return 'it has an argument list; write the name alone (it covers every overload)';
        return `unexpected character ${JSON.stringify(text[k])}`;
      }
      parts.push(m[0].replace(/[A-Z]+/g, (s) => s.toLowerCase()));
      k += m[0].length;
    }
    if (k === n) break;
    if (text[k] === '(') return 'it has an argument list; write the name alone (it covers every overload)';
    if (text[k] !== '.') return `unexpected character ${JSON.stringify(text[k])}`;
    k++;
  }
  if (parts.length > 2) return 'it has more than two parts; write name or schema.name';
  const name = parts[parts.length - 1]!;
  return { schema: parts.length === 2 ? parts[0]! : null, name };
}

/** Lowercased names of PostgreSQL releases after the generating server's, in the same categories. */
const LATER_COL_NAME_KEYWORDS = [
  'json', 'json_array', 'json_arrayagg', 'json_exists', 'json_object', 'json_objectagg', 'json_query',
  'json_scalar', 'json_serialize', 'json_table', 'json_value', 'merge_action',
];
const LATER_RESERVED_KEYWORDS = ['system_user'];

/**
 * Unreserved keywords that are syntax when `(` follows them (window and aggregate clauses, grouping
 * sets, CTE materialization, type names, OPERATOR(schema.op), ...).
 */
const SYNTAX_BEFORE_PAREN = [
  'over', 'filter', 'within', 'cube', 'rollup', 'sets', 'materialized', 'operator', 'varying', 'zone',
  'repeatable', 'by', 'escape', 'first', 'next', 'ref', 'passing', 'document', 'content', 'version',
  'value', 'columns', 'ordinality', 'nulls', 'key', 'lateral', 'search', 'cycle', 'depth', 'breadth',
];

/**
 * True when the lowercase bare function `name` is writing under a list of names and of name prefixes
 * (DEFAULT_WRITING_FUNCTIONS / _PREFIXES in ./writing-functions.ts, plus routing.writing_functions).
 */
export function isWritingFunction(name: string, list: { fns: ReadonlySet<string>; prefixes: readonly string[] }): boolean {
  if (list.fns.has(name)) return true;
  for (const p of list.prefixes) if (name.startsWith(p)) return true;
  return false;
}

/**
 * Functions whose effect outlives the statement in the backend that ran it, so the session stays on the
 * primary from then on: session-level advisory locks (the lock is held until released), and setseed()
 * (the random() sequence that follows belongs to that backend). All of them are writing functions too.
 */
export const SESSION_PINNING_FUNCTIONS: ReadonlyMap<string, 'advisory-lock' | 'setseed'> = new Map([
  ['pg_advisory_lock', 'advisory-lock'],
  ['pg_advisory_lock_shared', 'advisory-lock'],
  ['pg_try_advisory_lock', 'advisory-lock'],
  ['pg_try_advisory_lock_shared', 'advisory-lock'],
  ['setseed', 'setseed'],
] as const);

/** Unquoted words that, followed by `(`, are never a function call. */
export const NOT_A_CALL: ReadonlySet<string> = new Set([
  ...PG_RESERVED_KEYWORDS,
  ...PG_COL_NAME_KEYWORDS,
  ...PG_TYPE_FUNC_NAME_KEYWORDS,
  ...LATER_COL_NAME_KEYWORDS,
  ...LATER_RESERVED_KEYWORDS,
  ...SYNTAX_BEFORE_PAREN,
]);

/**
 * Unquoted words after which an expression (so a call) can start: reserved, column-name and
 * type/function-name keywords, and the unreserved ones that end in an expression (ORDER BY, AT TIME ZONE,
 * ESCAPE, FETCH FIRST, XMLPARSE(DOCUMENT ...), ...). After any other identifier, `name(` is an alias with
 * a column list (FROM t x(a, b)).
 */
const BEFORE_EXPRESSION: ReadonlySet<string> = new Set([
  ...PG_RESERVED_KEYWORDS,
  ...PG_COL_NAME_KEYWORDS,
  ...PG_TYPE_FUNC_NAME_KEYWORDS,
  ...LATER_COL_NAME_KEYWORDS,
  ...LATER_RESERVED_KEYWORDS,
  'by', 'zone', 'escape', 'first', 'next', 'ref', 'passing', 'document', 'content', 'version', 'value',
]);

/**
 * Read-only built-ins of PostgreSQL releases after the one BUILTIN_READ_ONLY_FUNCTIONS was generated
 * from (16, 17, 18), maintained by hand: a server of that release has them in pg_catalog. Immutable or
 * stable, or volatile but read-only (random numbers, UUIDs).
 */
export const LATER_RELEASE_READ_ONLY_FUNCTIONS: readonly string[] = [
  // 16
  'any_value', 'array_sample', 'array_shuffle', 'date_add', 'date_subtract', 'erf', 'erfc',
  'pg_input_error_info', 'pg_input_is_valid', 'pg_split_walfile_name', 'random_normal',
  'pg_stat_get_backend_subxact', 'pg_stat_get_io',
  // 17
  'icu_unicode_version', 'pg_basetype', 'pg_column_toast_chunk_id', 'to_bin', 'to_oct', 'unicode_assigned',
  'unicode_version', 'uuid_extract_timestamp', 'uuid_extract_version', 'xmltext',
  // 18
  'array_reverse', 'array_sort', 'casefold', 'crc32', 'crc32c', 'gamma', 'lgamma', 'uuidv4', 'uuidv7',
];

/** The built-in names the classifier knows by default: generated ones and later releases' ones. */
export const KNOWN_BUILTIN_READ_ONLY_FUNCTIONS: ReadonlySet<string> = new Set([
  ...BUILTIN_READ_ONLY_FUNCTIONS,
  ...LATER_RELEASE_READ_ONLY_FUNCTIONS,
]);

/** What the classifier needs to look names up; built once per Router / option set. */
export interface FunctionLookup {
  /** Built-in read-only names (pg_catalog bare, information_schema qualified); KNOWN_BUILTIN_READ_ONLY_FUNCTIONS. */
  builtins: ReadonlySet<string>;
  /** Names the operator vouches for: 'name' (any schema) or 'schema.name'. */
  readOnly: ReadonlySet<string>;
}


function isName(t: Token | undefined): t is Token {
  return t !== undefined && (t.kind === 'keyword_or_ident' || t.kind === 'quoted_ident');
}

/** True when a call of `name` (in `schema`, null when unqualified) is known not to write. */
export function isKnownReadOnly(schema: string | null, name: string, lookup: FunctionLookup): boolean {
  if (schema === null || schema === 'pg_catalog') {
    if (lookup.builtins.has(name)) return true;
  } else if (schema === 'information_schema' && lookup.builtins.has(`information_schema.${name}`)) {
    return true;
  }
  if (lookup.readOnly.size === 0) return false;
  return lookup.readOnly.has(name) || (schema !== null && lookup.readOnly.has(`${schema}.${name}`));
}

/**
 * For the name token at `k`, whose `(` is at `paren` (k + 1, or k + 3 after U&"..." UESCAPE 'c'), within
 * the statement range [from, to): the 'schema.name' / 'name' of an unknown function it calls, or
 * undefined when it calls a known read-only function or is not a call at all. The caller has already
 * checked the writing-function rules.
 */
export function unknownFunctionCall(toks: Token[], k: number, paren: number, from: number, to: number, lookup: FunctionLookup): string | undefined {
  const t = toks[k]!;
  const name = t.text;
  let schema: string | null = null;
  let start = k;
  if (k - 2 >= from && toks[k - 1]!.isPunct('.') && isName(toks[k - 2])) {
    schema = toks[k - 2]!.text;
    start = k - 2;
    // catalog.schema.name
    if (start - 2 >= from && toks[start - 1]!.isPunct('.') && isName(toks[start - 2])) start -= 2;
  } else if (k - 1 >= from && toks[k - 1]!.isPunct('.')) {
    return undefined; // (expr).name( is not valid SQL; whatever it is, it is not a plain call
  }
  if (isKnownReadOnly(schema, name, lookup)) return undefined;
  if (schema === null && t.kind === 'keyword_or_ident' && NOT_A_CALL.has(name)) return undefined;
  const prev = start > from ? toks[start - 1] : undefined;
  if (prev !== undefined && !expressionMayFollow(toks, start - 1, from)) return undefined;
  if (name === 'second' && schema === null && prev !== undefined && (prev.is('to') || prev.is('interval'))) {
    return undefined; // INTERVAL ... MINUTE TO SECOND(3)
  }
  if (isCteColumnList(toks, start, paren, from, to)) return undefined;
  return schema === null ? name : `${schema}.${name}`;
}

/** True when a call may start right after token `p`. */
function expressionMayFollow(toks: Token[], p: number, from: number): boolean {
  const prev = toks[p]!;
  switch (prev.kind) {
    case 'operator':
      return true;
    case 'punct':
      if (prev.isPunct('(') || prev.isPunct(',') || prev.isPunct('[') || prev.isPunct(':') || prev.isPunct(';')) return true;
      if (prev.isPunct(')')) return closesOperatorOrDistinctOn(toks, p, from);
      return false; // `::` (a type modifier), `.`, `]`
    case 'keyword_or_ident':
      if (prev.is('as') || prev.is('tablesample') || prev.is('into')) return false;
      return BEFORE_EXPRESSION.has(prev.text);
    default:
      return false; // a quoted identifier (alias), a string (INTERVAL '1' SECOND(3)), a number, a parameter
  }
}

/** `OPERATOR(schema.op) f(` and `DISTINCT ON (a) f(`: the `)` at `p` is followed by an expression. */
function closesOperatorOrDistinctOn(toks: Token[], p: number, from: number): boolean {
  const depth = toks[p]!.depth;
  let q = p - 1;
  while (q >= from && !(toks[q]!.isPunct('(') && toks[q]!.depth === depth)) q--;
  if (q <= from) return false;
  const before = toks[q - 1]!;
  if (before.is('operator')) return true;
  return before.is('on') && q - 2 >= from && toks[q - 2]!.is('distinct');
}

/**
 * `WITH | RECURSIVE | , name (a, b) AS [NOT] [MATERIALIZED] (query`: a CTE's column list, not a call.
 * (`FROM f(x) AS (a int, b text)` is a call followed by a column definition list.)
 */
function isCteColumnList(toks: Token[], start: number, paren: number, from: number, to: number): boolean {
  const prev = start > from ? toks[start - 1] : undefined;
  if (prev === undefined || !(prev.is('with') || prev.is('recursive') || prev.isPunct(','))) return false;
  const depth = toks[paren]!.depth;
  let q = paren + 1;
  while (q < to && !(toks[q]!.isPunct(')') && toks[q]!.depth === depth)) q++;
  if (q + 2 >= to || !toks[q + 1]!.is('as')) return false;
  const after = toks[q + 2]!;
  if (after.is('materialized') || after.is('not')) return true;
  if (!after.isPunct('(')) return false;
  const body = toks[q + 3];
  return body !== undefined && (body.isPunct('(') || body.is('select') || body.is('values') || body.is('with') || body.is('table')
    || body.is('insert') || body.is('update') || body.is('delete') || body.is('merge'));
}
