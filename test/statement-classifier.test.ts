import t, { type Test } from 'tap';
import { join } from 'node:path';
import { classifyQuery, type QueryClassification, type StatementInfo } from '../src/router/statement-classifier.js';
import { DEFAULT_WRITING_FUNCTIONS } from '../src/router/writing-functions.js';
import { lexSql } from '../src/router/sql-lexer.js';
import { corpusFiles, findCorpusDir, readCorpusScript, splitCorpusScript, sqlDir } from './fixtures/pg-regress-corpus.js';

/** [sql, reason]: the whole string must be replica-safe with this (first statement's) reason. */
const SAFE: [string, string][] = [
  ['SELECT 1', 'select'],
  ['select * from t where a = 1 order by b limit 10', 'select'],
  ['SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d = $1)', 'select'],
  ['VALUES (1, 2), (3, 4)', 'values'],
  ['TABLE t', 'table'],
  ['SHOW search_path', 'show'],
  ['SHOW ALL', 'show'],
  ['SHOW pgsplit.route', 'show'],
  ['WITH x AS (SELECT 1) SELECT * FROM x', 'with'],
  ['WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r', 'with'],
  ['WITH x AS MATERIALIZED (SELECT 1), y AS NOT MATERIALIZED (TABLE t) SELECT * FROM x, y', 'with'],
  ['(SELECT 1) UNION (SELECT 2)', 'select'],
  ['((SELECT 1))', 'select'],
  ['(VALUES (1))', 'select'],
  ['EXPLAIN SELECT 1', 'explain'],
  ['EXPLAIN ANALYZE SELECT * FROM t', 'explain'],
  ['EXPLAIN ANALYSE VERBOSE SELECT * FROM t', 'explain'],
  ['EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM t', 'explain'],
  ['EXPLAIN (COSTS OFF) WITH x AS (SELECT 1) SELECT * FROM x', 'explain'],
  ['EXPLAIN (SELECT 1)', 'explain'],
  ['COPY t TO STDOUT', 'copy-to'],
  ['COPY public.t (a, b) TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE (a))', 'copy-to'],
  ['COPY "My Table" TO STDOUT CSV HEADER', 'copy-to'],
  ['COPY BINARY t TO STDOUT', 'copy-to'],
  ['COPY (SELECT * FROM t WHERE a > 1) TO STDOUT', 'copy-to'],
  ['COPY (WITH x AS (SELECT 1) SELECT * FROM x) TO STDOUT', 'copy-to'],
  // keywords inside strings, comments, dollar quotes and quoted identifiers do not count
  ["SELECT 'FOR UPDATE'", 'select'],
  ["SELECT 'x' AS \"FOR UPDATE\"", 'select'],
  ['SELECT $$;INSERT$$', 'select'],
  ['SELECT $q$ DELETE FROM t; $q$', 'select'],
  ['SELECT "nextval"', 'select'],
  ['SELECT "nextval" FROM t', 'select'],
  ['SELECT 1 -- FOR UPDATE', 'select'],
  ['SELECT 1 -- ; DELETE FROM t', 'select'],
  ['SELECT /* /* */ FOR UPDATE */ 1', 'select'],
  ['SELECT /* nextval( */ 1', 'select'],
  ["SELECT E'\\''", 'select'],
  ["SELECT E'\\'; DELETE FROM t; --'", 'select'],
  ["SELECT 'nextval(''s'')'", 'select'],
  ['SELECT $1::int, $2', 'select'],
  ["SELECT U&'\\0041'", 'select'],
  ['SELECT "update", "delete", "insert", "into" FROM t', 'select'],
  ['SELECT t.update, t.delete FROM t', 'select'],
  ["SELECT substring('abc' FROM 1 FOR 2)", 'select'],
  ["SELECT overlay('abc' placing 'x' from 1 for 1)", 'select'],
  ['SELECT pg_sleep(0.1)', 'select'],
  ['SELECT lower_case_alias FROM t AS my_function(a)', 'select'],
  ['SELECT count(*) FROM pg_stat_activity', 'select'],
  ['SELECT pg_last_wal_replay_lsn()', 'select'],
  ['SELECT lower(x), now(), current_setting(\'work_mem\') FROM t', 'select'],
  ['SELECT * FROM t WINDOW w AS (PARTITION BY a)', 'select'],
  ['SELECT * FROM t; SELECT 2; VALUES (3)', 'select'],
  ['  SELECT 1  ;  ', 'select'],
  ['/* pgsplit:route=replica */ SELECT 1', 'select'],
  ['SELECT 1 FOR READ ONLY', 'select'],
  ['SELECT 1 AS "for" ', 'select'],
  ['select x from t where x::text like \'for update%\'', 'select'],
];

interface Unsafe {
  sql: string;
  reason: string;
  kind?: StatementInfo['kind'];
  extra?: Partial<StatementInfo>;
}
const u = (sql: string, reason: string, kind?: StatementInfo['kind'], extra?: Partial<StatementInfo>): Unsafe => ({ sql, reason, kind, extra });

