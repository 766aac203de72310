/**
 * The router's reading of transaction statements (src/router/transaction-statements.ts), on the text the
 * classifier gives: BEGIN modes, the BEGIN a standby accepts, isolation names, and which statements stay
 * in a tagged session's replica transaction and are replayed when it moves.
 */
import t from 'tap';
import { classifyQuery } from '../src/router/statement-classifier.js';
import {
  isTransactionNeutral, isolationOf, movableIsolation, needsReplay, parseBeginModes, replicaBegin, transactionCharacteristics,
} from '../src/router/transaction-statements.js';

const stmt = (sql: string) => {
  const s = classifyQuery(sql).statements[0];
  if (s === undefined) throw new Error(`no statement in ${sql}`);
  return s;
};

t.test('BEGIN modes', async (t) => {
  t.same(parseBeginModes('BEGIN'), {});
  t.same(parseBeginModes('start transaction'), {});
  t.same(parseBeginModes('BEGIN WORK'), {});
  t.same(parseBeginModes('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY'), { isolation: 'repeatable read', readOnly: true });
  t.same(parseBeginModes('BEGIN READ WRITE ISOLATION LEVEL serializable DEFERRABLE'), { isolation: 'serializable', readOnly: false });
  t.same(parseBeginModes('START TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;'), { isolation: 'read uncommitted' });
  t.equal(parseBeginModes('BEGIN /* x */ READ ONLY'), null, 'anything pgsplit does not understand: null (not deferred)');
  t.equal(parseBeginModes('BEGIN SOMETHING'), null);
  t.equal(parseBeginModes('SELECT 1'), null);
});

t.test('the BEGIN a standby accepts', async (t) => {
  t.equal(replicaBegin('BEGIN READ WRITE'), 'BEGIN', 'READ WRITE left out (a standby refuses it)');
  t.equal(replicaBegin('begin isolation level read committed, read write'), 'BEGIN ISOLATION LEVEL READ COMMITTED', 'the isolation kept');
  t.equal(replicaBegin('BEGIN READ ONLY'), 'BEGIN READ ONLY', 'anything else as written');
  t.equal(replicaBegin('BEGIN'), 'BEGIN');
});

t.test('isolation names', async (t) => {
  t.equal(isolationOf("'Repeatable_Read'"), 'repeatable read');
  t.equal(isolationOf(' SERIALIZABLE '), 'serializable');
  t.equal(isolationOf('snapshot'), null);
  t.ok(movableIsolation('read committed') && movableIsolation('read uncommitted'));
  t.notOk(movableIsolation('repeatable read') || movableIsolation('serializable'));
});

t.test('what stays in a replica transaction, and what a move replays', async (t) => {
  for (const sql of ['SAVEPOINT a', 'RELEASE SAVEPOINT a', 'ROLLBACK TO SAVEPOINT a', "SET LOCAL app.tenant_id = '7'", 'SET search_path = app', 'SET CONSTRAINTS ALL DEFERRED']) {
    t.ok(isTransactionNeutral(stmt(sql)), `${sql}: stays`);
    t.ok(needsReplay(stmt(sql)), `${sql}: replayed on a move`);
  }
  for (const sql of ['SET LOCAL transaction_isolation = serializable', 'SET default_transaction_read_only = off', 'RESET ALL', 'INSERT INTO t VALUES (1)', 'SET TRANSACTION READ WRITE']) {
    t.notOk(isTransactionNeutral(stmt(sql)), `${sql}: does not stay`);
  }
  t.ok(needsReplay(stmt('SET TRANSACTION READ ONLY')), 'SET TRANSACTION READ ONLY the replica accepted: the primary must make it read-only too');
  t.notOk(needsReplay(stmt('SELECT 1')), 'a read: nothing to replay');
});

t.test('statements that set the transaction\'s characteristics', async (t) => {
  t.equal(transactionCharacteristics(stmt('SET TRANSACTION READ WRITE')), 'read-write', 'READ WRITE: a standby refuses it');
  t.equal(transactionCharacteristics(stmt('SET transaction_read_only = off')), 'read-write');
  t.equal(transactionCharacteristics(stmt('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE')), 'other');
  t.equal(transactionCharacteristics(stmt('SET transaction_read_only = on')), 'other');
  t.equal(transactionCharacteristics(stmt("SET LOCAL app.tenant_id = '7'")), null, 'any other setting: none');
  t.equal(transactionCharacteristics(stmt('SELECT 1')), null);
});
