/**
 * mayBeTransactionControl (src/router/transaction-statements.ts) spares a tagged session's reads a second
 * classification: it says false only when the text cannot start with BEGIN, START, COMMIT, END, ROLLBACK or
 * ABORT. Checked against the classifier: for every statement of the pg-regress corpus and for random
 * strings built from those words, other keywords, comments, quotes and whitespace, a false answer means
 * the classifier's first statement is no transaction begin or end (the session's deferred BEGIN and its
 * COMMIT/ROLLBACK are never missed); and the words themselves, in any case and after any whitespace, say true.
 */
import t from 'tap';
import fc from 'fast-check';
import { join } from 'node:path';
import { classifyQuery } from '../src/router/statement-classifier.js';
import { mayBeTransactionControl } from '../src/router/transaction-statements.js';
import { corpusFiles, findCorpusDir, readCorpusScript, splitCorpusScript, sqlDir } from './fixtures/pg-regress-corpus.js';

const CONTROL = new Set(['begin', 'begin-read-only', 'commit', 'rollback']);

/** The classifier's first statement opens or ends a transaction (what deferredTag looks for). */
function controls(sql: string): boolean {
  const s = classifyQuery(sql).statements[0];
  return s !== undefined && s.transaction !== undefined && CONTROL.has(s.transaction);
}

t.test('the words themselves say true, in any case and after any whitespace', (t) => {
  for (const w of ['BEGIN', 'begin', 'Begin ISOLATION LEVEL READ COMMITTED', 'START TRANSACTION', 'start transaction read only', 'COMMIT', 'end',
    'END TRANSACTION', 'ROLLBACK', 'rollback', 'ABORT', 'abort work', 'COMMIT AND CHAIN']) {
    for (const lead of ['', ' ', '\n\t ', '\r\n', '\f']) {
      t.equal(mayBeTransactionControl(lead + w), true, JSON.stringify(lead + w));
      t.equal(controls(lead + w), true, `the classifier agrees: ${JSON.stringify(lead + w)}`);
    }
  }
  // A comment first may hold a hint: classified, whatever follows.
  for (const sql of ['/* pgsplit:primary */ SELECT 1', '-- x\nSELECT 1', '(SELECT 1)', '"x"', 'x']) t.equal(mayBeTransactionControl(sql), true, JSON.stringify(sql));
  // Reads and writes the classifier would never take for transaction control.
  for (const sql of ['SELECT abalance FROM pgbench_accounts WHERE aid = 1', 'select 1', 'INSERT INTO t VALUES (1)', 'UPDATE t SET a = 1', 'WITH x AS (SELECT 1) SELECT * FROM x',
    'SET search_path = x', 'SAVEPOINT a', 'DELETE FROM t', 'VALUES (1)', 'TABLE t', 'SHOW x']) {
    t.equal(mayBeTransactionControl(sql), false, JSON.stringify(sql));
  }
  t.end();
});

const corpusDir = findCorpusDir();

t.test('never false for a statement of the pg-regress corpus that opens or ends a transaction', { skip: corpusDir ? false : 'pg-regress corpus not found (set PGSPLIT_CORPUS_DIR)' }, (t) => {
  let total = 0;
  let controlling = 0;
  let spared = 0;
  for (const file of corpusFiles(corpusDir!)) {
    for (const st of splitCorpusScript(readCorpusScript(join(sqlDir(corpusDir!), file))).statements) {
      total++;
      const may = mayBeTransactionControl(st.text);
      if (controls(st.text)) {
        controlling++;
        if (!may) t.fail(`said false for ${JSON.stringify(st.text.slice(0, 200))}`);
      } else if (!may) spared++;
    }
  }
  t.ok(controlling > 100, `the corpus holds transaction control (${controlling} of ${total} statements)`);
  t.ok(spared > total / 2, `most statements need no second classification (${spared} of ${total})`);
  t.end();
});

t.test('random texts: false only where the classifier sees no transaction control', (t) => {
  const word = fc.constantFrom('BEGIN', 'begin', 'START', 'start', 'COMMIT', 'END', 'end', 'ROLLBACK', 'ABORT', 'abort', 'SELECT', 'select', 'SET', 'SAVEPOINT',
    'TRANSACTION', 'WORK', 'RELEASE', 'PREPARE', 'COPY', 'COMMENT', 'ANALYZE', 'ALTER', 'ROLLUP', 'BE', 'ST', 'EN', 'RO', 'AB', 'CO');
  const piece = fc.oneof(word, fc.constantFrom(' ', '  ', '\n', '\t', '\r', '\f', '\v', ';', '/* c */', '-- c\n', "'x'", '"BEGIN"', '(', ')', '$$ x $$', 'é', '\u00a0'));
  fc.assert(fc.property(fc.array(piece, { minLength: 1, maxLength: 8 }), (parts) => {
    const sql = parts.join('');
    return mayBeTransactionControl(sql) || !controls(sql);
  }), { numRuns: 20_000 });
  t.pass('20,000 random texts');
  t.end();
});
