/**
 * PostgreSQL's own parser (libpg-query: the server's gram.y and scan.l compiled to WASM) as an oracle for
 * the statement classifier, on the pg-regress corpus (../shared/corpus/pg-regress).
 *
 * For every statement the parser accepts, the parse tree says whether it is a plain read:
 * - SelectStmt (SELECT / VALUES / TABLE / set operations / WITH ... SELECT) with, anywhere in the tree, no
 *   INTO clause, no locking clause (FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE), no data-modifying
 *   statement (a CTE body that is INSERT / UPDATE / DELETE / MERGE) and no call of a known writing or
 *   session-changing function (a list kept here, independent of the classifier's, plus the classifier's
 *   own default list, so that the test also checks that every call the parser sees is one the classifier
 *   sees);
 * - VariableShowStmt (SHOW);
 * - ExplainStmt without ANALYZE (nothing is executed), or with ANALYZE of a plain read;
 * - CopyStmt TO STDOUT of a table or of a plain-read query.
 * Everything else (DML, DDL, utility, transaction control, SET, DECLARE, PREPARE, EXECUTE, ...) is not a
 * plain read.
 *
 * Asserted: every statement the classifier calls replicaSafe is a plain read per the parse tree (zero
 * writes classified safe), the classifier never throws, and its statement splitting agrees with the
 * parser's (every accepted statement is one statement to the parser; no statement the parser reads as one
 * was cut in two; files the parser accepts whole have the same number of statements).
 * Reported (t.comment): recall (parser-reads that the classifier classifies safe) and the top reasons it
 * refuses plain reads, with examples.
 *
 * Also: fast-check generates random statements (nested subqueries, CTEs with and without DML, set
 * operations, locking clauses, SELECT INTO, EXPLAIN [ANALYZE], COPY, writing and unknown functions,
 * strings and dollar quotes holding write keywords, comments between tokens) and the same rule is
 * asserted on every one the parser accepts.
 *
 * What the parse tree cannot know: whether a user-defined function writes. Such a statement counts as a
 * read here; test/classifier-corpus-truth.test.ts asks a real server.
 */
import t from 'tap';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadModule, parseSync } from 'libpg-query';
import { classifyQuery, type QueryClassification } from '../src/router/statement-classifier.js';
import { DEFAULT_WRITING_FUNCTIONS } from '../src/router/writing-functions.js';
import { lexSql } from '../src/router/sql-lexer.js';
import { corpusFiles, findCorpusDir, readCorpusScript, splitCorpusScript, sqlDir } from './fixtures/pg-regress-corpus.js';

const corpusDir = findCorpusDir();

// ---------------------------------------------------------------------------------------------------
// The oracle

/**
 * Functions that write, take locks, change or depend on session state, or signal other backends. Kept
 * independently of the classifier's list (names only; compared lowercased, without schema).
 */
