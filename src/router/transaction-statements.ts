/**
 * What the router knows about transaction statements, by their text and classification: the modes of a
 * BEGIN, isolation levels, and which statements may run inside a tagged session's replica transaction
 * and must be replayed if it moves to the primary (the session's TaggedTransaction uses them; so does
 * EXPLAIN ROUTE).
 */
import type { QueryClassification, StatementInfo } from './statement-classifier.js';

export type Isolation = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';

/** The modes of a BEGIN / START TRANSACTION, when pgsplit understands all of them. */
export interface BeginModes {
  isolation?: Isolation;
  readOnly?: boolean;
}

const BEGIN_HEAD = /^(?:begin|start\s+transaction)(?:\s+(?:work|transaction))?/i;
const MODE = /^(?:isolation\s+level\s+(serializable|repeatable\s+read|read\s+committed|read\s+uncommitted)|read\s+(only|write)|(?:not\s+)?deferrable)/i;

/**
 * Parses the modes of a BEGIN statement (its text as the classifier gives it: no comments around it).
 * Null when the text holds anything else (a comment inside, an unknown word): such a BEGIN is not
 * deferred, since only the server could say whether it is valid.
 */
export function parseBeginModes(text: string): BeginModes | null {
  const head = BEGIN_HEAD.exec(text);
  if (!head) return null;
  let rest = text.slice(head[0].length).replace(/;\s*$/, '').trim();
  const modes: BeginModes = {};
  let first = true;
  while (rest.length > 0) {
    if (!first && rest.startsWith(',')) rest = rest.slice(1).trimStart();
    const m = MODE.exec(rest);
    if (!m) return null;
    if (m[1] !== undefined) modes.isolation = isolationOf(m[1]) ?? undefined;
    if (m[2] !== undefined) modes.readOnly = m[2].toLowerCase() === 'only';
    rest = rest.slice(m[0].length).trimStart();
    first = false;
  }
  return modes;
}

/** A BEGIN as a replica may run it: the client's isolation level, without READ WRITE (see opening). */
export function replicaBegin(text: string): string {
  const modes = parseBeginModes(text);
  if (modes === null || modes.readOnly !== false) return text;
  return modes.isolation !== undefined ? `BEGIN ISOLATION LEVEL ${modes.isolation.toUpperCase()}` : 'BEGIN';
}

/** An isolation level as SHOW prints it or a SET writes it (any case and spacing); null if none. */
export function isolationOf(value: string): Isolation | null {
  const v = value.trim().replace(/^'|'$/g, '').replace(/[\s_]+/g, ' ').toLowerCase();
  if (v === 'serializable' || v === 'repeatable read' || v === 'read committed' || v === 'read uncommitted') return v;
  return null;
}

/** Whether transactions of this isolation may start on a replica and move to the primary later. */
export function movableIsolation(i: Isolation): boolean {
  return i === 'read committed' || i === 'read uncommitted';
}

/**
 * A statement that runs inside a replica transaction without making it move: it changes no data, and
 * the primary learns it from the replay when the transaction moves.
 */
export function isTransactionNeutral(s: StatementInfo): boolean {
  const t = s.transaction;
  if (t === 'savepoint' || t === 'release' || t === 'rollback-to' || t === 'commit' || t === 'rollback') return true;
  if (s.reason === 'set-constraints') return true;
  // The transaction's own characteristics are not: a standby refuses some of them (serializable, read
  // write), and they mean something else on the primary once moved.
  return s.setting !== undefined && s.setting.all !== true && !TRANSACTION_SETTINGS.has(s.setting.name);
}

/** Whether the statement must be replayed on the primary when the transaction moves there. */
export function needsReplay(s: StatementInfo): boolean {
  const t = s.transaction;
  return t === 'savepoint' || t === 'release' || t === 'rollback-to' || s.setting !== undefined || s.reason === 'set-constraints' ||
    // SET TRANSACTION READ ONLY (or a nested BEGIN with modes) that the replica accepted: the primary must make
    // the transaction read-only too.
    s.reason === 'set-transaction' || (t === 'begin' && /\bread\s+only\b/i.test(s.text));
}

const TRANSACTION_SETTINGS = new Set([
  'transaction_isolation', 'transaction_read_only', 'transaction_deferrable',
  // The session's defaults for them too: a serializable default makes a standby refuse what follows.
  'default_transaction_isolation', 'session_characteristics', 'default_transaction_read_only', 'default_transaction_deferrable',
]);

/** The statements of a unit's classifications, in order. */
export function statementsOf(classifications: readonly QueryClassification[]): StatementInfo[] {
  const out: StatementInfo[] = [];
  for (const c of classifications) for (const s of c.statements) out.push(s);
  return out;
}

/**
 * For a statement that sets transaction characteristics (SET TRANSACTION, a BEGIN inside the transaction,
 * SET transaction_*): 'read-write' when it asks for READ WRITE (a standby refuses what the primary accepts),
 * 'other' for anything else, null for any other statement.
 */
export function transactionCharacteristics(s: StatementInfo): 'read-write' | 'other' | null {
  const name = s.setting?.name;
  const isTx = s.transaction === 'begin' || s.reason === 'set-transaction' ||
    name === 'transaction_isolation' || name === 'transaction_read_only' || name === 'transaction_deferrable';
  if (!isTx) return null;
  if (/\bread\s+write\b/i.test(s.text) || (name === 'transaction_read_only' && /\b(off|false|0|no)\b/i.test(s.setting?.value ?? ''))) return 'read-write';
  return 'other';
}

/**
 * Whether a Query's text may start with BEGIN, START, COMMIT, END, ROLLBACK or ABORT, judged by its first
 * two characters without classifying it (a tagged session's every Query is asked this, and most are
 * reads). False is exact: the first keyword is none of those. Text that opens with a comment (it may
 * hold a hint), a quote, a parenthesis or anything but an ASCII letter says true, and is classified.
 */
export function mayBeTransactionControl(sql: string): boolean {
  const n = sql.length;
  let i = 0;
  for (; i < n; i++) {
    const c = sql.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c) break;
  }
  if (i + 1 >= n) return true;
  const a = sql.charCodeAt(i) | 0x20;
  const b = sql.charCodeAt(i + 1) | 0x20;
  if (a < 0x61 || a > 0x7a) return true;
  switch (a) {
    case 0x62: return b === 0x65; // be(gin)
    case 0x73: return b === 0x74; // st(art)
    case 0x63: return b === 0x6f; // co(mmit)
    case 0x65: return b === 0x6e; // en(d)
    case 0x72: return b === 0x6f; // ro(llback)
    case 0x61: return b === 0x62; // ab(ort)
    default: return false;
  }
}
