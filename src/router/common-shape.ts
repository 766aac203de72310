/**
 * The classifier's fast path: one pass over the characters of a query string of the shapes that make up
 * nearly all OLTP traffic (one SELECT / VALUES / TABLE / INSERT / UPDATE / DELETE with plain literals
 * and `$n` parameters, or a bare BEGIN / COMMIT / END / ROLLBACK), without making tokens.
 *
 * It answers only when its answer is exactly what the full path (lexer + statement classifier) would
 * return, and gives up (returns undefined) at the first thing outside its shapes: a comment between
 * tokens (it may hold a hint; a `--` comment inside a string continuation is part of the literal, as
 * for the lexer), a quoted identifier, a dollar quote, a prefixed string (E'', B'', X'', N'', U&''), a
 * non-ASCII or unusual character, a second statement, a qualified or unknown function call, and in a
 * read any of FOR / INTO / INSERT / UPDATE / DELETE / MERGE. Giving up costs the scan so far; the full
 * path then decides. test/classifier-fast-path.test.ts holds the two paths equal on PostgreSQL's
 * regression suite, the classifier's own tables and random strings.
 *
 * standard_conforming_strings must be on (the caller checks).
 */
import { CHAR_CLASS, C_DIGIT, C_IDSTART, C_OP, C_PUNCT, C_SPACE, IDENT_CONT } from './char-class.js';
import { scanNumber, scanStandardString } from './sql-scanners.js';
import { isKnownReadOnly, isWritingFunction, NOT_A_CALL, SESSION_PINNING_FUNCTIONS, type FunctionLookup } from './function-policy.js';
import type { QueryClassification, StatementInfo } from './statement-classifier.js';

/** The function policy the fast path applies: the same objects the full path uses. */
export interface CommonShapePolicy {
  fns: ReadonlySet<string>;
  prefixes: readonly string[];
  /** Null when unknown functions are allowed (policy 'replica'). */
  lookup: FunctionLookup | null;
}

/** The lexer's class of a character (C_* bit flags), 0 from code 128 up: anything non-ASCII ends the fast path. */
function classOf(c: number): number {
  return c < 128 ? CHAR_CLASS[c]! : 0;
}

/** Offset just past the ASCII identifier characters from `i`, or -1 at a non-ASCII one (the full path decides). */
function asciiWordEnd(sql: string, i: number): number {
  const n = sql.length;
  for (; i < n; i++) {
    const c = sql.charCodeAt(i);
    if (c >= 128) return -1;
    if (IDENT_CONT[c] === 0) break;
  }
  return i;
}

const enum Shape {
  Read,
  Write,
  Transaction,
}

/** The statements the fast path knows, by their first word, with the full path's reason for them. */
const LEADING_WORDS: ReadonlyMap<string, { shape: Shape; reason: string }> = new Map([
  ['select', { shape: Shape.Read, reason: 'select' }],
  ['values', { shape: Shape.Read, reason: 'values' }],
  ['table', { shape: Shape.Read, reason: 'table' }],
  ['insert', { shape: Shape.Write, reason: 'insert' }],
  ['update', { shape: Shape.Write, reason: 'update' }],
  ['delete', { shape: Shape.Write, reason: 'delete' }],
  ['begin', { shape: Shape.Transaction, reason: 'begin' }],
  ['commit', { shape: Shape.Transaction, reason: 'commit' }],
  ['end', { shape: Shape.Transaction, reason: 'commit' }],
  ['rollback', { shape: Shape.Transaction, reason: 'rollback' }],
]);

function leadingWord(sql: string, start: number, end: number): { shape: Shape; reason: string } | undefined {
  const len = end - start;
  if (len < 3 || len > 8) return undefined;
  // Cheap rejection by first letter before making the lowercase string.
  const c = sql.charCodeAt(start) | 0x20;
  if (c !== 0x73 && c !== 0x76 && c !== 0x74 && c !== 0x69 && c !== 0x75 && c !== 0x64 && c !== 0x62 && c !== 0x63 && c !== 0x65 && c !== 0x72) {
    return undefined;
  }
  return LEADING_WORDS.get(sql.slice(start, end).toLowerCase());
}

/** True when sql[start, end) is `word` (lowercase) ignoring ASCII case. */
function wordIs(sql: string, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let k = 0; k < word.length; k++) {
    if ((sql.charCodeAt(start + k) | 0x20) !== word.charCodeAt(k)) return false;
  }
  return true;
}

/** Words that end the fast path inside a read: the full path decides what they mean there. */
function isReadStopWord(sql: string, start: number, end: number): boolean {
  switch (end - start) {
    case 3:
      return wordIs(sql, start, end, 'for');
    case 4:
      return wordIs(sql, start, end, 'into');
    case 5:
      return wordIs(sql, start, end, 'merge');
    case 6:
      return wordIs(sql, start, end, 'insert') || wordIs(sql, start, end, 'update') || wordIs(sql, start, end, 'delete');
    default:
      return false;
  }
}

/**
 * The full path's classification of `sql`, when `sql` has one of the common shapes; otherwise undefined.
 * Never throws.
 */