const ORACLE_WRITING_FUNCTIONS = new Set([
  'nextval', 'setval', 'currval', 'lastval',
  'pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared',
  'pg_advisory_xact_lock', 'pg_advisory_xact_lock_shared', 'pg_try_advisory_xact_lock', 'pg_try_advisory_xact_lock_shared',
  'pg_advisory_unlock', 'pg_advisory_unlock_shared', 'pg_advisory_unlock_all',
  'lo_create', 'lo_creat', 'lo_import', 'lo_export', 'lo_unlink', 'lo_open', 'lo_close', 'lo_write', 'lo_put',
  'lo_truncate', 'lo_truncate64', 'lo_from_bytea', 'lowrite', 'loread', 'lo_lseek', 'lo_lseek64', 'lo_tell', 'lo_tell64',
  'txid_current', 'pg_current_xact_id', 'txid_current_if_assigned', 'pg_current_xact_id_if_assigned',
  'set_config', 'setseed', 'pg_notify',
  'pg_cancel_backend', 'pg_terminate_backend', 'pg_reload_conf', 'pg_rotate_logfile', 'pg_switch_wal',
  'pg_create_restore_point', 'pg_promote', 'pg_wal_replay_pause', 'pg_wal_replay_resume', 'pg_backup_start', 'pg_backup_stop',
  'pg_create_physical_replication_slot', 'pg_create_logical_replication_slot', 'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot', 'pg_copy_logical_replication_slot', 'pg_replication_slot_advance',
  'pg_logical_slot_get_changes', 'pg_logical_slot_get_binary_changes', 'pg_logical_slot_peek_changes',
  'pg_logical_slot_peek_binary_changes', 'pg_logical_emit_message', 'pg_log_standby_snapshot',
  'pg_replication_origin_create', 'pg_replication_origin_drop', 'pg_replication_origin_session_setup',
  'pg_replication_origin_session_reset', 'pg_replication_origin_xact_setup', 'pg_replication_origin_xact_reset',
  'pg_replication_origin_advance',
  'pg_stat_reset', 'pg_stat_reset_shared', 'pg_stat_reset_single_table_counters', 'pg_stat_reset_single_function_counters',
  'pg_stat_reset_slru', 'pg_stat_reset_replication_slot', 'pg_stat_reset_subscription_stats', 'pg_stat_statements_reset',
  'pg_log_backend_memory_contexts', 'pg_import_system_collations',
  'brin_summarize_new_values', 'brin_summarize_range', 'brin_desummarize_range', 'gin_clean_pending_list',
  'pg_file_write', 'pg_file_rename', 'pg_file_unlink', 'pg_file_sync',
  'dblink_exec', 'dblink_connect', 'dblink_connect_u', 'dblink_disconnect', 'dblink_open', 'dblink_close',
]);
const WRITING_FUNCTIONS = new Set([...ORACLE_WRITING_FUNCTIONS, ...DEFAULT_WRITING_FUNCTIONS]);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Verdict {
  read: boolean;
  /** Why not a read (first finding), or the statement type for a read. */
  why: string;
}

/** The first thing in a subtree that makes a query not a plain read, or undefined. */
function findWrite(node: Json | undefined): string | undefined {
  if (Array.isArray(node)) {
    for (const x of node) {
      const w = findWrite(x);
      if (w) return w;
    }
    return undefined;
  }
  if (!isObj(node)) return undefined;
  for (const [k, v] of Object.entries(node)) {
    switch (k) {
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return `data-modifying ${k}`;
      case 'intoClause':
        return 'SELECT INTO';
      case 'lockingClause':
        if (Array.isArray(v) && v.length > 0) return 'locking clause';
        break;
      case 'FuncCall': {
        if (isObj(v) && Array.isArray(v.funcname)) {
          const last = v.funcname[v.funcname.length - 1];
          const name = isObj(last) && isObj(last.String) && typeof last.String.sval === 'string' ? last.String.sval.toLowerCase() : '';
          if (WRITING_FUNCTIONS.has(name)) return `function ${name}`;
        }
        break;
      }
      default:
        break;
    }
    const w = findWrite(v);
    if (w) return w;
  }
  return undefined;
}

/** Whether an EXPLAIN option list turns ANALYZE on (`ANALYZE`, `ANALYZE true`, `analyze 1`, ...). */
function explainAnalyzes(options: Json | undefined): boolean {
  if (!Array.isArray(options)) return false;
  let on = false;
  for (const o of options) {
    if (!isObj(o) || !isObj(o.DefElem)) continue;
    const d = o.DefElem;
    if (d.defname !== 'analyze') continue;
    const arg = d.arg;
    if (arg === undefined || arg === null) {
      on = true;
      continue;
    }
    const text = JSON.stringify(arg).toLowerCase();
    on = !(/"(false|off|0|no)"/.test(text) || /"boolval":\{\}/.test(text) || /"ival":0\b/.test(text) || /"ival":\{\}/.test(text));
  }
  return on;
}

