import { classifyCommonShape, type CommonShapePolicy } from './common-shape.js';
import { classifyQuery, classifyQueryFully, commonShapePolicy, type QueryClassification } from './statement-classifier.js';
import { functionPolicyOptions, type ClassifyOptions } from './classify-options.js';
import type { UnknownFunctionPolicy } from './function-policy.js';

export interface RouterOptions {
  /** Query texts remembered with their classification; default 5000. */
  cacheSize?: number;
  /** routing.writing_functions: names added to DEFAULT_WRITING_FUNCTIONS ('fn' or 'schema.fn'). */
  writingFunctions?: readonly string[];
  /** routing.read_only_functions: user functions vouched for as read-only ('fn' = any schema, or 'schema.fn'). */
  readOnlyFunctions?: readonly string[];
  /** routing.unknown_functions: where a statement calling an unknown function may go; default 'primary'. */
  unknownFunctions?: UnknownFunctionPolicy;
}

/** What the router needs to know about a session, besides the statements. */
export interface RouteContext {
  /** The session's reads may go to a replica (SET pgsplit.route, startup option, application_name, default). */
  tagged: boolean;
  /** Set once the session did something only the primary remembers (LISTEN, temp table, ...). */
  pinned: string | null;
  /** The session's standard_conforming_strings (default on): off changes how '...' strings end. */
  standardConformingStrings?: boolean;
  /**
   * The session's client_encoding, as the server reports it. In SJIS, BIG5, GBK, GB18030, UHC and JOHAB
   * a multibyte character can end in the byte of a backslash or quote, so text read as UTF-8 may be
   * split differently from how the server splits it: such sessions never read from a replica.
   */
  clientEncoding?: string;
}

/** Texts up to this length that take the classifier's fast path are not cached. */
const FAST_FIRST_MAX = 512;

const AMBIGUOUS_ENCODINGS = new Set(['SJIS', 'SHIFT_JIS_2004', 'BIG5', 'GBK', 'GB18030', 'UHC', 'JOHAB']);

/** True when statement text in this client encoding cannot be lexed safely as UTF-8. */
export function isAmbiguousEncoding(encoding: string | undefined): boolean {
  // UTF8 first: nearly every session reports it, and this runs for every unit of work.
  return encoding !== undefined && encoding !== 'UTF8' && AMBIGUOUS_ENCODINGS.has(encoding.toUpperCase());
}

export interface RouteDecision {
  target: 'primary' | 'replica';
  /** Short stable reason, for logs, metrics and `pgsplit explain`. */
  reason: string;
  /** Per query string, what the classifier found (the session applies their effects). */
  classifications: QueryClassification[];
}

/**
 * Decides where a unit of work (one simple query, or one Sync-delimited extended batch) may run. It only
 * decides: transaction affinity, open batches and connection failures belong to the session, which
 * executes. A statement that can write never gets 'replica', whatever the tags and hints say.
 *
 * Function policy (see ./function-policy.ts): a statement calling a function that is neither writing nor
 * known read-only goes to the primary ('unknown-function:<name>') unless `unknownFunctions: 'replica'`, or
 * its own query string carries a `pgsplit:route=replica` hint, vouches for it. Writing functions are never
 * vouched for.
 */
export class Router {
  // Two generations instead of LRU: eviction is dropping the older map, O(1) however full the cache is
  // (deleting the oldest key of a big Map costs microseconds in V8, on every miss).
  private cache = new Map<string, QueryClassification>();
  private older = new Map<string, QueryClassification>();
  private readonly cacheSize: number;
  private readonly classifyOptions: ClassifyOptions;
  private readonly policy: CommonShapePolicy;
  /** The last text classified (standard strings) and its classification: see classify. */
  private lastSql: string | null = null;
  private lastClassification: QueryClassification | null = null;

  /** Throws an Error for a function name that does not parse (resolveConfig has checked config values). */
  constructor(opts: RouterOptions = {}) {
    this.cacheSize = opts.cacheSize ?? 5000;
    this.classifyOptions = functionPolicyOptions(opts);
    this.policy = commonShapePolicy(this.classifyOptions);
  }