/** Statements that must not be replica-safe; `reason` is the overall (first unsafe statement's) reason. */
const UNSAFE: Unsafe[] = [
  // plain writes, DDL, utilities
  u('INSERT INTO t VALUES (1)', 'insert', 'write'),
  u('UPDATE t SET a = 1', 'update', 'write'),
  u('DELETE FROM t', 'delete', 'write'),
  u('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'merge', 'write'),
  u('CREATE TABLE t (a int)', 'create', 'write'),
  u('CREATE INDEX ON t (a)', 'create', 'write'),
  u('ALTER TABLE t ADD COLUMN b int', 'alter', 'write'),
  u('DROP TABLE t', 'drop', 'write'),
  u('TRUNCATE t', 'truncate', 'write'),
  u('GRANT SELECT ON t TO bob', 'grant', 'write'),
  u('REVOKE SELECT ON t FROM bob', 'revoke', 'write'),
  u("COMMENT ON TABLE t IS 'x'", 'comment', 'write'),
  u('REFRESH MATERIALIZED VIEW mv', 'refresh', 'write'),
  u('CALL p(1)', 'call', 'write'),
  u('DO $$ BEGIN PERFORM 1; END $$', 'do', 'write'),
  u("NOTIFY chan, 'x'", 'notify', 'write'),
  u('VACUUM t', 'vacuum', 'utility'),
  u('ANALYZE t', 'analyze', 'utility'),
  u('CLUSTER t', 'cluster', 'utility'),
  u('REINDEX TABLE t', 'reindex', 'utility'),
  u('CHECKPOINT', 'checkpoint', 'utility'),
  u('LOCK TABLE t IN ACCESS SHARE MODE', 'lock', 'utility'),
  // locking clauses, at any depth
  u('SELECT * FROM t FOR UPDATE', 'locking-clause', 'write'),
  u('SELECT * FROM t FOR NO KEY UPDATE', 'locking-clause', 'write'),
  u('SELECT * FROM t FOR SHARE', 'locking-clause', 'write'),
  u('SELECT * FROM t FOR KEY SHARE', 'locking-clause', 'write'),
  u('select * from t for update of t skip locked', 'locking-clause', 'write'),
  u('SELECT * FROM t FOR UPDATE NOWAIT', 'locking-clause', 'write'),
  u('SELECT * FROM (SELECT * FROM t FOR UPDATE) s', 'locking-clause', 'write'),
  u('WITH x AS (SELECT * FROM t FOR SHARE) SELECT * FROM x', 'locking-clause', 'write'),
  u('SELECT * FROM t WHERE a IN (SELECT a FROM u FOR KEY SHARE)', 'locking-clause', 'write'),
  u('SELECT 1 /* c */ FOR /* c */ UPDATE', 'locking-clause', 'write'),
  // SELECT INTO
  u('SELECT * INTO new_t FROM t', 'select-into', 'write'),
  u('SELECT a, b INTO STRICT x FROM t', 'select-into', 'write'),
  u('SELECT 1 INTO TEMP t2', 'select-into', 'write', { pinsPrimary: 'temp-table' }),
  u('SELECT * INTO TEMPORARY TABLE t2 FROM t', 'select-into', 'write', { pinsPrimary: 'temp-table' }),
  u('WITH x AS (SELECT 1) SELECT * INTO y FROM x', 'select-into', 'write'),
  // writing functions
  u("SELECT nextval('s')", 'writing-function:nextval', 'write'),
  u("SELECT public.nextval('s')", 'writing-function:nextval', 'write'),
  u("select NEXTVAL ( 's')", 'writing-function:nextval', 'write'),
  u("SELECT nextval /* c */ ('s')", 'writing-function:nextval', 'write'),
  u("SELECT \"nextval\"('s')", 'writing-function:nextval', 'write'),
  u("SELECT pg_catalog.\"setval\"('s', 1)", 'writing-function:setval', 'write'),
  u("SELECT \"NEXTVAL\"('s')", 'writing-function:nextval', 'write'),
  u("SELECT U&\"\\006Eextval\"('s')", 'writing-function:nextval', 'write'),
  u("SELECT U&\"!006Eextval\" UESCAPE '!' ('s')", 'writing-function:nextval', 'write'),
  u("SELECT * FROM nextval('s')", 'writing-function:nextval', 'write'),
  u("SELECT currval('s')", 'writing-function:currval', 'write'),
  u('SELECT lastval()', 'writing-function:lastval', 'write'),
  u("SELECT a, setval('s', max(a)) FROM t GROUP BY a", 'writing-function:setval', 'write'),
  u("VALUES (nextval('s'))", 'writing-function:nextval', 'write'),
  u("SELECT x FROM t WHERE y = (SELECT nextval('s'))", 'writing-function:nextval', 'write'),
  u('SELECT txid_current()', 'writing-function:txid_current', 'write'),
  u('SELECT pg_current_xact_id()', 'writing-function:pg_current_xact_id', 'write'),
  u("SELECT set_config('search_path', 'x', false)", 'writing-function:set_config', 'write'),
  u("SELECT pg_notify('c', 'p')", 'writing-function:pg_notify', 'write'),
  u("SELECT lo_import('/tmp/x')", 'writing-function:lo_import', 'write'),
  u('SELECT lo_unlink(123)', 'writing-function:lo_unlink', 'write'),
  u('SELECT loread(fd, 10)', 'writing-function:loread', 'write'),
  u("SELECT dblink_exec('conn', 'DELETE FROM t')", 'writing-function:dblink_exec', 'write'),
  u("SELECT * FROM dblink('conn', 'SELECT 1') AS x(a int)", 'writing-function:dblink', 'write'),
  u('SELECT pg_current_wal_lsn()', 'writing-function:pg_current_wal_lsn', 'write'),
  u('SELECT pg_current_wal_insert_lsn()', 'writing-function:pg_current_wal_insert_lsn', 'write'),
  u('SELECT pg_switch_wal()', 'writing-function:pg_switch_wal', 'write'),
  u("SELECT pg_create_restore_point('x')", 'writing-function:pg_create_restore_point', 'write'),
  u("SELECT pg_create_logical_replication_slot('s', 'pgoutput')", 'writing-function:pg_create_logical_replication_slot', 'write'),
  u("SELECT pg_drop_replication_slot('s')", 'writing-function:pg_drop_replication_slot', 'write'),
  u("SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)", 'writing-function:pg_logical_slot_get_changes', 'write'),
  u("SELECT pg_logical_emit_message(true, 'p', 'x')", 'writing-function:pg_logical_emit_message', 'write'),
  u('SELECT pg_terminate_backend(123)', 'writing-function:pg_terminate_backend', 'write'),
  u('SELECT pg_cancel_backend(123)', 'writing-function:pg_cancel_backend', 'write'),
  u('SELECT pg_reload_conf()', 'writing-function:pg_reload_conf', 'write'),
  u('SELECT pg_rotate_logfile()', 'writing-function:pg_rotate_logfile', 'write'),
  u('SELECT pg_stat_reset()', 'writing-function:pg_stat_reset', 'write'),
  u("SELECT pg_stat_reset_shared('bgwriter')", 'writing-function:pg_stat_reset_shared', 'write'),
  u('SELECT pg_promote()', 'writing-function:pg_promote', 'write'),
  u('SELECT pg_wal_replay_pause()', 'writing-function:pg_wal_replay_pause', 'write'),
  u('SELECT pg_wal_replay_resume()', 'writing-function:pg_wal_replay_resume', 'write'),
  u("SELECT pg_replication_origin_create('x')", 'writing-function:pg_replication_origin_create', 'write'),
  u('SELECT pg_advisory_xact_lock(1)', 'writing-function:pg_advisory_xact_lock', 'write'),
  u('SELECT pg_try_advisory_xact_lock(1)', 'writing-function:pg_try_advisory_xact_lock', 'write'),
  u('SELECT pg_advisory_unlock(1)', 'writing-function:pg_advisory_unlock', 'write'),
  u('SELECT pg_advisory_unlock_all()', 'writing-function:pg_advisory_unlock_all', 'write'),
  u('SELECT pg_advisory_lock(1)', 'writing-function:pg_advisory_lock', 'write', { pinsPrimary: 'advisory-lock' }),
  u('SELECT pg_advisory_lock_shared(1, 2)', 'writing-function:pg_advisory_lock_shared', 'write', { pinsPrimary: 'advisory-lock' }),
  u('SELECT pg_try_advisory_lock(1)', 'writing-function:pg_try_advisory_lock', 'write', { pinsPrimary: 'advisory-lock' }),
  u('SELECT pg_try_advisory_lock_shared(1)', 'writing-function:pg_try_advisory_lock_shared', 'write', { pinsPrimary: 'advisory-lock' }),
  // setseed() seeds the backend that runs it: the random() calls after it must run there too.
  u('SELECT setseed(0.5)', 'writing-function:setseed', 'write', { pinsPrimary: 'setseed' }),
  u('INSERT INTO t SELECT setseed(0.1)', 'insert', 'write', { pinsPrimary: 'setseed' }),
  u('SELECT * FROM t FOR UPDATE; SELECT pg_advisory_lock(1)', 'locking-clause', 'write'),
  // data-modifying CTEs and WITH ... DML
  u('WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x', 'cte-dml', 'write'),
  u('WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x', 'cte-dml', 'write'),
  u('WITH x AS MATERIALIZED (DELETE FROM t RETURNING *) SELECT 1', 'cte-dml', 'write'),
  u('WITH a AS (SELECT 1), b AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING *) SELECT 1', 'cte-dml', 'write'),
  u('WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x', 'insert', 'write'),
  u('WITH x AS (SELECT 1) UPDATE t SET a = 1', 'update', 'write'),
  u('WITH x AS (SELECT 1) DELETE FROM t', 'delete', 'write'),
  u('WITH x AS (SELECT 1) MERGE INTO t USING x ON true WHEN MATCHED THEN DELETE', 'merge', 'write'),
  u('SELECT * FROM (WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x) s', 'cte-dml', 'write'),
  u('SELECT update FROM t', 'dml-keyword', 'write'),
  // EXPLAIN of writes
  u('EXPLAIN INSERT INTO t VALUES (1)', 'explain:insert', 'write'),
  u('EXPLAIN ANALYZE INSERT INTO t VALUES (1)', 'explain:insert', 'write'),
  u('EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t', 'explain:delete', 'write'),
  u('EXPLAIN ANALYZE UPDATE t SET a = 1', 'explain:update', 'write'),
  u("EXPLAIN SELECT nextval('s')", 'explain:writing-function:nextval', 'write'),
  u('EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE', 'explain:locking-clause', 'write'),
  u('EXPLAIN ANALYZE WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x', 'explain:cte-dml', 'write'),
  u('EXPLAIN ANALYZE CREATE TEMP TABLE x AS SELECT 1', 'explain:create', 'write', { pinsPrimary: 'temp-table' }),
  u('EXPLAIN EXECUTE q(1)', 'explain:execute', 'utility'),
  u('EXPLAIN', 'unknown-statement', 'unknown'),
  // COPY
  u('COPY t FROM STDIN', 'copy-from', 'write'),
  u("COPY t (a, b) FROM '/tmp/x' WITH (FORMAT csv)", 'copy-from', 'write'),
  u("COPY t TO '/tmp/x'", 'copy-to-file', 'utility'),
  u("COPY t TO PROGRAM 'cat > /tmp/x'", 'copy-to-file', 'utility'),
  u("COPY (SELECT nextval('s')) TO STDOUT", 'writing-function:nextval', 'write'),
  u('COPY (SELECT * FROM t FOR UPDATE) TO STDOUT', 'locking-clause', 'write'),
  u('COPY (INSERT INTO t VALUES (1) RETURNING *) TO STDOUT', 'copy:insert', 'write'),
  u('COPY (DELETE FROM t RETURNING *) TO STDOUT', 'copy:delete', 'write'),
  u('COPY t', 'unknown-statement', 'unknown'),
  // multi-statement strings
  u('SELECT 1; DELETE FROM t', 'delete', 'read'),
  u("SELECT 1; SELECT nextval('s')", 'writing-function:nextval', 'read'),
  u('SELECT $$;$$; INSERT INTO t VALUES (1)', 'insert', 'read'),
  u("SELECT 'a\\'; DELETE FROM t; --'", 'delete', 'read'),
  u("SELECT E'a'\n'\\' ' ; DELETE FROM t; -- '", 'delete', 'read'),
  u('SELECT "a;b"; UPDATE t SET a = 1', 'update', 'read'),
  // empty, unterminated, unknown
  u('', 'empty'),
  u('   \n\t ', 'empty'),
  u('-- just a comment', 'empty'),
  u('/* pgsplit:route=replica */', 'empty'),
  u(';;', 'empty'),
  u("SELECT 'abc", 'unterminated', 'unknown'),
  u('SELECT "abc', 'unterminated', 'unknown'),
  u('SELECT $$abc', 'unterminated', 'unknown'),
  u('SELECT 1 /* x', 'unterminated', 'unknown'),
  u("SELECT 1; SELECT 'x", 'unterminated'),
  u('/* open', 'unterminated', 'unknown'),
  u('FOO BAR', 'unknown-statement', 'unknown'),
  u('1', 'unknown-statement', 'unknown'),
  u("'SELECT 1'", 'unknown-statement', 'unknown'),
  u('"select" 1', 'unknown-statement', 'unknown'),
  u('(INSERT INTO t VALUES (1))', 'unknown-statement', 'unknown'),
  u('START', 'unknown-statement', 'unknown'),
  u('SELECT (1; DELETE FROM t)', 'nested-semicolon', 'unknown'),
  // transaction control
  u('BEGIN', 'begin', 'transaction', { transaction: 'begin' }),
  u('begin work', 'begin', 'transaction', { transaction: 'begin' }),
  u('BEGIN TRANSACTION', 'begin', 'transaction', { transaction: 'begin' }),
  u('START TRANSACTION', 'begin', 'transaction', { transaction: 'begin' }),
  u('BEGIN READ ONLY', 'begin', 'transaction', { transaction: 'begin-read-only' }),
  u('START TRANSACTION READ ONLY', 'begin', 'transaction', { transaction: 'begin-read-only' }),
  u('BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE', 'begin', 'transaction', { transaction: 'begin-read-only' }),
  u('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY', 'begin', 'transaction', { transaction: 'begin-read-only' }),
  u('BEGIN TRANSACTION READ ONLY, ISOLATION LEVEL READ COMMITTED', 'begin', 'transaction', { transaction: 'begin-read-only' }),
  u('BEGIN READ ONLY, READ WRITE', 'begin', 'transaction', { transaction: 'begin' }),
  u('BEGIN READ WRITE', 'begin', 'transaction', { transaction: 'begin' }),
  u('BEGIN ISOLATION LEVEL READ COMMITTED', 'begin', 'transaction', { transaction: 'begin' }),
  u('START TRANSACTION ISOLATION LEVEL READ UNCOMMITTED', 'begin', 'transaction', { transaction: 'begin' }),
  u('COMMIT', 'commit', 'transaction', { transaction: 'commit' }),
  u('COMMIT WORK', 'commit', 'transaction', { transaction: 'commit' }),
  u('END', 'commit', 'transaction', { transaction: 'commit' }),
  u('END TRANSACTION', 'commit', 'transaction', { transaction: 'commit' }),
  u('COMMIT AND CHAIN', 'commit', 'transaction', { transaction: 'commit', chain: true }),
  u('ROLLBACK', 'rollback', 'transaction', { transaction: 'rollback' }),
  u('ABORT', 'rollback', 'transaction', { transaction: 'rollback' }),
  u('ROLLBACK TRANSACTION AND CHAIN', 'rollback', 'transaction', { transaction: 'rollback', chain: true }),
  u('ROLLBACK TO SAVEPOINT s1', 'rollback-to', 'transaction', { transaction: 'rollback-to' }),
  u('ROLLBACK TO s1', 'rollback-to', 'transaction', { transaction: 'rollback-to' }),
  u('ROLLBACK WORK TO SAVEPOINT s1', 'rollback-to', 'transaction', { transaction: 'rollback-to' }),
  u('SAVEPOINT s1', 'savepoint', 'transaction', { transaction: 'savepoint' }),
  u('RELEASE SAVEPOINT s1', 'release', 'transaction', { transaction: 'release' }),
  u('RELEASE s1', 'release', 'transaction', { transaction: 'release' }),
  u("PREPARE TRANSACTION 'gx1'", 'prepare-transaction', 'transaction', { transaction: 'prepare-transaction' }),
  u("COMMIT PREPARED 'gx1'", 'commit-prepared', 'write'),
  u("ROLLBACK PREPARED 'gx1'", 'rollback-prepared', 'write'),
  u('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'set-transaction', 'transaction'),
  u('SET TRANSACTION READ ONLY', 'set-transaction', 'transaction'),
  u('SET CONSTRAINTS ALL DEFERRED', 'set-constraints', 'transaction'),
  // SET / RESET
  u('SET search_path TO a, b', 'set', 'session', { setting: { name: 'search_path', value: 'a, b', local: false } }),
  u('SET search_path = "$user", public', 'set', 'session', { setting: { name: 'search_path', value: '$user, public', local: false } }),
  u('SET Search_Path = MySchema', 'set', 'session', { setting: { name: 'search_path', value: 'myschema', local: false } }),
  u("SET LOCAL statement_timeout = '5s'", 'set', 'session', { setting: { name: 'statement_timeout', value: '5s', local: true } }),
  u("SET SESSION work_mem TO '64MB'", 'set', 'session', { setting: { name: 'work_mem', value: '64MB', local: false } }),
  u('SET statement_timeout = 5000', 'set', 'session', { setting: { name: 'statement_timeout', value: '5000', local: false } }),
  u('SET extra_float_digits = -1', 'set', 'session', { setting: { name: 'extra_float_digits', value: '-1', local: false } }),
  u('SET work_mem TO DEFAULT', 'set', 'session', { setting: { name: 'work_mem', value: null, local: false } }),
  u('SET work_mem = default', 'set', 'session', { setting: { name: 'work_mem', value: null, local: false } }),
  u('SET pgsplit.route = replica', 'set', 'session', { setting: { name: 'pgsplit.route', value: 'replica', local: false } }),
  u("SET TIME ZONE 'Europe/Rome'", 'set', 'session', { setting: { name: 'timezone', value: 'Europe/Rome', local: false } }),
  u('SET TIME ZONE LOCAL', 'set', 'session', { setting: { name: 'timezone', value: null, local: false } }),
  u('SET LOCAL TIME ZONE DEFAULT', 'set', 'session', { setting: { name: 'timezone', value: null, local: true } }),
  u("SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE", 'set', 'session', {
    setting: { name: 'timezone', value: "INTERVAL '+02:00' HOUR TO MINUTE", local: false },
  }),
  u("SET NAMES 'UTF8'", 'set', 'session', { setting: { name: 'client_encoding', value: 'UTF8', local: false } }),
  u("SET SCHEMA 'app'", 'set', 'session', { setting: { name: 'search_path', value: 'app', local: false } }),
  u('SET ROLE admin', 'set', 'session', { setting: { name: 'role', value: 'admin', local: false } }),
  u('SET ROLE NONE', 'set', 'session', { setting: { name: 'role', value: 'none', local: false } }),
  u('SET SESSION ROLE admin', 'set', 'session', { setting: { name: 'role', value: 'admin', local: false } }),
  u('SET SESSION AUTHORIZATION bob', 'set', 'session', { setting: { name: 'session_authorization', value: 'bob', local: false } }),
  u('SET SESSION AUTHORIZATION DEFAULT', 'set', 'session', { setting: { name: 'session_authorization', value: null, local: false } }),
  u('SET XML OPTION DOCUMENT', 'set', 'session', { setting: { name: 'xmloption', value: 'document', local: false } }),
  u('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', 'set', 'session', {
    setting: { name: 'session_characteristics', value: 'READ ONLY', local: false },
  }),
  u('RESET search_path', 'reset', 'session', { setting: { name: 'search_path', value: null, local: false } }),
  u('RESET pgsplit.route', 'reset', 'session', { setting: { name: 'pgsplit.route', value: null, local: false } }),
  u('RESET TIME ZONE', 'reset', 'session', { setting: { name: 'timezone', value: null, local: false } }),
  u('RESET ROLE', 'reset', 'session', { setting: { name: 'role', value: null, local: false } }),
  u('RESET SESSION AUTHORIZATION', 'reset', 'session', { setting: { name: 'session_authorization', value: null, local: false } }),
  u('RESET ALL', 'reset', 'session', { setting: { name: 'all', value: null, local: false, all: true }, discard: true }),
  u('DISCARD ALL', 'discard', 'session', { discard: true }),
  // other session statements
  u('LISTEN chan', 'listen', 'session', { pinsPrimary: 'listen' }),
  u('UNLISTEN *', 'unlisten', 'session'),
  u('CREATE TEMP TABLE tt (a int)', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE TEMPORARY TABLE tt AS SELECT 1', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE LOCAL TEMP TABLE tt (a int)', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE GLOBAL TEMPORARY TABLE tt (a int)', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE TEMP VIEW v AS SELECT 1', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE OR REPLACE TEMP VIEW v AS SELECT 1', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE TEMP SEQUENCE s', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE TABLE pg_temp.tt (a int)', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('CREATE TABLE IF NOT EXISTS pg_temp.tt (a int)', 'create', 'write', { pinsPrimary: 'temp-table' }),
  u('DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'declare', 'session', { pinsPrimary: 'cursor-with-hold' }),
  u('DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM t', 'declare', 'session', { pinsPrimary: 'cursor-with-hold' }),
  u('PREPARE q AS SELECT 1', 'prepare', 'session', { pinsPrimary: 'sql-prepare' }),
  u('PREPARE q (int) AS SELECT $1', 'prepare', 'session', { pinsPrimary: 'sql-prepare' }),
  u('PREPARE transaction AS SELECT 1', 'prepare', 'session', { pinsPrimary: 'sql-prepare' }),
  u('EXECUTE q(1)', 'execute', 'session'),
  u('DEALLOCATE q', 'deallocate', 'session'),
  u('DEALLOCATE ALL', 'deallocate', 'session'),
  u('FETCH 10 FROM c', 'fetch', 'session'),
  u('MOVE NEXT IN c', 'move', 'session'),
  u('CLOSE c', 'close', 'session'),
  u("LOAD 'auto_explain'", 'load', 'session'),
  u('INSERT INTO t SELECT pg_advisory_lock(1)', 'insert', 'write', { pinsPrimary: 'advisory-lock' }),
];

/** Statements whose first statement must NOT carry the given effect. */
const NO_EFFECT: [string, (keyof StatementInfo)[]][] = [
  ['CREATE TABLE t (a int)', ['pinsPrimary']],
  ['CREATE UNLOGGED TABLE t (a int)', ['pinsPrimary']],
  ['CREATE TABLE pg_temporary.t (a int)', ['pinsPrimary']],
  ['DECLARE c CURSOR FOR SELECT 1', ['pinsPrimary']],
  ['DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1', ['pinsPrimary']],
  ['SELECT pg_advisory_xact_lock(1)', ['pinsPrimary']],
  ['SELECT 1 INTO t2', ['pinsPrimary']],
  ['UNLISTEN chan', ['pinsPrimary']],
  ['DISCARD PLANS', ['discard']],
  ['DISCARD TEMP', ['discard']],
  ['RESET search_path', ['discard']],
  ['COMMIT AND NO CHAIN', ['chain']],
  ['COMMIT', ['chain']],
  ['SET TRANSACTION READ ONLY', ['setting', 'transaction']],
  ['SET CONSTRAINTS ALL IMMEDIATE', ['setting']],
];

function expectUnsafe(t: Test, c: Unsafe, r: QueryClassification): void {
  t.equal(r.replicaSafe, false, `${c.sql}: not replica-safe`);
  t.equal(r.reason, c.reason, `${c.sql}: reason`);
  if (c.kind) t.equal(r.statements[0]?.kind, c.kind, `${c.sql}: kind`);
  if (c.extra) t.match(r.statements[0], c.extra, `${c.sql}: effects`);
}

t.test('replica-safe statements', async (t) => {
  for (const [sql, reason] of SAFE) {
    const r = classifyQuery(sql);
    t.equal(r.replicaSafe, true, `${sql}: replica-safe`);
    t.equal(r.reason, 'read-only', `${sql}: overall reason`);
    t.equal(r.statements[0]?.reason, reason, `${sql}: statement reason`);
    t.equal(r.statements[0]?.kind, 'read', `${sql}: kind`);
    for (const s of r.statements) {
      t.equal(s.pinsPrimary, undefined, `${sql}: no pin`);
      t.equal(s.transaction, undefined, `${sql}: no transaction effect`);
      t.equal(s.setting, undefined, `${sql}: no setting`);
    }
  }
});

t.test('statements that are not replica-safe', async (t) => {
  for (const c of UNSAFE) expectUnsafe(t, c, classifyQuery(c.sql));
});

t.test('one unsafe statement spoils a multi-statement string', async (t) => {
  const safe = SAFE.map(([sql]) => sql).filter((_, i) => i % 6 === 0);
  let checked = 0;
  for (const c of UNSAFE) {
    // (an unterminated literal would swallow the statement after it, so those are left out)
    if (c.reason === 'empty' || c.reason === 'unterminated') continue;
    for (const s of safe) {
      for (const sql of [`${s};\n${c.sql}`, `${c.sql};\n${s}`]) {
        const r = classifyQuery(sql);
        if (r.replicaSafe) t.fail(`replica-safe: ${sql}`);
        checked++;
      }
    }
  }
  t.ok(checked > 1000, `${checked} combinations are not replica-safe`);
});

t.test('random input never throws and is rarely safe by accident', async (t) => {
  const pieces = ['SELECT', ' ', '1', "'", '"', '$$', '$1', ';', '(', ')', '--', '\n', '/*', '*/', 'E', "E'\\'", 'FOR', 'UPDATE', 'nextval', 'INTO', 'WITH', 'x AS', 'INSERT', ',', '.', 'U&"', '\\'];
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let failures = 0;
  for (let i = 0; i < 3000; i++) {
    let sql = '';
    const len = 1 + rnd(25);
    for (let j = 0; j < len; j++) sql += pieces[rnd(pieces.length)];
    try {
      const r = classifyQuery(sql);
      if (r.replicaSafe) {
        // whatever the classifier accepted must pass the independent checks
        const toks = lexSql(sql).statements.flat();
        for (let k = 0; k < toks.length; k++) {
          const x = toks[k]!;
          const next = toks[k + 1];
          if ((x.is('nextval') && next?.isPunct('(')) || (x.is('for') && next?.is('update')) || x.is('into') || x.is('insert')) {
            failures++;
            t.fail(`replica-safe: ${JSON.stringify(sql)}`);
          }
        }
      }
    } catch (e) {
      failures++;
      t.fail(`threw on ${JSON.stringify(sql)}: ${String(e)}`);
    }
  }
  t.equal(failures, 0);
});

t.test('statements without a session effect', async (t) => {
  for (const [sql, keys] of NO_EFFECT) {
    const s = classifyQuery(sql).statements[0]!;
    for (const k of keys) t.equal(s[k], undefined, `${sql}: no ${k}`);
  }
});

t.test('every writing function in the default list is caught', async (t) => {
  for (const fn of DEFAULT_WRITING_FUNCTIONS) {
    const r = classifyQuery(`SELECT ${fn}(1)`);
    t.equal(r.replicaSafe, false, fn);
    t.equal(r.reason, `writing-function:${fn}`, fn);
    // and the bare name is only a column
    t.equal(classifyQuery(`SELECT ${fn} FROM t`).replicaSafe, true, `${fn} without a call`);
  }
});

t.test('multi-statement strings keep every statement', async (t) => {
  const r = classifyQuery("BEGIN; SET LOCAL work_mem = '1GB'; SELECT 1; /* c */ SELECT * FROM t FOR UPDATE; COMMIT");
  t.equal(r.replicaSafe, false);
  t.equal(r.reason, 'begin');
  t.match(r.statements, [
    { kind: 'transaction', transaction: 'begin', text: 'BEGIN' },
    { kind: 'session', setting: { name: 'work_mem', value: '1GB', local: true }, text: "SET LOCAL work_mem = '1GB'" },
    { kind: 'read', replicaSafe: true, text: 'SELECT 1' },
    { kind: 'write', reason: 'locking-clause', text: 'SELECT * FROM t FOR UPDATE' },
    { kind: 'transaction', transaction: 'commit', text: 'COMMIT' },
  ]);
  t.equal(r.statements.length, 5);
  const ro = classifyQuery('BEGIN READ ONLY; SELECT 1; SELECT 2');
  t.equal(ro.replicaSafe, false);
  t.match(ro.statements, [{ transaction: 'begin-read-only' }, { replicaSafe: true }, { replicaSafe: true }]);
  // an unterminated literal spoils the string even after a read-only BEGIN
  const bad = classifyQuery("BEGIN READ ONLY; SELECT 'x");
  t.equal(bad.replicaSafe, false);
  t.equal(bad.reason, 'unterminated');
  t.match(bad.statements, [{ transaction: 'begin-read-only' }, { kind: 'unknown', reason: 'unterminated', replicaSafe: false }]);
  // the BEGIN ATOMIC body of a function is part of its CREATE
  const fn = classifyQuery('CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2');
  t.equal(fn.statements.length, 2);
  t.match(fn.statements, [{ reason: 'create' }, { reason: 'select' }]);
});

t.test('hints are reported', async (t) => {
  t.match(classifyQuery('/* pgsplit:route=replica,max_lag=500ms */ SELECT 1'), {
    replicaSafe: true,
    hints: { route: 'replica', maxLagMs: 500, malformed: [] },
  });
  t.match(classifyQuery("DELETE FROM t /*pgsplit_route='replica'*/"), { replicaSafe: false, hints: { route: 'replica' } });
  t.same(classifyQuery('SELECT /* pgsplit:route=replica */ 1').hints, { malformed: [] });
  t.match(classifyQuery('/* pgsplit:route=sideways */ SELECT 1').hints.malformed, [/route must be/]);
});

t.test('options', async (t) => {
  const fns = new Set(['audit_write']);
  t.equal(classifyQuery('SELECT audit_write(1)').reason, 'unknown-function:audit_write', 'unknown functions go to the primary by default');
  t.equal(classifyQuery('SELECT audit_write(1)', { unknownFunctions: 'replica' }).replicaSafe, true, 'unless the policy allows them');
  t.equal(classifyQuery('SELECT audit_write(1)', { writingFunctions: fns }).reason, 'writing-function:audit_write');
  t.equal(classifyQuery('SELECT myapp.audit_write(1)', { writingFunctions: fns }).replicaSafe, false);
  t.equal(classifyQuery("SELECT nextval('s')", { writingFunctions: fns, writingFunctionPrefixes: [] }).reason, 'unknown-function:nextval', 'not writing, and not a built-in read-only function either');
  t.equal(classifyQuery('SELECT nextval_like_name(1)').reason, 'unknown-function:nextval_like_name');
  t.equal(classifyQuery('SELECT lo_whatever(1)').reason, 'writing-function:lo_whatever', 'prefix families');
  t.equal(classifyQuery('SELECT audit_x(1)', { writingFunctionPrefixes: ['audit_'] }).replicaSafe, false);
  // standard_conforming_strings=off changes where strings end
  const sql = "SELECT 'a\\'; DELETE FROM t; --'";
  t.equal(classifyQuery(sql).replicaSafe, false);
  t.equal(classifyQuery(sql, { standardConformingStrings: false }).replicaSafe, true);
  t.equal(classifyQuery("SELECT 'a\\' ; DELETE FROM t", { standardConformingStrings: false }).reason, 'unterminated');
});

t.test('never throws', async (t) => {
  const odd = ['(', ')', '((', '(SELECT', 'SET', 'SET x', 'SET x TO', 'SET LOCAL', 'RESET', 'COPY', 'COPY (', 'COPY (SELECT 1', 'COPY () TO STDOUT',
    'EXPLAIN (', 'EXPLAIN ANALYZE', 'DECLARE', 'PREPARE', 'ROLLBACK TO', 'BEGIN READ', 'WITH', 'SELECT FOR', 'SELECT x FOR NO', 'SELECT x FOR NO KEY',
    'SELECT f(', 'SELECT U&"x" UESCAPE', 'CREATE', 'CREATE TEMP', 'CREATE TABLE pg_temp', 'SET TIME ZONE', 'SET SESSION', '\\', '$1', 'SET a.b', 'SET a.', 'RESET a.b.c'];
  for (const sql of odd) t.doesNotThrow(() => classifyQuery(sql), sql);
  t.equal(classifyQuery('COPY () TO STDOUT').replicaSafe, false);
  t.equal(classifyQuery('COPY (SELECT 1').replicaSafe, false);
});

// ---------------------------------------------------------------------------------------------------
// Corpus: the PostgreSQL regression suite's SQL scripts.

const corpusDir = findCorpusDir();

const DML_FIRST = new Set(['insert', 'update', 'delete', 'merge', 'create', 'alter', 'drop', 'truncate', 'grant', 'revoke']);

t.test('pg-regress corpus', { skip: corpusDir ? false : 'corpus not found (set PGSPLIT_CORPUS_DIR)' }, async (t) => {
  const dir = sqlDir(corpusDir!);
  const files = corpusFiles(corpusDir!);
  t.ok(files.length > 50, `${files.length} files`);
  const texts: string[] = [];
  let metaLines = 0;
  for (const f of files) {
    const script = readCorpusScript(join(dir, f));
    metaLines += script.split('\n').filter((l) => l.startsWith('\\') && l !== '\\.').length;
    const { unterminated, statements } = splitCorpusScript(script);
    t.equal(unterminated, false, `${f}: lexes cleanly after psql preprocessing`);
    for (const st of statements) texts.push(st.text);
  }
  t.ok(texts.length > 15000, `${texts.length} statements`);

  // Classify, timing only the classifier.
  const results: QueryClassification[] = new Array(texts.length);
  let thrown = 0;
  const started = process.hrtime.bigint();
  for (let k = 0; k < texts.length; k++) {
    try {
      results[k] = classifyQuery(texts[k]!);
    } catch (e) {
      thrown++;
      t.fail(`classifier threw on ${JSON.stringify(texts[k]!.slice(0, 200))}: ${String(e)}`);
    }
  }
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  t.equal(thrown, 0, 'the classifier never throws');
  // A second pass, with the code warmed up, is closer to a long-running proxy.
  let warmMs = Infinity;
  if (thrown === 0) {
    const again = process.hrtime.bigint();
    for (const q of texts) classifyQuery(q);
    warmMs = Number(process.hrtime.bigint() - again) / 1e6;
  }

  let safe = 0;
  let unsafe = 0;
  let violations = 0;
  const byReason = new Map<string, number>();
  const byFirst = new Map<string, { safe: number; unsafe: number }>();
  for (let k = 0; k < texts.length; k++) {
    const r = results[k];
    if (!r) continue;
    const sql = texts[k]!;
    const toks = lexSql(sql).statements.flat();
    const first = toks[0]?.kind === 'keyword_or_ident' ? toks[0].text : toks[0]?.kind ?? '';
    const fc = byFirst.get(first) ?? { safe: 0, unsafe: 0 };
    if (r.replicaSafe) {
      safe++;
      fc.safe++;
    } else {
      unsafe++;
      fc.unsafe++;
      byReason.set(r.reason, (byReason.get(r.reason) ?? 0) + 1);
    }
    byFirst.set(first, fc);
    if (!r.replicaSafe) continue;
    // Independent checks on every statement the classifier calls safe.
    const problems: string[] = [];
    if (DML_FIRST.has(first)) problems.push(`first keyword ${first}`);
    if (first === 'copy' && toks.some((x) => x.is('from') && x.depth === 0)) problems.push('COPY ... FROM');
    for (let j = 0; j < toks.length; j++) {
      const x = toks[j]!;
      const next = toks[j + 1];
      const name = x.kind === 'keyword_or_ident' || x.kind === 'quoted_ident' ? x.text.toLowerCase() : '';
      if ((name === 'nextval' || name === 'setval') && next?.isPunct('(')) problems.push(`${name}() call`);
      if (x.is('for') && next && (next.is('update') || next.is('share') || next.is('no') || next.is('key'))) problems.push('locking clause');
      if ((x.is('insert') || x.is('update') || x.is('delete') || x.is('merge')) && !toks[j - 1]?.isPunct('.')) problems.push(`${x.text} keyword`);
      if (x.is('into')) problems.push('into');
    }
    if (problems.length > 0) {
      violations++;
      t.fail(`replica-safe but ${problems.join(', ')}: ${sql.slice(0, 300)}`);
    }
  }
  t.equal(violations, 0, 'no replica-safe statement writes');
  t.equal(safe + unsafe, texts.length);

  const bytes = texts.reduce((n, s) => n + s.length, 0);
  const rate = (ms: number) =>
    `${Math.round(texts.length / (ms / 1000))} statements/s (${ms.toFixed(1)} ms, ${(bytes / 1024 / 1024 / (ms / 1000)).toFixed(1)} MiB/s)`;
  t.comment(`corpus: ${files.length} files, ${metaLines} meta-command lines skipped, ${texts.length} statements, ${bytes} bytes`);
  t.comment(`replica-safe: ${safe}, not safe: ${unsafe}`);
  t.comment(`throughput, first pass: ${rate(elapsedMs)}; second pass: ${rate(warmMs)}`);
  const top = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, Number(process.env.PGSPLIT_CORPUS_TOP ?? 20))
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  t.comment(`not safe by reason: ${top(byReason)}`);
  const unknownFns = new Map([...byReason.entries()].filter(([k]) => k.startsWith('unknown-function:') || k.startsWith('explain:unknown-function:')));
  t.comment(`unknown functions (${[...unknownFns.values()].reduce((a, b) => a + b, 0)} statements): ${top(unknownFns)}`);
  const firstSafe = [...byFirst.entries()].filter(([, v]) => v.safe > 0).map(([k, v]) => `${k} ${v.safe}/${v.safe + v.unsafe}`);
  t.comment(`safe by first keyword (safe/total): ${firstSafe.join(', ')}`);
  // sanity: the regression suite is mostly SELECTs, and most of them are plain reads
  const sel = byFirst.get('select');
  t.ok(sel && sel.safe > sel.unsafe, 'most SELECTs are replica-safe');
});