export function classifyCommonShape(sql: string, policy: CommonShapePolicy): QueryClassification | undefined {
  const n = sql.length;
  let i = 0;
  while (i < n && classOf(sql.charCodeAt(i)) === C_SPACE) i++;
  // The first word decides the shape.
  const first = i;
  if (i >= n || classOf(sql.charCodeAt(i)) !== C_IDSTART) return undefined;
  i = asciiWordEnd(sql, i + 1);
  if (i < 0) return undefined;
  const lead = leadingWord(sql, first, i);
  if (lead === undefined) return undefined;
  const shape = lead.shape;
  const reason = lead.reason;
  if (i < n && sql.charCodeAt(i) === 39 /* ' */) return undefined; // a word right before a quote: see below

  let lastEnd = i; // end of the statement's last token
  let afterDot = false; // the previous token was `.`
  let onlyWord = true; // nothing after the first word (what BEGIN / COMMIT / END / ROLLBACK need)
  let depth = 0; // parentheses: a `;` inside them does not end the statement
  // The last token, when it is a word: [wordStart, wordEnd), and whether `.` came before it.
  let wordStart = first;
  let wordEnd = i;
  let wordAfterDot = false;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c >= 128) return undefined;
    const cls = CHAR_CLASS[c]!;
    if (cls === C_SPACE) {
      i++;
      continue;
    }
    if (c === 59 /* ; */) {
      // Only a trailing `;` (then nothing but whitespace) outside parentheses: one statement.
      if (depth > 0) return undefined;
      let k = i + 1;
      while (k < n && classOf(sql.charCodeAt(k)) === C_SPACE) k++;
      if (k < n) return undefined;
      break;
    }
    onlyWord = false;
    if (cls === C_IDSTART) {
      const start = i;
      i = asciiWordEnd(sql, i + 1);
      if (i < 0) return undefined;
      if (i < n) {
        const d = sql.charCodeAt(i);
        // A word right before a quote: a prefixed string (E'', B'', X'', N'') when it is one of those
        // letters, else a typed literal (date'...'); either way the full path decides.
        if (d === 39 /* ' */) return undefined;
        if (d === 38 /* & */ && i === start + 1 && (c | 0x20) === 0x75) return undefined; // U&'' / U&""
      }
      if (shape === Shape.Read && isReadStopWord(sql, start, i)) return undefined;
      // A call if the next token is `(`: checked there.
      wordStart = start;
      wordEnd = i;
      wordAfterDot = afterDot;
      afterDot = false;
      lastEnd = i;
      continue;
    }
    if (c === 40 /* ( */ && wordStart >= 0) {
      if (wordAfterDot) return undefined; // schema-qualified
      const name = sql.slice(wordStart, wordEnd).toLowerCase();
      if (SESSION_PINNING_FUNCTIONS.has(name)) return undefined;
      if (shape === Shape.Read) {
        if (isWritingFunction(name, policy)) return undefined;
        const lookup = policy.lookup;
        if (lookup !== null && !isKnownReadOnly(null, name, lookup) && !NOT_A_CALL.has(name)) return undefined;
      }
    }
    wordStart = -1;
    afterDot = false;
    if (cls === C_DIGIT || (c === 46 /* . */ && i + 1 < n && classOf(sql.charCodeAt(i + 1)) === C_DIGIT)) {
      i = scanNumber(sql, i);
      lastEnd = i;
      continue;
    }
    if (c === 39 /* ' */) {
      const end = scanStandardString(sql, i);
      if (end < 0) return undefined;
      i = end;
      lastEnd = i;
      continue;
    }
    if (c === 36 /* $ */) {
      // $n; anything else is a dollar quote or stray `$`
      if (!(i + 1 < n && classOf(sql.charCodeAt(i + 1)) === C_DIGIT)) return undefined;
      i += 2;
      while (i < n && classOf(sql.charCodeAt(i)) === C_DIGIT) i++;
      lastEnd = i;
      continue;
    }
    if ((cls & C_OP) !== 0) {
      // An operator run; `--` or `/*` anywhere in it starts a comment.
      while (i < n) {
        const d = sql.charCodeAt(i);
        if ((classOf(d) & C_OP) === 0) break;
        if ((d === 45 || d === 47) && i + 1 < n) {
          const e = sql.charCodeAt(i + 1);
          if ((d === 45 && e === 45) || (d === 47 && e === 42)) return undefined;
        }
        i++;
      }
      lastEnd = i;
      continue;
    }
    // `.` before the other punctuation: it makes the next word qualified.
    if (c === 46 /* . */) {
      if (i + 1 < n && sql.charCodeAt(i + 1) === 46) return undefined; // `..`
      afterDot = true;
      i++;
      lastEnd = i;
      continue;
    }
    if (cls === C_PUNCT) {
      if (c === 40 /* ( */) depth++;
      else if (c === 41 /* ) */ && depth > 0) depth--;
      i++;
      lastEnd = i;
      continue;
    }
    return undefined; // `"`, `\`, `{`, a control character, ...
  }
  if (shape === Shape.Transaction && !onlyWord) return undefined;

  const text = sql.slice(first, lastEnd);
  let info: StatementInfo;
  if (shape === Shape.Read) info = { kind: 'read', replicaSafe: true, reason, text };
  else if (shape === Shape.Write) info = { kind: 'write', replicaSafe: false, reason, text };
  else {
    info = { kind: 'transaction', replicaSafe: false, reason, text };
    info.transaction = reason === 'begin' ? 'begin' : reason === 'commit' ? 'commit' : 'rollback';
  }
  return {
    statements: [info],
    replicaSafe: info.replicaSafe,
    reason: info.replicaSafe ? 'read-only' : reason,
    hints: { malformed: [] },
  };
}
