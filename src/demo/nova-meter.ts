/**
 * What the Nova-like workload measures, and how: per task, the statements sent and where each read
 * actually ran (the server says, through pg_is_in_recovery()), so that a run shows which reads a replica
 * served rather than what the routing rules intend.
 */
import type pg from 'pg';
import { API_REQUESTS, COMPUTE_TASKS, type NovaTaskName, type ResolvedNovaWorkloadOptions } from './nova-workload-options.js';

/** What happened in one task (or one API request kind). */
export interface TaskCounters {
  /** Times the task ran (or requests of this kind were made). */
  runs: number;
  /** Statements sent. */
  statements: number;
  /** Reads in a tagged session without a hint: the proxy may serve them from a replica (0 when tagComputeSessions is false). */
  replicaReads: number;
  /** Reads that must see the primary: hinted ones in tagged sessions, and every read of an untagged session. */
  primaryReads: number;
  writes: number;
  /** Transactions opened with `BEGIN` (oslo mode; 0 in autocommit mode). */
  transactions: number;
  /** Of those, reader transactions in which a read ran on a replica (their BEGIN/ROLLBACK may have gone there too). */
  replicaTransactions: number;
  /** Reads that ran on a replica, as the server itself answered (pg_is_in_recovery()): measured, not intended. */
  readsOnReplica: number;
  /** Reads that ran on the primary (pg_is_in_recovery() false). */
  readsOnPrimary: number;
  /**
   * Reads that had to see the primary (API reads, hinted reads, any read of an untagged session) but ran
   * on a replica: must stay 0. Counted, not thrown, so that a run shows how many there were.
   */
  primaryReadsOnReplica: number;
  /** Statements that failed, plus checks that failed (see readYourWritesMisses). */
  errors: number;
  /** Wall time of all runs, and of the slowest one, in ms. */
  totalMs: number;
  maxMs: number;
  lastError?: string;
}

export interface NovaWorkloadStats {
  tasks: Record<NovaTaskName, TaskCounters>;
  /** An API session did not see its own write on the next statement (must stay 0: API sessions use the primary). */
  readYourWritesMisses: number;
  /** `_instance_usage_audit` found its period already logged only when inserting (must stay 0 thanks to the hint). */
  duplicateAudits: number;
  /** Bandwidth counters found below their last value (a reset or wrap), handled as Nova does. */
  bandwidthRollovers: number;
  /** ms the workload has been running (until stop). */
  elapsedMs: number;
}

/** Sums of counters over a group of tasks. */
export type CounterTotals = Pick<
  TaskCounters,
  | 'runs' | 'statements' | 'replicaReads' | 'primaryReads' | 'writes' | 'transactions' | 'replicaTransactions' | 'readsOnReplica' | 'readsOnPrimary'
  | 'primaryReadsOnReplica' | 'errors'
>;

export type StatementKind = 'replica-read' | 'primary-read' | 'write';

function emptyCounters(): TaskCounters {
  return {
    runs: 0, statements: 0, replicaReads: 0, primaryReads: 0, writes: 0, transactions: 0, replicaTransactions: 0, readsOnReplica: 0,
    readsOnPrimary: 0, primaryReadsOnReplica: 0, errors: 0, totalMs: 0, maxMs: 0,
  };
}

/** Sums the counters of the given tasks (default: all). */
export function sumCounters(stats: NovaWorkloadStats, tasks: readonly NovaTaskName[] = [...COMPUTE_TASKS, ...API_REQUESTS]): CounterTotals {
  const out: CounterTotals = {
    runs: 0, statements: 0, replicaReads: 0, primaryReads: 0, writes: 0, transactions: 0, replicaTransactions: 0, readsOnReplica: 0,
    readsOnPrimary: 0, primaryReadsOnReplica: 0, errors: 0,
  };
  for (const name of tasks) {
    const c = stats.tasks[name];
    out.runs += c.runs;
    out.statements += c.statements;
    out.replicaReads += c.replicaReads;
    out.primaryReads += c.primaryReads;
    out.writes += c.writes;
    out.transactions += c.transactions;
    out.replicaTransactions += c.replicaTransactions;
    out.readsOnReplica += c.readsOnReplica;
    out.readsOnPrimary += c.readsOnPrimary;
    out.primaryReadsOnReplica += c.primaryReadsOnReplica;
    out.errors += c.errors;
  }
  return out;
}

/** The columns {@link locateRead} adds to a read's result. */
interface LocatedRow {
  pgsplit_in_recovery: boolean;
  pgsplit_row: boolean | null;
  [column: string]: unknown;
}

const LOCATION_COLUMNS = new Set(['pgsplit_in_recovery', 'pgsplit_row']);
/** A comment at the start of a statement: pgsplit's hint, kept in front of the wrapper. */
const LEADING_COMMENT = /^\s*(\/\*[\s\S]*?\*\/)\s*/;

/**
 * Wraps a read so that it also says where it ran: one column `pgsplit_in_recovery` (true on a replica),
 * and exactly one row even when the read finds nothing (`pgsplit_row` is null then), because the reads
 * that matter most (has this audit period been logged? is the deleted instance gone?) usually return
 * none. A leading hint comment stays in front. The wrapper only reads, so pgsplit routes it exactly as it
 * routes the read inside.
 */
