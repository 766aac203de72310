/**
 * The truth about the pg-regress corpus from PostgreSQL itself: does a statement the classifier calls
 * replica-safe write?
 *
 * A real server (LocalCluster, no replicas) gets the suite's tables: a fresh database `regression`, into
 * which sql/test_setup.sql is loaded with psql (PG_ABS_SRCDIR = the corpus folder; errors ignored, e.g.
 * the CREATE FUNCTION ... regress.so lines). Then every file of parallel_schedule runs, in schedule order,
 * one statement at a time over its own connection (as psql would send it, via the simple query protocol),
 * all files in the same database so that later files find the objects earlier ones made (as under
 * pg_regress). Before a statement runs normally, it is probed:
 *   BEGIN READ ONLY; SET LOCAL statement_timeout = '2s'; SET LOCAL lock_timeout = '1s'  /  <stmt>  /  ROLLBACK
 * (inside a transaction the file opened: SAVEPOINT; SET LOCAL transaction_read_only = on; ... ROLLBACK TO
 * SAVEPOINT). SQLSTATE 25006 (read_only_sql_transaction) means the statement writes.
 *
 * Probed: every statement the classifier calls replica-safe, and every other statement whose kind is not
 * transaction control or session state (those would disturb the probe, and are not writes anyway).
 * A safe statement whose probe did not get 25006 is not run again (it is a read: running it changes
 * nothing); every other statement then runs normally, so that later statements find their objects.
 *
 * Asserted: no classified-safe statement gets 25006 (offenders are printed with file, SQLSTATE and
 * message), and none ends the probe's transaction. Reported: safe statements that ran OK read-only
 * (verified reads), failed otherwise ('unknown': mostly objects a skipped psql meta-command or another
 * file would have made), were not probed; and the statements classified unsafe that ran fine read-only
 * (missed reads), by classifier reason.
 *
 * What this cannot see: writes a read-only transaction allows (temporary tables and sequences), and
 * session changes (set_config, advisory locks): the classifier's deny list and test/classifier-oracle
 * cover those.
 *
 * Knobs: PGSPLIT_TRUTH_BUDGET_MS (default 210000) bounds the whole run: when it is spent, the remaining
 * unsafe statements are no longer probed and, past 1.1 x the budget, the remaining files are skipped;
 * PGSPLIT_TRUTH_FILE_MS (default 30000) bounds one file; PGSPLIT_TRUTH_ONLY=a,b runs only those files.
 */
import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, delimiter } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { classifyQuery, type QueryClassification } from '../src/router/statement-classifier.js';
import { lexSql } from '../src/router/sql-lexer.js';
import { findCorpusDir, readCorpusScript, scheduledFiles, splitCorpusScript } from './fixtures/pg-regress-corpus.js';

const execFileAsync = promisify(execFile);

function findPsql(): string | undefined {
  const dirs: string[] = [];
  try {
    dirs.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    // no pg_config
  }
  if (process.env.PG_BINDIR) dirs.push(process.env.PG_BINDIR);
  for (const p of (process.env.PATH ?? '').split(delimiter)) if (p) dirs.push(p);
  return dirs.map((d) => join(d, 'psql')).find((f) => existsSync(f));
}

const corpus = findCorpusDir({ requireSchedule: true });
const psql = findPsql();
const skip = !corpus ? 'pg-regress corpus not found (set PGSPLIT_CORPUS_DIR)' : !psql ? 'psql not found' : false;

const BUDGET_MS = Number(process.env.PGSPLIT_TRUTH_BUDGET_MS ?? '210000');
const FILE_MS = Number(process.env.PGSPLIT_TRUTH_FILE_MS ?? '30000');
const ONLY = (process.env.PGSPLIT_TRUTH_ONLY ?? '').split(',').filter((s) => s !== '');
const DB = 'regression';

/** The statements of a corpus file, as test/fixtures/pg-regress-corpus.ts reads them. */
function statementsOf(file: string): string[] {
  return splitCorpusScript(readCorpusScript(file)).statements.map((s) => s.text);
}

/** SELECT / WITH / VALUES / TABLE / ( / EXPLAIN / SHOW / COPY: the statements that can be reads. */
function isQueryShaped(sql: string): boolean {
  const t0 = lexSql(sql).statements[0]?.[0];
  if (!t0) return false;
  if (t0.isPunct('(')) return true;
  return ['select', 'with', 'values', 'table', 'explain', 'show', 'copy'].some((w) => t0.is(w));
}

