#!/usr/bin/env node
/**
 * Generates src/router/builtin-functions.ts: the built-in functions (and type names usable in the
 * function-call form of a cast, `int4(x)`, `jsonb(x)`) that cannot write, plus PostgreSQL's keyword
 * categories, read from a real server.
 *
 *   npx tsc -p tsconfig.json && node scripts/gen-builtin-functions.mjs [--out FILE] [--bindir DIR]
 *
 * It starts a throwaway PostgreSQL server with the project's LocalCluster (dist/src/cluster), reads
 * pg_proc, pg_type and pg_get_keywords(), and stops the server again.
 *
 * A function name is listed when no writing-function rule of the classifier matches it
 * (DEFAULT_WRITING_FUNCTIONS, DEFAULT_WRITING_FUNCTION_PREFIXES) and every overload of it in pg_catalog
 * (or information_schema) is a plain function or aggregate/window function that is
 *   - IMMUTABLE or STABLE (such functions may not modify the database), or
 *   - VOLATILE but known to be read-only (KNOWN_READ_ONLY_VOLATILE below: clocks, random numbers,
 *     sleeping, server and file status).
 * A name with any other volatile overload is left out (conservative: it then counts as an unknown
 * function). information_schema names are listed qualified ('information_schema._pg_expandarray').
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const argValue = (flag) => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const outFile = path.resolve(argValue('--out') ?? path.join(root, 'src/router/builtin-functions.ts'));
const binDir = argValue('--bindir');

const { LocalCluster } = await import(path.join(root, 'dist/src/cluster/local-cluster.js'));
const { DEFAULT_WRITING_FUNCTIONS, DEFAULT_WRITING_FUNCTION_PREFIXES } = await import(
  path.join(root, 'dist/src/router/statement-classifier.js')
);

/**
 * Volatile built-ins that cannot write and do not depend on state only the primary has. Functions that
 * execute query text (query_to_xml, ts_stat, ts_rewrite), read cursors (cursor_to_xml), export
 * snapshots, or touch sequences, locks, WAL, replication or large objects are deliberately missing.
 */
const KNOWN_READ_ONLY_VOLATILE = new Set([
  // clocks, random numbers, sleeping
  'clock_timestamp',
  'timeofday',
  'random',
  'gen_random_uuid',
  'pg_sleep',
  'pg_sleep_for',
  'pg_sleep_until',
  // this session
  'current_query',
  'pg_jit_available',
  // server status (on a replica they describe the replica, which is what they mean there)
  'pg_is_in_recovery',
  'pg_is_wal_replay_paused',
  'pg_get_wal_replay_pause_state',
  'pg_last_wal_receive_lsn',
  'pg_last_wal_replay_lsn',
  'pg_last_xact_replay_timestamp',
  'pg_last_committed_xact',
  'pg_control_checkpoint',
  'pg_control_init',
  'pg_control_recovery',
  'pg_control_system',
  'pg_get_wal_resource_managers',
  'pg_stat_get_recovery_prefetch',
  'pg_current_logfile',
  'pg_notification_queue_usage',
  'pg_hba_file_rules',
  'pg_ident_file_mappings',
  'pg_show_all_file_settings',
  'pg_get_backend_memory_contexts',
  'pg_get_shmem_allocations',
  // locks and transactions, read only
  'pg_lock_status',
  'pg_blocking_pids',
  'pg_safe_snapshot_blocking_pids',
  'pg_prepared_xact',
  'pg_get_multixact_members',
  'pg_xact_commit_timestamp',
  'pg_xact_commit_timestamp_origin',
  'pg_xact_status',
  'txid_status',
  // sizes and partitions
  'pg_database_size',
  'pg_tablespace_size',
  'pg_relation_size',
  'pg_table_size',
  'pg_indexes_size',
  'pg_total_relation_size',
  'pg_partition_tree',
  'pg_partition_ancestors',
  // statistics of this transaction (read only)
  'pg_stat_have_stats',
  'pg_stat_clear_snapshot',
  'pg_stat_get_xact_blocks_fetched',
  'pg_stat_get_xact_blocks_hit',
  'pg_stat_get_xact_function_calls',
  'pg_stat_get_xact_function_self_time',
  'pg_stat_get_xact_function_total_time',
  'pg_stat_get_xact_numscans',
  'pg_stat_get_xact_tuples_deleted',
  'pg_stat_get_xact_tuples_fetched',
  'pg_stat_get_xact_tuples_hot_updated',
  'pg_stat_get_xact_tuples_inserted',
  'pg_stat_get_xact_tuples_returned',
  'pg_stat_get_xact_tuples_updated',
  // collations
  'pg_collation_actual_version',
  'pg_database_collation_actual_version',
  // server files, read only (superuser or pg_read_server_files)
  'pg_ls_dir',
  'pg_ls_logdir',
  'pg_ls_waldir',
  'pg_ls_tmpdir',
  'pg_ls_archive_statusdir',
  'pg_ls_logicalmapdir',
  'pg_ls_logicalsnapdir',
  'pg_ls_replslotdir',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_stat_file',
]);

function isWriting(name) {
  const lower = name.toLowerCase();
  return DEFAULT_WRITING_FUNCTIONS.has(lower) || DEFAULT_WRITING_FUNCTION_PREFIXES.some((p) => lower.startsWith(p));
}

