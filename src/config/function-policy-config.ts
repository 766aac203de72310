/**
 * routing.writing_functions, read_only_functions and unknown_functions: the function routing policy,
 * validated as SQL names. Shared by loadConfig and by `pgsplit explain --config`, which reads only this.
 */
import { parseFunctionName } from '../router/function-policy.js';
import { isWritingFunctionName } from '../router/writing-functions.js';
import { DEFAULT_CONFIG, UNKNOWN_FUNCTION_POLICIES, type PgsplitConfig, type UnknownFunctionPolicy } from './config.js';
import { describe, show, type ConfigContext, type Raw } from './config-context.js';

/** The routing policy of a config file: what `pgsplit explain --config FILE` needs. */
export type RoutingPolicy = Pick<PgsplitConfig['routing'], 'writingFunctions' | 'readOnlyFunctions' | 'unknownFunctions'>;

/** A list of SQL function names ('fn', 'schema.fn', '"MyFn"'), as written (validated, not normalized). */
function functionList(v: unknown, key: string, ctx: ConfigContext, example: string): string[] {
  const leaf = key.split('.').pop() ?? key;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) ctx.fail(key, `must be a list, not ${describe(v)}; write ${leaf}: [${example}]`);
  return v.map((item: unknown, i) => {
    if (typeof item !== 'string' || item.trim() === '') {
      ctx.fail(`${key}[${i}]`, `must be a function name, not ${describe(item)}; write a name such as ${example.split(',')[0]}`);
    }
    const name = item.trim();
    const parsed = parseFunctionName(name);
    if (typeof parsed === 'string') {
      ctx.fail(`${key}[${i}]`, `${show(item)} is not a function name (${parsed}); write fn or schema.fn as in SQL, double-quoting parts with capitals or other characters ("MyFn")`);
    }
    return name;
  });
}

/** routing.writing_functions / read_only_functions / unknown_functions. */
export function functionPolicyFromRaw(routingRaw: Raw, ctx: ConfigContext): { writingFunctions: string[]; readOnlyFunctions: string[]; unknownFunctions: UnknownFunctionPolicy } {
  const writingFunctions = functionList(routingRaw['writing_functions'], 'routing.writing_functions', ctx, 'audit_touch, myschema.log_access');
  const readOnlyFunctions = functionList(routingRaw['read_only_functions'], 'routing.read_only_functions', ctx, 'report_totals, reporting.monthly');
  const extraWriting = new Set<string>();
  for (const w of writingFunctions) {
    const f = parseFunctionName(w);
    if (typeof f !== 'string') extraWriting.add(f.name.toLowerCase());
  }
  readOnlyFunctions.forEach((r, i) => {
    const f = parseFunctionName(r);
    if (typeof f === 'string') return;
    const where = isWritingFunctionName(f.name) ? "on pgsplit's built-in list of writing functions"
      : extraWriting.has(f.name.toLowerCase()) ? 'listed in routing.writing_functions'
      : undefined;
    if (where !== undefined) {
      ctx.fail(`routing.read_only_functions[${i}]`, `${show(r)} is a writing function (${where}), which never runs on a replica; remove it from read_only_functions`);
    }
  });
  const unknownFunctions: UnknownFunctionPolicy = routingRaw['unknown_functions'] === undefined || routingRaw['unknown_functions'] === null
    ? DEFAULT_CONFIG.routing.unknownFunctions
    : ctx.oneOf(routingRaw['unknown_functions'], UNKNOWN_FUNCTION_POLICIES, 'routing.unknown_functions', 'a policy for unknown functions');
  return { writingFunctions, readOnlyFunctions, unknownFunctions };
}