function verdict(stmt: Obj): Verdict {
  const [type, body] = Object.entries(stmt)[0] ?? ['?', null];
  switch (type) {
    case 'SelectStmt': {
      const w = findWrite(body);
      return w ? { read: false, why: w } : { read: true, why: type };
    }
    case 'VariableShowStmt':
      return { read: true, why: type };
    case 'ExplainStmt': {
      if (!isObj(body) || !isObj(body.query)) return { read: false, why: 'EXPLAIN without a query' };
      if (!explainAnalyzes(body.options)) return { read: true, why: 'ExplainStmt' };
      const inner = verdict(body.query);
      return inner.read ? { read: true, why: 'ExplainStmt ANALYZE' } : { read: false, why: `EXPLAIN ANALYZE of ${inner.why}` };
    }
    case 'CopyStmt': {
      if (!isObj(body)) return { read: false, why: type };
      if (body.is_from === true) return { read: false, why: 'COPY FROM' };
      if (body.is_program === true || typeof body.filename === 'string') return { read: false, why: 'COPY TO a file or program' };
      if (isObj(body.query)) {
        const inner = verdict(body.query);
        return inner.read ? { read: true, why: 'CopyStmt' } : { read: false, why: `COPY (${inner.why}) TO STDOUT` };
      }
      return { read: true, why: 'CopyStmt' };
    }
    default:
      return { read: false, why: type };
  }
}

interface Parsed {
  ok: boolean;
  stmts: Obj[];
  error?: string;
}

function parse(sql: string): Parsed {
  try {
    const r = parseSync(sql) as unknown as { stmts?: Array<{ stmt?: Json }> };
    const stmts = (r.stmts ?? []).map((s) => (isObj(s.stmt) ? s.stmt : {}));
    return { ok: true, stmts };
  } catch (e) {
    return { ok: false, stmts: [], error: e instanceof Error ? e.message : String(e) };
  }
}

// ---------------------------------------------------------------------------------------------------

interface Stmt {
  file: string;
  text: string;
  /** Offsets in the file's preprocessed SQL. */
  start: number;
  end: number;
}

const top = (m: Map<string, number>, n = 15): string =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
const bump = (m: Map<string, number>, k: string, by = 1): void => {
  m.set(k, (m.get(k) ?? 0) + by);
};
const short = (s: string, n = 160): string => JSON.stringify(s.length > n ? s.slice(0, n) + '…' : s);