const cluster = await LocalCluster.start({ replicas: 0, ...(binDir ? { binDir } : {}), log: (m) => process.stderr.write(`${m}\n`) });
let version;
let procs;
let types;
let keywords;
try {
  [{ server_version: version }] = await cluster.primary.query('SHOW server_version');
  procs = await cluster.primary.query(`
    SELECT n.nspname, p.proname, p.prokind, p.provolatile
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('pg_catalog', 'information_schema')`);
  types = await cluster.primary.query(`
    SELECT n.nspname, t.typname
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname IN ('pg_catalog', 'information_schema')
      AND t.typtype IN ('b', 'd', 'e', 'r', 'm') AND t.typcategory <> 'A' AND t.typname NOT LIKE '\\_%'`);
  keywords = await cluster.primary.query('SELECT word, catcode FROM pg_get_keywords()');
} finally {
  await cluster.stop();
}

const key = (nsp, name) => (nsp === 'pg_catalog' ? name : `${nsp}.${name}`);

// Every overload of a name must qualify.
const verdict = new Map(); // key -> true (read-only) | false (left out)
const leftOut = new Map(); // key -> why
for (const p of procs) {
  const k = key(p.nspname, p.proname);
  let ok = true;
  let why = '';
  if (p.prokind === 'p') {
    ok = false;
    why = 'procedure';
  } else if (p.provolatile === 'v' && !KNOWN_READ_ONLY_VOLATILE.has(p.proname)) {
    ok = false;
    why = 'volatile';
  }
  if (isWriting(p.proname)) {
    ok = false;
    why = 'writing-function rule';
  }
  if (!ok && !leftOut.has(k)) leftOut.set(k, why);
  verdict.set(k, (verdict.get(k) ?? true) && ok);
}
// Type names (function-call casts), unless the name is also a function that was left out.
for (const t of types) {
  const k = key(t.nspname, t.typname);
  if (verdict.has(k) || isWriting(t.typname)) continue;
  verdict.set(k, true);
}
for (const name of KNOWN_READ_ONLY_VOLATILE) {
  if (!verdict.has(name)) throw new Error(`KNOWN_READ_ONLY_VOLATILE names ${name}, which PostgreSQL ${version} does not have`);
}

const names = [...verdict.entries()].filter(([, ok]) => ok).map(([k]) => k).sort();
// The one rule that must never break: nothing the classifier treats as writing is on the read-only list.
const bad = names.filter((n) => isWriting(n.slice(n.lastIndexOf('.') + 1)));
if (bad.length > 0) throw new Error(`writing functions on the read-only list: ${bad.join(', ')}`);
for (const n of names) {
  if (!/^[a-z0-9_.$]+$/.test(n)) throw new Error(`unexpected function name ${JSON.stringify(n)}`);
}

const byCat = (c) => keywords.filter((k) => k.catcode === c).map((k) => k.word).sort();
const list = (items) => items.map((n) => `  '${n}',`).join('\n');
const volatileKept = [...KNOWN_READ_ONLY_VOLATILE].sort();

const text = `/**
 * GENERATED FILE, do not edit by hand.
 * Generated by scripts/gen-builtin-functions.mjs from PostgreSQL ${version}
 * (pg_proc, pg_type, pg_get_keywords() of a throwaway server); to regenerate:
 *   npx tsc -p tsconfig.json && node scripts/gen-builtin-functions.mjs
 *
 * BUILTIN_READ_ONLY_FUNCTIONS: names of pg_catalog functions whose every overload is IMMUTABLE or STABLE
 * (or VOLATILE but known to be read-only: ${volatileKept.length} names such as clock_timestamp, random,
 * pg_sleep, pg_is_in_recovery, pg_relation_size), plus pg_catalog type names (usable as function-call
 * casts such as jsonb(x)). information_schema names are qualified. Never a name in
 * DEFAULT_WRITING_FUNCTIONS or starting with one of DEFAULT_WRITING_FUNCTION_PREFIXES (the script and
 * test/function-policy.test.ts check this). ${names.length} names; ${leftOut.size} names left out.
 *
 * PG_*_KEYWORDS: PostgreSQL's keyword categories (reserved, column-name, type/function-name), from which
 * the classifier tells syntax followed by \`(\` (IN (, EXISTS (, numeric(10,2)) from function calls.
 */

export const BUILTIN_FUNCTIONS_SERVER_VERSION = '${version}';

export const BUILTIN_READ_ONLY_FUNCTIONS: ReadonlySet<string> = new Set([
${list(names)}
]);

/** Reserved keywords (catcode R). */
export const PG_RESERVED_KEYWORDS: ReadonlySet<string> = new Set([
${list(byCat('R'))}
]);

/** Column-name keywords (catcode C): special syntax (COALESCE, EXTRACT, ...) and type names (NUMERIC, ...). */
export const PG_COL_NAME_KEYWORDS: ReadonlySet<string> = new Set([
${list(byCat('C'))}
]);

/** Type or function-name keywords (catcode T): JOIN, LIKE, LEFT, ... */
export const PG_TYPE_FUNC_NAME_KEYWORDS: ReadonlySet<string> = new Set([
${list(byCat('T'))}
]);
`;
writeFileSync(outFile, text);
process.stderr.write(`wrote ${outFile}: ${names.length} read-only names from PostgreSQL ${version}; left out ${leftOut.size}\n`);
