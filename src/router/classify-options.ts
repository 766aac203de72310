/**
 * The options of classifyQuery: the function policy (writing, read-only, unknown functions) and the
 * server's standard_conforming_strings, and how the operator's config becomes them.
 */
import { functionKey, parseFunctionName, type UnknownFunctionPolicy } from './function-policy.js';
import { DEFAULT_WRITING_FUNCTIONS } from './writing-functions.js';

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
