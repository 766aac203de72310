import { classifyQuery, type QueryClassification } from './statement-classifier.js';

/** What the router needs to know about a session, besides the statements. */
export interface RouteContext {
  /** The session's reads may go to a replica (SET pgsplit.route, startup option, application_name, default). */
  tagged: boolean;
  /** Set once the session did something only the primary remembers (LISTEN, temp table, ...). */
  pinned: string | null;
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
 */
export class Router {
  private readonly cache = new Map<string, QueryClassification>();
  private readonly cacheSize: number;

  constructor(opts: { cacheSize?: number } = {}) {
    this.cacheSize = opts.cacheSize ?? 5000;
  }

  /** Classifies a query string, remembering recent texts (prepared statements and ORMs repeat them). */
  classify(sql: string): QueryClassification {
    const hit = this.cache.get(sql);
    if (hit) return hit;
    const c = classifyQuery(sql);
    if (sql.length <= 16384) {
      if (this.cache.size >= this.cacheSize) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(sql, c);
    }
    return c;
  }

  decide(queries: readonly string[], ctx: RouteContext): RouteDecision {
    const classifications = queries.map((q) => this.classify(q));
    if (classifications.length === 0) return { target: 'primary', reason: 'no-statement', classifications };
    let hintReplica = false;
    for (const c of classifications) {
      if (c.hints.route === 'primary') return { target: 'primary', reason: 'hint-primary', classifications };
      if (c.hints.route === 'replica') hintReplica = true;
    }
    if (ctx.pinned) return { target: 'primary', reason: `pinned:${ctx.pinned}`, classifications };
    for (const c of classifications) {
      if (!c.replicaSafe && !isReadOnlyBegin(c)) return { target: 'primary', reason: c.reason, classifications };
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