// ---------------------------------------------------------------------------------------------------
// A session that knows its transaction status

type TxStatus = 'I' | 'T' | 'E';

interface Outcome {
  ok: boolean;
  code?: string;
  message?: string;
  /** The client gave up (the connection was replaced). */
  lost?: boolean;
}

class Session {
  client!: pg.Client;
  status: TxStatus = 'I';
  constructor(private readonly port: number) {}

  async open(): Promise<void> {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: this.port,
      user: 'postgres',
      database: DB,
      connectionTimeoutMillis: 10_000,
      // as pg_regress's environment: PGDATESTYLE, PGTZ, intervalstyle; plus bounds for the normal runs
      options: "-c datestyle=Postgres,MDY -c timezone=America/Los_Angeles -c intervalstyle=postgres_verbose -c statement_timeout=5s -c lock_timeout=2s",
      query_timeout: 20_000,
      // no type parsing: values stay text (nothing can fail in JavaScript)
      types: { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig,
    });
    client.on('error', () => {});
    client.on('notice', () => {});
    await client.connect();
    const con = (client as unknown as { connection: { on(ev: 'readyForQuery', f: (m: { status: string }) => void): void } }).connection;
    con.on('readyForQuery', (m) => {
      if (this.client !== client) return;
      this.status = m.status as TxStatus;
      this.readyCount++;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    this.client = client;
    this.status = 'I';
  }

  txStatus(): TxStatus {
    return this.status;
  }

  private readyCount = 0;
  private waiters: Array<() => void> = [];

  /** node-postgres settles a failed query at ErrorResponse, before ReadyForQuery tells the new status. */
  private async readyAfter(count: number): Promise<void> {
    while (this.readyCount <= count) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  async run(sql: string): Promise<Outcome> {
    const before = this.readyCount;
    try {
      await this.client.query({ text: sql, rowMode: 'array' } as pg.QueryConfig);
      await this.readyAfter(before);
      return { ok: true };
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown };
      if (typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)) {
        await this.readyAfter(before);
        return { ok: false, code: err.code, message: String(err.message) };
      }
      // not a server error: a client-side timeout or a lost connection; start over with a new one
      await this.close();
      await this.open();
      return { ok: false, lost: true, message: String(err.message ?? e) };
    }
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------------

const bump = (m: Map<string, number>, k: string): void => {
  m.set(k, (m.get(k) ?? 0) + 1);
};
const top = (m: Map<string, number>, n = 15): string =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';
const short = (s: string, n = 200): string => JSON.stringify(s.length > n ? s.slice(0, n) + '…' : s);

type ProbeResult = 'ok' | '25006' | 'error' | 'escaped' | 'aborted' | 'lost';

t.test('PostgreSQL says which statements write: no classified-safe statement gets 25006', { skip }, async (t) => {
  const started = Date.now();
  const corpusDir = corpus!;
  const cluster = await LocalCluster.start({ replicas: 0, settings: { autovacuum: 'off', max_prepared_transactions: '2' } });
  t.teardown(() => cluster.stop());
  const port = cluster.primary.port;

  // -- the suite's tables
  await cluster.primary.query(`CREATE DATABASE ${DB} TEMPLATE template0`);
  const setupStarted = Date.now();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  Object.assign(env, {
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: 'postgres',
    PGDATABASE: DB,
    PGTZ: 'America/Los_Angeles',
    PGDATESTYLE: 'Postgres, MDY',
    LC_MESSAGES: 'C',
    PG_ABS_SRCDIR: corpusDir,
    PG_ABS_BUILDDIR: corpusDir,
    PG_LIBDIR: '/nonexistent',
    PG_DLSUFFIX: '.so',
  });
  const setup = await execFileAsync(psql!, ['-X', '-q', '-f', join(corpusDir, 'sql', 'test_setup.sql')], {
    env,
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  }).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '' }));
  const setupErrors = setup.stderr.split('\n').filter((l) => /ERROR/.test(l));
  const [{ n: tenk1 } = { n: '0' }] = await cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM tenk1', [], DB);
  t.equal(tenk1, '10000', `test_setup.sql loaded (tenk1 has ${tenk1} rows; ${setupErrors.length} psql errors, ${Date.now() - setupStarted} ms)`);
  for (const e of setupErrors.slice(0, 5)) t.comment(`test_setup: ${e}`);