export function locateRead(sql: string): string {
  const m = LEADING_COMMENT.exec(sql);
  const hint = m ? `${m[1] ?? ''} ` : '';
  const body = m ? sql.slice(m[0].length) : sql;
  return (
    `${hint}SELECT w.pgsplit_in_recovery, q.* FROM (SELECT pg_is_in_recovery() AS pgsplit_in_recovery) w ` +
    `LEFT JOIN LATERAL (SELECT true AS pgsplit_row, r.* FROM (${body}) r) q ON true`
  );
}

/** Error raised for a failed workload check (not a SQL error). */
export class CheckFailed extends Error {}

/**
 * The measurement side of the workload: every statement goes through {@link NovaMeter.exec} (which
 * counts it, and for a read asks the server where it ran), every unit of work through
 * {@link NovaMeter.transaction}, every task run through {@link NovaMeter.run}.
 */
export class NovaMeter {
  readonly counters: Record<NovaTaskName, TaskCounters> = Object.fromEntries(
    [...COMPUTE_TASKS, ...API_REQUESTS].map((n) => [n, emptyCounters()]),
  ) as Record<NovaTaskName, TaskCounters>;
  /** See NovaWorkloadStats. */
  readYourWritesMisses = 0;
  duplicateAudits = 0;
  bandwidthRollovers = 0;
  readonly #options: ResolvedNovaWorkloadOptions;
  /** The transaction a session has open (oslo mode), with how many of its reads ran on a replica so far. */
  readonly #openTx = new WeakMap<pg.Client, { readsOnReplica: number }>();

  constructor(options: ResolvedNovaWorkloadOptions) {
    this.#options = options;
  }

  /**
   * Sends one statement and counts it under `task`. A read is sent wrapped by {@link locateRead}, and
   * counted by where it ran; the caller gets the read's own rows and columns only.
   */
  async exec<R extends pg.QueryResultRow = Record<string, unknown>>(
    client: pg.Client,
    task: NovaTaskName,
    kind: StatementKind,
    sql: string,
    params: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    const c = this.counters[task];
    c.statements++;
    if (kind === 'write') {
      c.writes++;
      return client.query<R>(sql, params);
    }
    // Only unhinted reads of tagged compute sessions may run on a replica; 'replica-read' is used by
    // compute tasks only, so an untagged (baseline) run counts them as reads for the primary.
    const mayUseReplica = kind === 'replica-read' && this.#options.tagComputeSessions;
    if (mayUseReplica) c.replicaReads++;
    else c.primaryReads++;
    const res = await client.query<LocatedRow>(locateRead(sql), params);
    const first = res.rows[0];
    if (first === undefined) throw new CheckFailed(`${task}: a located read returned no row`);
    if (first.pgsplit_in_recovery === true) {
      c.readsOnReplica++;
      const tx = this.#openTx.get(client);
      if (tx) tx.readsOnReplica++;
      if (!mayUseReplica) c.primaryReadsOnReplica++;
    } else {
      c.readsOnPrimary++;
    }
    const rows: R[] = [];
    for (const row of res.rows) {
      if (row.pgsplit_row !== true) continue;
      const own: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(row)) if (!LOCATION_COLUMNS.has(k)) own[k] = v;
      rows.push(own as R);
    }
    return { ...res, rows, rowCount: rows.length, fields: res.fields.filter((f) => !LOCATION_COLUMNS.has(f.name)) };
  }

  /**
   * One unit of work as oslo.db's enginefacade sends it. oslo mode: `BEGIN`, the body, then `COMMIT` for a
   * writer or `ROLLBACK` for a reader (a reader session is closed uncommitted and the pool rolls the
   * connection back); on an error, `ROLLBACK` and the error goes on. autocommit mode: the body alone.
   * The location column of each read ({@link locateRead}) runs inside the transaction, so it reports the
   * server the transaction is on.
   */
  async transaction<T>(client: pg.Client, task: NovaTaskName, kind: 'reader' | 'writer', body: () => Promise<T>): Promise<T> {
    if (this.#options.clientMode === 'autocommit') return body();
    const c = this.counters[task];
    const tx = { readsOnReplica: 0 };
    await client.query('BEGIN');
    c.transactions++;
    this.#openTx.set(client, tx);
    try {
      const result = await body();
      await client.query(kind === 'writer' ? 'COMMIT' : 'ROLLBACK');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      this.#openTx.delete(client);
      if (tx.readsOnReplica > 0) c.replicaTransactions++;
    }
  }

  /** Runs one task, timing it and counting a failure (SQL error or failed check) as an error. */
  async run(task: NovaTaskName, body: () => Promise<void>): Promise<void> {
    const c = this.counters[task];
    const started = Date.now();
    c.runs++;
    try {
      await body();
    } catch (err) {
      c.errors++;
      c.lastError = err instanceof CheckFailed ? err.message : `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.trim();
    } finally {
      const ms = Date.now() - started;
      c.totalMs += ms;
      if (ms > c.maxMs) c.maxMs = ms;
    }
  }
}