t.test('libpg-query oracle on the pg-regress corpus', { skip: corpusDir ? false : 'pg-regress corpus not found (set PGSPLIT_CORPUS_DIR)' }, async (t) => {
  await loadModule();
  const dir = sqlDir(corpusDir!);
  const files = corpusFiles(corpusDir!);
  t.ok(files.length > 50, `${files.length} files`);

  let total = 0;
  let accepted = 0;
  let thrown = 0;
  let reads = 0;
  let readsSafe = 0;
  let safe = 0;
  let safeNotAccepted = 0;
  const unsafeSafe: string[] = []; // writes classified safe
  const multiStmt: string[] = []; // one statement to us, several to the parser
  const overSplit: string[] = []; // one statement to the parser, cut in two by us
  const wholeFileMismatch: string[] = [];
  let wholeFilesParsed = 0;
  const refusedReads = new Map<string, number>();
  const refusedExamples = new Map<string, string[]>();
  const readTypes = new Map<string, { total: number; safe: number }>();
  const notReadWhy = new Map<string, number>();
  const safeWhenNotAccepted = new Map<string, number>();

  for (const f of files) {
    const { sql, unterminated, statements } = splitCorpusScript(readCorpusScript(join(dir, f)));
    t.equal(unterminated, false, `${f}: lexes cleanly after psql preprocessing`);
    const stmts: Stmt[] = statements.map((s) => ({ file: f, ...s }));

    // Statement boundaries of the whole file, when the parser accepts all of it.
    const whole = parse(sql);
    if (whole.ok) {
      wholeFilesParsed++;
      if (whole.stmts.length !== stmts.length) wholeFileMismatch.push(`${f}: parser ${whole.stmts.length}, lexer ${stmts.length}`);
    }

    for (let k = 0; k < stmts.length; k++) {
      const s = stmts[k]!;
      total++;
      let c: QueryClassification;
      try {
        c = classifyQuery(s.text);
      } catch (e) {
        thrown++;
        t.fail(`classifier threw on ${short(s.text, 300)} (${f}): ${String(e)}`);
        continue;
      }
      if (c.replicaSafe) safe++;
      const p = parse(s.text);
      if (!p.ok) {
        if (c.replicaSafe) {
          safeNotAccepted++;
          bump(safeWhenNotAccepted, (p.error ?? '').replace(/"[^"]*"/g, '"…"').slice(0, 60));
        }
        // Is this half of a statement the parser reads as one?
        const next = stmts[k + 1];
        if (next) {
          const joined = parse(sql.slice(s.start, next.end));
          if (joined.ok && joined.stmts.length === 1) overSplit.push(`${f}: ${short(sql.slice(s.start, next.end), 300)}`);
        }
        continue;
      }
      accepted++;
      if (p.stmts.length !== 1) {
        multiStmt.push(`${f}: ${p.stmts.length} statements to the parser: ${short(s.text, 300)}`);
        continue;
      }
      const v = verdict(p.stmts[0]!);
      if (v.read) {
        reads++;
        const rt = readTypes.get(v.why) ?? { total: 0, safe: 0 };
        rt.total++;
        if (c.replicaSafe) {
          readsSafe++;
          rt.safe++;
        } else {
          bump(refusedReads, c.reason);
          const ex = refusedExamples.get(c.reason) ?? [];
          if (ex.length < 3) ex.push(short(s.text, 120));
          refusedExamples.set(c.reason, ex);
        }
        readTypes.set(v.why, rt);
      } else {
        bump(notReadWhy, v.why);
        if (c.replicaSafe) unsafeSafe.push(`${f}: parse tree says ${v.why}, classifier says safe (${c.reason}): ${short(s.text, 400)}`);
      }
    }
  }

  // -- the safety property
  t.equal(thrown, 0, 'the classifier never throws');
  for (const u of unsafeSafe.slice(0, 50)) t.comment(`WRITE CLASSIFIED SAFE: ${u}`);
  t.equal(unsafeSafe.length, 0, 'zero statements that are not plain reads per the parse tree are classified replica-safe');

  // -- statement splitting agrees with the parser
  for (const m of multiStmt.slice(0, 20)) t.comment(`split mismatch: ${m}`);
  t.equal(multiStmt.length, 0, 'no statement of ours is several statements to the parser');
  for (const m of overSplit.slice(0, 20)) t.comment(`over-split: ${m}`);
  t.equal(overSplit.length, 0, 'no statement the parser reads as one is cut in two');
  for (const m of wholeFileMismatch) t.comment(`whole-file count mismatch: ${m}`);
  t.equal(wholeFileMismatch.length, 0, `files the parser accepts whole (${wholeFilesParsed}) have the same statement count`);

  // -- sanity, so that a broken reader or parser cannot make the test pass vacuously
  t.ok(total > 15000, `${total} statements`);
  t.ok(accepted > total * 0.6, `the parser accepts ${accepted} of ${total}`);
  t.ok(reads > 5000, `${reads} plain reads per the parse tree`);

  // -- the report
  const pct = (a: number, b: number): string => `${((100 * a) / Math.max(b, 1)).toFixed(1)}%`;
  t.comment(`corpus: ${files.length} files, ${total} statements, parser accepts ${accepted} (${pct(accepted, total)}); whole files accepted: ${wholeFilesParsed}`);
  t.comment(`classified replica-safe: ${safe} (${safeNotAccepted} of them rejected by the parser: ${top(safeWhenNotAccepted, 5)})`);
  t.comment(`plain reads per the parse tree: ${reads}; classified safe: ${readsSafe}; recall ${pct(readsSafe, reads)}`);
  t.comment(`recall by statement type: ${[...readTypes.entries()].map(([k, v]) => `${k} ${v.safe}/${v.total}`).join(', ')}`);
  t.comment(`reads refused, by classifier reason: ${top(refusedReads)}`);
  for (const [reason] of [...refusedReads.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8)) {
    t.comment(`  e.g. ${reason}: ${(refusedExamples.get(reason) ?? []).join(' | ')}`);
  }
  t.comment(`not plain reads, by parse tree: ${top(notReadWhy, 20)}`);
});

// ---------------------------------------------------------------------------------------------------
// Generated statements: random queries with writes hidden at every depth, the parser as the judge.

const SEP = fc.constantFrom(' ', ' ', ' ', '\n', ' /* c */ ', '/**/', ' -- c\n', '\t');

/** Joins tokens with random separators (whitespace and comments; they must change nothing). */
const spaced = (parts: fc.Arbitrary<string[]>): fc.Arbitrary<string> =>
  parts.chain((ps) => fc.array(SEP, { minLength: ps.length, maxLength: ps.length }).map((seps) => ps.map((p, i) => (i === 0 ? p : seps[i]! + p)).join('')));

const SAFE_FUNCS = ['lower', 'upper', 'coalesce', 'abs', 'length', 'now', 'md5', 'pg_catalog.lower', '"lower"', 'count', 'sum'];
const FUNCS = [
  'my_fn', 's.my_fn', '"MyFn"', 'nextval_like', 'nextval', 'pg_catalog.nextval', '"nextval"', 'setval', 'currval', 'pg_advisory_xact_lock', 'pg_try_advisory_lock',
  'lo_import', 'txid_current', 'set_config', 'pg_notify', 'pg_terminate_backend', 'U&"\\006Eextval"',
];
const STRINGS = ["'x'", "'DELETE FROM t'", "'; INSERT INTO t VALUES (1); --'", "E'\\'; DELETE FROM t; --'", '$$ FOR UPDATE $$', "$q$ nextval('s') $q$", "U&'\\0041'"];

const { query: genQuery } = fc.letrec<{ expr: string; query: string; cte: string; core: string }>((tie) => ({
  expr: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'sql', withCrossShrink: true },
    { weight: 4, arbitrary: fc.constantFrom('1', 'a', 't.b', "'s'", '$1', 'NULL', 'true') },
    fc.constantFrom(...STRINGS),
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...SAFE_FUNCS), tie('expr')).map(([f, e]) => `${f}(${e})`) },
    fc.tuple(fc.constantFrom(...FUNCS), tie('expr')).map(([f, e]) => `${f}(${e})`),
    fc.tuple(tie('expr'), fc.constantFrom('+', '||', '=', '<', 'AND', 'OR'), tie('expr')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    tie('query').map((q) => `(${q})`),
    tie('query').map((q) => `EXISTS (${q})`),
    tie('query').map((q) => `ARRAY(${q})`),
    fc.tuple(tie('expr'), tie('expr')).map(([a, b]) => `CASE WHEN ${a} THEN ${b} ELSE NULL END`),
    fc.tuple(tie('expr'), tie('query')).map(([a, q]) => `${a} IN (${q})`),
  ),
  core: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'sql' },
    fc
      .tuple(fc.array(tie('expr'), { minLength: 1, maxLength: 3 }), fc.constantFrom('t', 'u AS x', 's.t', 'generate_series(1, 3) g', '"Tab"', 't JOIN u ON t.a = u.a'), fc.option(tie('expr')))
      .map(([targets, from, where]) => `SELECT ${targets.join(', ')} FROM ${from}${where !== null ? ` WHERE ${where}` : ''}`),
    fc.array(tie('expr'), { minLength: 1, maxLength: 2 }).map((es) => `SELECT ${es.join(', ')}`),
    fc.array(tie('expr'), { minLength: 1, maxLength: 2 }).map((es) => `VALUES (${es.join(', ')})`),
    fc.constantFrom('TABLE t', 'SELECT * FROM t', 'SELECT 1'),
    tie('query').map((q) => `SELECT * FROM (${q}) sub`),
    tie('query').map((q) => `SELECT * FROM t, LATERAL (${q}) l`),
  ),
  cte: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'sql' },
    { weight: 3, arbitrary: tie('query') },
    fc.constantFrom('INSERT INTO t VALUES (1) RETURNING *', 'DELETE FROM t RETURNING *', 'UPDATE t SET a = 1 RETURNING *', 'SELECT 1', 'TABLE t'),
    fc.constantFrom('MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE RETURNING *'),
  ),
  query: fc
    .tuple(
      fc.option(fc.array(fc.tuple(fc.constantFrom('c1', 'c2', 'update_log'), fc.constantFrom('', 'MATERIALIZED ', 'NOT MATERIALIZED '), tie('cte')), { minLength: 1, maxLength: 2 }), { freq: 3 }),
      tie('core'),
      fc.option(fc.tuple(fc.constantFrom('UNION', 'UNION ALL', 'EXCEPT', 'INTERSECT'), tie('core')), { freq: 4 }),
      fc.option(
        fc.oneof(
          fc.constantFrom('FOR UPDATE', 'FOR NO KEY UPDATE', 'FOR SHARE', 'FOR KEY SHARE', 'FOR UPDATE OF t NOWAIT', 'FOR SHARE SKIP LOCKED'),
          { weight: 3, arbitrary: fc.constantFrom('FOR READ ONLY', 'LIMIT 1', 'ORDER BY 1', 'OFFSET 1 ROWS FETCH FIRST 1 ROW ONLY', 'ORDER BY a FOR READ ONLY') },
        ),
        { freq: 3 },
      ),
    )
    .map(([ctes, core, setop, tail]) => {
      const withPart = ctes ? `WITH ${ctes.map(([n, m, b], i) => `${n}${i} AS ${m}(${b})`).join(', ')} ` : '';
      const body = setop ? `(${core}) ${setop[0]} (${setop[1]})` : core;
      return `${withPart}${body}${tail ? ` ${tail}` : ''}`;
    }),
}));