  // -- the files
  const schedule = scheduledFiles(corpusDir);
  const all = schedule.files;
  const files = ONLY.length > 0 ? all.filter((f) => ONLY.includes(f)) : all;
  const session = new Session(port);

  let statements = 0;
  let safe = 0;
  const safeResult = new Map<ProbeResult, number>();
  const safeErrors = new Map<string, number>();
  const offenders: string[] = [];
  const escaped: string[] = [];
  let unsafe = 0;
  let unsafeProbed = 0;
  const unsafeNotProbed = new Map<string, number>();
  const unsafeResult = new Map<ProbeResult, number>();
  const missedByReason = new Map<string, number>();
  const missedExamples = new Map<string, string[]>();
  /** Unsafe statements that are not queries but ran read-only anyway (temp-table DML, ANALYZE, DO, ...). */
  const allowedNonQueries = new Map<string, number>();
  let unsafe25006 = 0;
  const skippedFiles: string[] = [];
  const slowFiles: string[] = [];
  let lostConnections = 0;

  /** Probes `sql` read-only; `sql` must not be transaction control. */
  const probe = async (sql: string): Promise<{ result: ProbeResult; out?: Outcome; inTx?: boolean }> => {
    if (session.status === 'E') return { result: 'aborted' };
    const statusBefore = session.status;
    const inTx = session.status === 'T';
    const open = inTx
      ? "SAVEPOINT pgsplit_probe; SET LOCAL transaction_read_only = on; SET LOCAL statement_timeout = '2s'; SET LOCAL lock_timeout = '1s'"
      : "BEGIN READ ONLY; SET LOCAL statement_timeout = '2s'; SET LOCAL lock_timeout = '1s'";
    const o = await session.run(open);
    if (!o.ok) throw new Error(`cannot open the probe (${o.code} ${o.message}) for ${short(sql)} in ${currentFile}, status was ${statusBefore}`);
    const out = await session.run(sql);
    if (out.lost) {
      lostConnections++;
      return { result: 'lost', out };
    }
    const now: TxStatus = session.txStatus(); // (a fresh read: TypeScript would keep the narrowing from above)
    const stillOpen = now === 'T' || now === 'E';
    if (!stillOpen) return { result: 'escaped', out };
    const close = await session.run(inTx ? 'ROLLBACK TO SAVEPOINT pgsplit_probe; RELEASE SAVEPOINT pgsplit_probe' : 'ROLLBACK');
    if (!close.ok) {
      // The statement did something to the savepoint (RELEASE, ROLLBACK TO another one): give up on the file's transaction.
      await session.run('ROLLBACK');
      return { result: 'escaped', out };
    }
    if (out.ok) return { result: 'ok', out, inTx };
    return { result: out.code === '25006' ? '25006' : 'error', out, inTx };
  };

  let currentFile = '';
  for (const name of files) {
    currentFile = name;
    const elapsed = Date.now() - started;
    if (elapsed > BUDGET_MS * 1.1) {
      skippedFiles.push(name);
      continue;
    }
    const fileStarted = Date.now();
    await session.open();
    try {
      for (const sql of statementsOf(join(corpusDir, 'sql', `${name}.sql`))) {
        if (Date.now() - fileStarted > FILE_MS) {
          slowFiles.push(name);
          break;
        }
        statements++;
        const c: QueryClassification = classifyQuery(sql);
        if (c.replicaSafe) {
          safe++;
          const p = await probe(sql);
          bump(safeResult, p.result);
          if (p.result === '25006') offenders.push(`${name}: ${short(sql, 400)} -> ${p.out?.code} ${p.out?.message}`);
          if (p.result === 'escaped') escaped.push(`${name}: ${short(sql, 400)}`);
          if (p.result === 'error') bump(safeErrors, p.out?.code ?? '?');
          // A read that did not write needs no second run, except that an error inside the file's own
          // transaction must abort it as it would under psql.
          if (p.result === 'ok' || p.result === 'lost' || (p.result === 'error' && !p.inTx)) continue;
          await session.run(sql);
          continue;
        }
        unsafe++;
        const kind = c.statements.find((s) => !s.replicaSafe)?.kind ?? 'unknown';
        const probeIt = kind !== 'transaction' && kind !== 'session' && Date.now() - started < BUDGET_MS;
        if (!probeIt) bump(unsafeNotProbed, Date.now() - started < BUDGET_MS ? kind : 'time budget spent');
        else {
          unsafeProbed++;
          const p = await probe(sql);
          bump(unsafeResult, p.result);
          if (p.result === '25006') unsafe25006++;
          if (p.result === 'ok') {
            if (isQueryShaped(sql)) {
              bump(missedByReason, c.reason);
              const ex = missedExamples.get(c.reason) ?? [];
              if (ex.length < 3) ex.push(short(sql, 120));
              missedExamples.set(c.reason, ex);
            } else bump(allowedNonQueries, c.reason);
          }
        }
        await session.run(sql);
      }
    } finally {
      await session.close();
    }
  }