  /** Classifies a query string, remembering recent texts (prepared statements and ORMs repeat them). */
  classify(sql: string, standardConformingStrings = true): QueryClassification {
    if (!standardConformingStrings) {
      // Rare (a legacy setting): classified each time, never cached beside the standard reading.
      return classifyQuery(sql, { ...this.classifyOptions, standardConformingStrings: false });
    }
    // The same text as the last one asked (a driver's unnamed statement at each execution, pgbench's):
    // answered without hashing it or running the fast path again.
    if (sql === this.lastSql) return this.lastClassification as QueryClassification;
    const c = this.classifyStandard(sql);
    // Not a huge text: it would be held until the next one.
    if (sql.length <= 16384) {
      this.lastSql = sql;
      this.lastClassification = c;
    }
    return c;
  }

  /** classify under standard_conforming_strings = on: the cache, else the fast path, else the full classifier. */
  private classifyStandard(sql: string): QueryClassification {
    const hit = this.cache.get(sql);
    if (hit) return hit;
    const old = this.older.get(sql);
    if (old === undefined && sql.length <= FAST_FIRST_MAX) {
      // A short statement of a common shape is classified about as fast as it is cached, and caching it
      // would evict the long texts the cache is for (pgbench -M simple sends each text once).
      const fast = classifyCommonShape(sql, this.policy);
      if (fast !== undefined) return fast;
    }
    const c = old ?? (sql.length <= FAST_FIRST_MAX ? classifyQueryFully(sql, this.classifyOptions) : classifyQuery(sql, this.classifyOptions));
    if (sql.length <= 16384) {
      if (this.cache.size >= this.cacheSize / 2) {
        this.older = this.cache;
        this.cache = new Map();
      }
      this.cache.set(sql, c);
    }
    return c;
  }

  decide(queries: readonly string[], ctx: RouteContext): RouteDecision {
    const scs = ctx.standardConformingStrings !== false;
    const classifications = queries.map((q) => this.classify(q, scs));
    if (classifications.length === 0) return { target: 'primary', reason: 'no-statement', classifications };
    if (isAmbiguousEncoding(ctx.clientEncoding)) return { target: 'primary', reason: 'client-encoding', classifications };
    let hintReplica = false;
    for (const c of classifications) {
      if (c.hints.route === 'primary') return { target: 'primary', reason: 'hint-primary', classifications };
      if (c.hints.route === 'replica') hintReplica = true;
    }
    if (ctx.pinned) return { target: 'primary', reason: `pinned:${ctx.pinned}`, classifications };
    for (const c of classifications) {
      if (c.replicaSafe || isReadOnlyBegin(c)) continue;
      // A route=replica hint vouches for the functions its statement calls, never for a write.
      if (c.hints.route === 'replica' && onlyUnknownFunctions(c)) continue;
      return { target: 'primary', reason: c.reason, classifications };
    }
    if (hintReplica) return { target: 'replica', reason: 'hint-replica', classifications };
    if (ctx.tagged) return { target: 'replica', reason: 'tagged-read', classifications };
    return { target: 'primary', reason: 'untagged', classifications };
  }
}

/**
 * `BEGIN READ ONLY` (alone or followed by reads in the same string) may open a transaction on a replica:
 * the server itself then refuses any write inside it.
 */
function isReadOnlyBegin(c: QueryClassification): boolean {
  if (c.statements.length === 0) return false;
  return c.statements.every((s) => s.replicaSafe || s.transaction === 'begin-read-only');
}

/** Every statement that is not replica-safe is so only because it calls a function the router does not know. */
function onlyUnknownFunctions(c: QueryClassification): boolean {
  if (c.statements.length === 0) return false;
  return c.statements.every((s) => s.replicaSafe || s.reason.startsWith('unknown-function:') || s.reason.startsWith('explain:unknown-function:'));
}
