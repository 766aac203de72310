/**
 * The classifier's fast path (src/router/common-shape.ts) must return exactly what the full path (lexer
 * and statement rules) returns, or nothing. Checked differentially:
 *
 * 1. every statement of the pg-regress corpus, each alone and with `;` and whitespace after it;
 * 2. the statements of the classifier benchmark (pgbench, an OLTP mix): here the fast path must also
 *    answer, or the benchmark would measure the full path under the fast path's name;
 * 3. a table of edge cases at the fast path's borders (each must give up or agree);
 * 4. random strings (fast-check) built from the characters and words where the two paths could part:
 *    quotes of every kind, comments, dollar quotes, `$n`, dots, `;`, U&, E'', function calls, FOR, INTO,
 *    non-ASCII, under three function policies.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { classifyCommonShape } from '../src/router/common-shape.js';
import { classifyQuery, classifyQueryFully } from '../src/router/statement-classifier.js';
import { functionPolicyOptions, type ClassifyOptions } from '../src/router/classify-options.js';
import { DEFAULT_WRITING_FUNCTION_PREFIXES, DEFAULT_WRITING_FUNCTIONS } from '../src/router/writing-functions.js';
import { KNOWN_BUILTIN_READ_ONLY_FUNCTIONS } from '../src/router/function-policy.js';
import { join } from 'node:path';
import { corpusFiles, findCorpusDir, readCorpusScript, splitCorpusScript, sqlDir } from './fixtures/pg-regress-corpus.js';

const DEFAULT_POLICY = {
  fns: DEFAULT_WRITING_FUNCTIONS,
  prefixes: DEFAULT_WRITING_FUNCTION_PREFIXES,
  lookup: { builtins: KNOWN_BUILTIN_READ_ONLY_FUNCTIONS, readOnly: new Set<string>() },
};

const POLICIES: Array<[string, ClassifyOptions | undefined]> = [
  ['default', undefined],
  ['unknown_functions=replica', functionPolicyOptions({ unknownFunctions: 'replica' })],
  ['writing_functions=[audit_touch], read_only_functions=[report.total]', functionPolicyOptions({ writingFunctions: ['audit_touch'], readOnlyFunctions: ['report.total', 'score'] })],
];

/** classifyQuery (fast path first) equals the full path; returns whether the fast path answered. */
function agree(t: Test, sql: string, options?: ClassifyOptions): { same: boolean; fast: boolean } {
  const fast = classifyQuery(sql, options);
  const full = classifyQueryFully(sql, options);
  const same = JSON.stringify(fast) === JSON.stringify(full);
  if (!same) t.same(fast, full, `fast path differs from the full path for ${JSON.stringify(sql.slice(0, 200))}`);
  return { same, fast: classifyCommonShape(sql, DEFAULT_POLICY) !== undefined };
}

const corpusDir = findCorpusDir();

t.test('every statement of the pg-regress corpus', { skip: corpusDir ? false : 'pg-regress corpus not found (set PGSPLIT_CORPUS_DIR)' }, (t) => {
  const dir = corpusDir!;
  let total = 0;
  let fast = 0;
  let differ = 0;
  for (const file of corpusFiles(dir)) {
    for (const st of splitCorpusScript(readCorpusScript(join(sqlDir(dir), file))).statements) {
      for (const sql of [st.text, `${st.text};\n`, `  ${st.text} ;  `]) {
        total++;
        const r = agree(t, sql);
        if (!r.same) differ++;
        if (r.fast) fast++;
      }
    }
  }
  t.equal(differ, 0, `${total} texts, the two paths agree on all`);
  // The corpus is mostly DDL and odd SQL, yet thousands of its statements have a common shape.
  t.ok(fast > 3000, `the fast path answered ${fast} of ${total} corpus texts`);
  t.comment(`corpus: ${total} texts, fast path answered ${fast} (${((fast / total) * 100).toFixed(1)} %)`);
  t.end();
});