  // -- results
  const ranOk = safeResult.get('ok') ?? 0;
  const failedOther = safeResult.get('error') ?? 0;
  const writes = safeResult.get('25006') ?? 0;
  const notProbed = (safeResult.get('aborted') ?? 0) + (safeResult.get('lost') ?? 0);
  for (const o of offenders.slice(0, 50)) t.comment(`CLASSIFIED SAFE BUT WRITES: ${o}`);
  for (const o of escaped.slice(0, 20)) t.comment(`CLASSIFIED SAFE BUT ENDED THE PROBE TRANSACTION: ${o}`);
  t.equal(writes, 0, 'no statement classified replica-safe gets SQLSTATE 25006 in a read-only transaction');
  t.equal(escaped.length, 0, 'no statement classified replica-safe ends or escapes the transaction it runs in');

  // sanity, so that a broken setup cannot pass vacuously
  t.ok(statements > 10000 || ONLY.length > 0 || skippedFiles.length > 0, `${statements} statements run`);
  t.ok(ranOk > safe * 0.5, `most safe statements ran read-only (${ranOk} of ${safe})`);
  t.ok(unsafe25006 > 1000 || ONLY.length > 0 || skippedFiles.length > 0, `the probe does catch writes (${unsafe25006} unsafe statements got 25006)`);

  const pct = (a: number, b: number): string => `${((100 * a) / Math.max(b, 1)).toFixed(1)}%`;
  const missed = [...missedByReason.values()].reduce((a, b) => a + b, 0);
  const allowed = [...allowedNonQueries.values()].reduce((a, b) => a + b, 0);
  t.comment(
    [
      `corpus truth: ${files.length - skippedFiles.length} of ${files.length} scheduled files run, ${statements} statements, ${((Date.now() - started) / 1000).toFixed(0)} s` +
        (skippedFiles.length ? `; skipped for time: ${skippedFiles.join(', ')}` : '') +
        (slowFiles.length ? `; cut short (> ${FILE_MS} ms): ${slowFiles.join(', ')}` : '') +
        (lostConnections ? `; ${lostConnections} lost connections` : '') +
        (schedule.unscheduled.length ? `; not in parallel_schedule, not run: ${schedule.unscheduled.join(', ')}` : ''),
      `classified replica-safe: ${safe}: ran OK read-only (verified reads) ${ranOk}, failed with another SQLSTATE (unknown) ${failedOther}, ` +
        `25006 (writes) ${writes}, not probed (file's transaction aborted, or connection lost) ${notProbed}, escaped the probe ${escaped.length}`,
      `  verified read or non-25006 failure: ${ranOk + failedOther} (${pct(ranOk + failedOther, safe)}); other SQLSTATEs: ${top(safeErrors, 10)}`,
      `classified unsafe: ${unsafe}: probed ${unsafeProbed} (${top(unsafeResult)}), not probed by kind: ${top(unsafeNotProbed)}`,
      `missed reads (queries classified unsafe that ran OK read-only): ${missed}; recall on queries that ran OK read-only: ${ranOk} of ${ranOk + missed} (${pct(ranOk, ranOk + missed)}); by reason: ${top(missedByReason, 20)}`,
      ...[...missedByReason.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([r]) => `  e.g. ${r}: ${(missedExamples.get(r) ?? []).join(' | ')}`),
      `other unsafe statements a read-only transaction allowed (not queries: DML on temporary tables, ANALYZE, LOCK, DO, CALL, ...; ` +
        `a standby refuses most of them): ${allowed}; by reason: ${top(allowedNonQueries, 12)}`,
    ].join('\n'),
  );
});
