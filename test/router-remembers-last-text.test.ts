/**
 * Router.classify answers the text it was asked last from memory (a driver's unnamed statement comes at
 * every execution), and only that text: a different one, or the same under standard_conforming_strings =
 * off, is classified afresh, and what comes back is always what the classifier says of it.
 */
import t from 'tap';
import { Router } from '../src/router/router.js';
import { classifyQuery } from '../src/router/statement-classifier.js';

t.test('the last text from memory, any other afresh', (t) => {
  const r = new Router();
  const read = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
  const write = 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2';
  const a = r.classify(read);
  t.equal(r.classify(read), a, 'the same text again: the same answer');
  t.equal(r.classify(`${read}`.slice(0)), a, 'an equal string');
  const w = r.classify(write);
  t.not(w, a);
  t.equal(w.statements[0]?.replicaSafe, false, 'a write after a read: classified as a write');
  t.equal(r.classify(read).statements[0]?.replicaSafe, true, 'and the read again as a read');
  // Texts that differ only at their end (pgbench -M simple: the literal).
  t.same(r.classify("SELECT 1 FROM t WHERE a = 'x'"), classifyQuery("SELECT 1 FROM t WHERE a = 'x'"));
  t.same(r.classify("SELECT 1 FROM t WHERE a = 'x' FOR UPDATE"), classifyQuery("SELECT 1 FROM t WHERE a = 'x' FOR UPDATE"));
  t.equal(r.classify("SELECT 1 FROM t WHERE a = 'x' FOR UPDATE").statements[0]?.replicaSafe, false);
  t.end();
});

t.test('standard_conforming_strings = off is never answered from memory', (t) => {
  const r = new Router();
  // Under off, a backslash escapes the quote: the literal goes on and the INSERT is inside it... or not.
  const sql = "SELECT 'a\\'; INSERT INTO t VALUES (1); --'";
  const on = r.classify(sql);
  const off = r.classify(sql, false);
  t.same(on, classifyQuery(sql), 'on: the classifier\'s answer');
  t.same(off, classifyQuery(sql, { standardConformingStrings: false }), 'off: the classifier\'s answer under off');
  t.not(JSON.stringify(on), JSON.stringify(off), 'the two readings differ');
  t.same(r.classify(sql), on, 'on again: still the standard reading');
  t.end();
});