t.test('benchmark statements take the fast path and agree', (t) => {
  let n = 0;
  let fast = 0;
  for (let k = 0; k < 2000; k++) {
    const aid = 1 + ((k * 7919) % 100000);
    const texts = [
      'BEGIN;',
      `UPDATE pgbench_accounts SET abalance = abalance + ${k - 1000} WHERE aid = ${aid};`,
      `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
      `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${k % 10}, 1, ${aid}, ${k}, CURRENT_TIMESTAMP);`,
      'END;',
      `SELECT * FROM orders WHERE customer_id = ${aid} AND status = 'paid' ORDER BY created_at DESC LIMIT 20`,
      `SELECT count(*) FROM sessions WHERE user_id = $1 AND expires_at > now()`,
      `SELECT p.id, p.title, p.price FROM products p JOIN stock s ON s.product_id = p.id WHERE p.category_id = ${k} LIMIT 50`,
      `SELECT name FROM users WHERE name = 'o''brien' AND deleted_at IS NULL`,
      `DELETE FROM cart_items WHERE cart_id = ${aid} AND product_id = ${k}`,
      `INSERT INTO events (user_id, kind, payload) VALUES (${aid}, 'login', '{"ip": "10.0.0.${k % 256}"}') RETURNING id`,
    ];
    for (const sql of texts) {
      n++;
      const r = agree(t, sql);
      if (r.fast) fast++;
    }
  }
  t.equal(fast, n, `the fast path answered all ${n} benchmark statements`);
  t.end();
});

t.test('edge cases at the fast path borders: it gives up or agrees', (t) => {
  const cases = [
    // what the fast path answers
    'select 1', 'SELECT 1;', 'select 1 ;  \n', 'VALUES (1), (2)', 'TABLE t', 'begin', 'END;', 'commit', 'ROLLBACK;',
    'select $1::int', 'select 1.5e-3, .5, 0x1F, 1_000, 1..2', "select 'a''b'", "select 'a'\n'b'", "select 'a'  'b'",
    'select a.b, t.* from s.t', 'select count(*), now(), lower(x) from t', 'select x from t where y in (1, 2)',
    'select exists (select 1)', 'select a$b from t', 'select 1 <> 2, 3 >= 4, a || b, c ~* d, e @> f',
    'select (1)', 'select array[1,2][1]', 'select x::text from t', 'select x from t where a = -1',
    'insert into t values (nextval(\'s\'))', 'update t set a = a + 1', 'delete from t',
    // where it must give up
    'select 1; select 2', 'select 1 -- c', 'select /* c */ 1', 'select 1 /*pgsplit:route=primary*/',
    'select "A" from t', 'select $$x$$', 'select $a$x$a$', "select E'a\\'b'", "select e'x'", "select B'01'", "select X'1f'",
    "select N'x'", "select U&'d\\0061t'", 'select U&"a" from t', 'select u & 1', "select 'unterminated", 'select nextval(1)',
    "select nextval('s')", 'select pg_advisory_lock(1)', 'select myfunc(1)', 'select s.count(1)', 'select x from t for update',
    'select x into y from t', 'select insert from t', 'select 1 for', 'select café from t', 'select \\x', 'select {1}',
    'begin isolation level serializable', 'begin read only', 'commit and chain', 'rollback to s', 'end work',
    'select 1 --', 'select 1 -/* x */', 'select 1 */', 'select 1 .. 2', 'select $', 'select $1a', 'with x as (select 1) select * from x',
    'insert into t select pg_advisory_lock(1)', 'update t set a = pg_try_advisory_lock(1)', 'select audit_touch(1)',
    'select score(1), report.total(2)', 'select total(1)', 'select\tx\ffrom\vt', 'Select X From T', 'SELECT\n1\n;',
    '', ';', '  ', 'select', 'insert', 'selectx 1', 'begin;', 'begin; commit',
  ];
  let fast = 0;
  for (const [label, opts] of POLICIES) {
    for (const sql of cases) {
      const r = agree(t, sql, opts);
      if (r.fast && label === 'default') fast++;
    }
  }
  t.ok(fast >= 30, `the fast path answered ${fast} of the ${cases.length} edge cases (default policy)`);
  t.equal(classifyCommonShape('select 1 -- c', DEFAULT_POLICY), undefined, 'a comment ends the fast path');
  t.equal(classifyCommonShape("select nextval('s')", DEFAULT_POLICY), undefined, 'a writing function ends the fast path');
  t.equal(classifyCommonShape('select x from t for update', DEFAULT_POLICY), undefined, 'FOR ends the fast path');
  t.same(classifyCommonShape(' select 1 ; ', DEFAULT_POLICY)?.statements[0], { kind: 'read', replicaSafe: true, reason: 'select', text: 'select 1' });
  t.end();
});

t.test('random strings near the fast path borders agree (fast-check)', (t) => {
  const words = [
    'select', 'SELECT', 'insert', 'update', 'delete', 'values', 'table', 'begin', 'end', 'commit', 'rollback', 'from', 'where',
    'for', 'into', 'merge', 'share', 'no', 'key', 'count', 'now', 'nextval', 'setval', 'lower', 'myfunc', 'pg_advisory_lock',
    'pg_try_advisory_lock_shared', 'lo_import', 'e', 'E', 'u', 'U', 'x', 'b', 'n', 'in', 'exists', 'as', 'score', 'total',
    'audit_touch', 'report', 'a$b', 'café', 't', 'with', 'read', 'only', 'and', 'chain',
  ];
  const bits = [
    ' ', ' ', ' ', '\n', '\t', '(', ')', ',', '.', '..', ';', "'", "''", "'x'", "'a''b'", '"', '"q"', '$', '$1', '$$', '$a$',
    '--', '-', '/*', '*/', '/', '*', '+', '=', '<>', '::', ':', '[', ']', '&', '\\', '{', '1', '1.5', '.5', '1e5', '0x1f', '1_0',
    'é', '\u00a0', '\r', '\f', '\v', '#', '?', 'U&', "U&'", 'U&"', '0b1', '1e', '1e+', '$1$', "e'", '\x01', '~', '@',
  ];
  const piece = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...words) }, { weight: 4, arbitrary: fc.constantFrom(...bits) });
  const lead = fc.constantFrom('select ', 'SELECT ', 'insert into t ', 'update t set ', 'delete from t ', 'values ', 'table ', 'begin', 'end', 'commit', 'rollback', ' select', '');
  const text = fc.tuple(lead, fc.array(piece, { maxLength: 24 })).map(([l, ps]) => l + ps.join(''));
  let runs = 0;
  let fastRuns = 0;
  fc.assert(
    fc.property(text, fc.constantFrom(...POLICIES), (sql, [, opts]) => {
      runs++;
      const fast = classifyQuery(sql, opts);
      const full = classifyQueryFully(sql, opts);
      if (classifyCommonShape(sql, DEFAULT_POLICY) !== undefined) fastRuns++;
      return JSON.stringify(fast) === JSON.stringify(full);
    }),
    { numRuns: Math.round(30000 * (Number(process.env.FC_RUNS ?? '1') || 1)), ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) },
  );
  t.ok(fastRuns > runs / 20, `the fast path answered ${fastRuns} of ${runs} random strings`);
  t.end();
});
