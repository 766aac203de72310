/**
 * pgsplit's built-in deny list: the functions whose call keeps a statement off the replicas, and the
 * name families (prefixes) treated the same way. routing.writing_functions adds to it.
 */
import { isWritingFunction } from './function-policy.js';

/**
 * Functions that write, change session state a replica would not share, depend on session state only the
 * primary has, or fail on a standby.
 */
export const DEFAULT_WRITING_FUNCTIONS: ReadonlySet<string> = new Set([
  // sequences
  'nextval',
  'setval',
  'currval', // read-only, but depends on this session's nextval calls, which happened on the primary
  'lastval',
  // advisory locks (session-level ones also pin the session to the primary)
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  // large objects
  'lo_create',
  'lo_creat',
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_open',
  'lo_close',
  'lo_write',
  'lo_put',
  'lo_get',
  'lo_truncate',
  'lo_truncate64',
  'lo_lseek',
  'lo_lseek64',
  'lo_tell',
  'lo_tell64',
  'lo_from_bytea',
  'loread',
  'lowrite',
  // transaction ids (assigning one writes)
  'txid_current',
  'txid_current_if_assigned',
  'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  // session state
  'pg_notify',
  'set_config',
  'setseed',
  // remote execution
  'dblink',
  'dblink_exec',
  'dblink_connect',
  'dblink_connect_u',
  'dblink_disconnect',
  'dblink_open',
  'dblink_fetch',
  'dblink_close',
  'dblink_send_query',
  // WAL, replication and server administration
  'pg_switch_wal',
  'pg_switch_xlog',
  'pg_create_restore_point',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_replication_slot_advance',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_logical_slot_peek_changes',
  'pg_logical_slot_peek_binary_changes',
  'pg_logical_emit_message',
  'pg_log_standby_snapshot',
  'pg_cancel_backend',
  'pg_terminate_backend',
  'pg_log_backend_memory_contexts',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_stat_reset',
  'pg_stat_reset_shared',
  'pg_stat_reset_single_table_counters',
  'pg_stat_reset_single_function_counters',
  'pg_stat_reset_slru',
  'pg_stat_reset_replication_slot',
  'pg_stat_reset_subscription_stats',
  'pg_stat_statements_reset',
  'pg_promote',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_xlog_replay_pause',
  'pg_xlog_replay_resume',
  'pg_current_wal_lsn',
  'pg_current_wal_insert_lsn',
  'pg_current_wal_flush_lsn',
  'pg_current_xlog_location',
  'pg_current_xlog_insert_location',
  'pg_current_xlog_flush_location',
  'pg_walfile_name',
  'pg_walfile_name_offset',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_import_system_collations',
  // index maintenance functions that write
  'brin_summarize_new_values',
  'brin_summarize_range',
  'brin_desummarize_range',
  'gin_clean_pending_list',
  // adminpack file writes
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_file_sync',
]);

/** Name prefixes treated like DEFAULT_WRITING_FUNCTIONS (families with many members). */
export const DEFAULT_WRITING_FUNCTION_PREFIXES: readonly string[] = [
  'pg_advisory_',
  'pg_try_advisory_',
  'lo_',
  'pg_stat_reset',
  'dblink_',
  'pg_replication_origin_',
];

/** True when a (bare) function name is writing under the given list and prefixes (compared lowercased). */
export function isWritingFunctionName(
  name: string,
  fns: ReadonlySet<string> = DEFAULT_WRITING_FUNCTIONS,
  prefixes: readonly string[] = DEFAULT_WRITING_FUNCTION_PREFIXES,
): boolean {
  return isWritingFunction(name.toLowerCase(), { fns, prefixes });
}
