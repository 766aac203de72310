/**
 * What the classifier says about a query string and each of its statements: the result types of
 * classifyQuery (./statement-classifier.ts), read by the router, the session and EXPLAIN ROUTE.
 */
import type { RouteHints } from './route-hint.js';

export type StatementKind = 'read' | 'write' | 'transaction' | 'session' | 'utility' | 'unknown';

export type TransactionEffect =
  | 'begin'
  | 'begin-read-only'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'release'
  | 'rollback-to'
  | 'prepare-transaction';

export type PinReason = 'listen' | 'temp-table' | 'advisory-lock' | 'setseed' | 'cursor-with-hold' | 'sql-prepare';

export interface SettingEffect {
  /** Parameter name, lowercased (quoted parts kept as written); dotted names are joined with '.'. */
  name: string;
  /** Value as written (strings unquoted, identifiers lowercased, list items joined with ', '); null = RESET / DEFAULT. */
  value: string | null;
  local: boolean;
  /** RESET ALL. */
  all?: boolean;
}

export interface StatementInfo {
  kind: StatementKind;
  /** True only for statements that can never write. */
  replicaSafe: boolean;
  /** Short and stable, e.g. 'select', 'insert', 'locking-clause', 'writing-function:nextval', 'begin', 'set'. */
  reason: string;
  /** The statement's source text, from its first token to its last (comments outside it excluded). */
  text: string;
  /** Transaction control effect. */
  transaction?: TransactionEffect;
  /** COMMIT/ROLLBACK/END/ABORT ... AND CHAIN: a new transaction starts right after this one ends. */
  chain?: boolean;
  /** SET/RESET of a parameter. */
  setting?: SettingEffect;
  /** This statement ties the session to the primary from now on. */
  pinsPrimary?: PinReason;
  /** DISCARD ALL / RESET ALL (clears session state). */
  discard?: boolean;
}

export interface QueryClassification {
  statements: StatementInfo[];
  /** Every statement replicaSafe, and the string is non-empty and lexed cleanly. */
  replicaSafe: boolean;
  /** 'unterminated', 'empty', the reason of the first statement that is not safe, else 'read-only'. */
  reason: string;
  hints: RouteHints;
}
