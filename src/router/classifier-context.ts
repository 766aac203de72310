/**
 * The context one classifyQuery call passes to every statement rule: the function policy resolved from
 * the options (made once per options object, so the hot path allocates only this small record) and the
 * query text, with the constructor of StatementInfo the rules share.
 */
import type { Token } from './sql-lexer.js';
import { KNOWN_BUILTIN_READ_ONLY_FUNCTIONS, type FunctionLookup } from './function-policy.js';
import type { ClassifyOptions } from './classify-options.js';
import type { StatementInfo, StatementKind } from './statement-info.js';
import { DEFAULT_WRITING_FUNCTION_PREFIXES, DEFAULT_WRITING_FUNCTIONS } from './writing-functions.js';

export interface ClassifierContext {
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

/** The context of one classification (also the fast path's CommonShapePolicy, which reads fns/prefixes/lookup). */
export function makeCtx(sql: string, options: ClassifyOptions | undefined): ClassifierContext {
  return {
    fns: options?.writingFunctions ?? DEFAULT_WRITING_FUNCTIONS,
    prefixes: options?.writingFunctionPrefixes ?? DEFAULT_WRITING_FUNCTION_PREFIXES,
    lookup: functionLookup(options),
    sql,
  };
}

/** A statement's source text, from its first token to its last. */
export function statementText(toks: Token[], ctx: ClassifierContext): string {
  const first = toks[0];
  const last = toks[toks.length - 1];
  return first && last ? ctx.sql.slice(first.start, last.end) : '';
}

/** A StatementInfo that is not replica-safe; `extra` adds the effects (transaction, setting, pin). */
export function info(kind: StatementKind, reason: string, toks: Token[], ctx: ClassifierContext, extra?: Partial<StatementInfo>): StatementInfo {
  const s: StatementInfo = { kind, replicaSafe: false, reason, text: statementText(toks, ctx) };
  return extra ? Object.assign(s, extra) : s;
}