const genStatement: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: genQuery },
  { weight: 1, arbitrary: genQuery.map((q) => `(${q})`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('EXPLAIN', 'EXPLAIN ANALYZE', 'EXPLAIN (ANALYZE, BUFFERS)', 'EXPLAIN (COSTS OFF)', 'EXPLAIN VERBOSE', 'EXPLAIN (ANALYZE false)'), genQuery).map(([e, q]) => `${e} ${q}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('EXPLAIN', 'EXPLAIN ANALYZE', 'EXPLAIN (ANALYZE)'), fc.constantFrom('INSERT INTO t VALUES (1)', 'DELETE FROM t', 'UPDATE t SET a = 1', 'CREATE TABLE x AS SELECT 1', 'SELECT 1 INTO x')).map(([e, q]) => `${e} ${q}`) },
  { weight: 1, arbitrary: genQuery.map((q) => `COPY (${q}) TO STDOUT`) },
  { weight: 1, arbitrary: fc.constantFrom('COPY t TO STDOUT', 'COPY t (a) TO STDOUT WITH (FORMAT csv)', "COPY t TO '/tmp/x'", 'COPY t FROM STDIN', 'COPY t TO PROGRAM \'cat\'', 'SHOW search_path', 'SHOW ALL') },
  { weight: 1, arbitrary: fc.tuple(fc.array(fc.constantFrom('a', '1', "nextval('s')"), { minLength: 1, maxLength: 2 }), fc.constantFrom('x', 'TEMP x', 'TABLE x')).map(([ts, into]) => `SELECT ${ts.join(', ')} INTO ${into} FROM t`) },
  { weight: 1, arbitrary: genQuery.map((q) => `INSERT INTO t ${q}`) },
  { weight: 1, arbitrary: genQuery.map((q) => `DECLARE c CURSOR FOR ${q}`) },
  { weight: 1, arbitrary: genQuery.map((q) => `CREATE TABLE x AS ${q}`) },
);

/** Re-spaces a statement: every single space may become a newline or a comment (outside literals). */
const respaced: fc.Arbitrary<string> = genStatement.chain((s) => {
  const toks = lexSql(s).statements.flat();
  if (toks.length === 0) return fc.constant(s);
  const parts: string[] = toks.map((tk) => s.slice(tk.start, tk.end));
  return spaced(fc.constant(parts)).map((x) => (lexSql(x).statements.length === 1 ? x : s));
});

t.test('generated statements: the classifier never calls a parser-write safe', async (t) => {
  await loadModule();
  let accepted = 0;
  let safeCount = 0;
  let readCount = 0;
  const runs = Math.round(Number(process.env.FC_RUNS ?? '1') * 5000);
  fc.assert(
    fc.property(fc.oneof(genStatement, respaced), (sql) => {
      const c = classifyQuery(sql);
      const p = parse(sql);
      if (!p.ok || p.stmts.length !== 1) return true; // not SQL the server would run: nothing to judge
      accepted++;
      const v = verdict(p.stmts[0]!);
      if (v.read) readCount++;
      if (c.replicaSafe) safeCount++;
      if (c.replicaSafe && !v.read) throw new Error(`classified replica-safe (${c.reason}) but the parse tree says ${v.why}: ${sql}`);
      return true;
    }),
    { numRuns: runs, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) },
  );
  t.ok(accepted > runs / 3, `${accepted} of ${runs} generated statements parse`);
  t.ok(readCount > 50 && safeCount > 50, `both sides are exercised (${readCount} parser-reads, ${safeCount} classified safe)`);
  t.comment(`generated: ${accepted} parsed, ${readCount} reads per the parse tree, ${safeCount} classified safe`);
});

t.test('oracle self-check on hand-written statements', async (t) => {
  await loadModule();
  const cases: [string, boolean][] = [
    ['SELECT 1', true],
    ['SELECT * FROM t WHERE a IN (SELECT b FROM u)', true],
    ['VALUES (1)', true],
    ['TABLE t', true],
    ['SHOW search_path', true],
    ['EXPLAIN INSERT INTO t VALUES (1)', true],
    ['EXPLAIN ANALYZE SELECT 1', true],
    ['EXPLAIN (ANALYZE false) DELETE FROM t', true],
    ['EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t', false],
    ['EXPLAIN ANALYZE SELECT nextval(1)', false],
    ['COPY t TO STDOUT', true],
    ['COPY (SELECT 1) TO STDOUT', true],
    ["COPY t TO '/tmp/x'", false],
    ['COPY t FROM STDIN', false],
    ['COPY (SELECT * FROM t FOR UPDATE) TO STDOUT', false],
    ['SELECT * FROM t FOR UPDATE', false],
    ['SELECT * FROM (SELECT * FROM t FOR SHARE) s', false],
    ['SELECT * INTO u FROM t', false],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', false],
    ['WITH x AS (SELECT 1), y AS (WITH z AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT * FROM z) SELECT 1', false],
    ["SELECT nextval('s')", false],
    ["SELECT pg_catalog.\"nextval\"('s')", false],
    ["SELECT 1 WHERE EXISTS (SELECT set_config('a.b', 'c', true))", false],
    ['DECLARE c CURSOR FOR SELECT 1', false],
    ['INSERT INTO t VALUES (1)', false],
    ['SET x = 1', false],
  ];
  for (const [sql, read] of cases) {
    const p = parse(sql);
    t.ok(p.ok && p.stmts.length === 1, `parses: ${sql}`);
    const v = verdict(p.stmts[0] ?? {});
    t.equal(v.read, read, `${sql}: ${v.why}`);
  }
});
