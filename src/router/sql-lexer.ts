/**
 * A lexer for PostgreSQL's SQL dialect, written to agree with the server's own scanner (scan.l) on the one
 * thing routing depends on: which characters are code and which are inside a string, a quoted identifier,
 * a dollar-quoted body or a comment, and so where each statement of a multi-statement string ends.
 *
 * It runs on every statement the proxy sees, so it is one pass over the string with charCodeAt and table
 * look-ups: no regular expressions, and no string is made per token. A token's `text` (lowercased
 * identifier, unescaped string or identifier) is computed the first time it is read; `is('select')`
 * compares a keyword without making a string at all.
 *
 * What it understands, as PostgreSQL does:
 * - `--` line comments and nested `/* ... *\/` block comments (kept aside in `comments`, for hints);
 * - `'...'` with `''`; E'...' (also e'') with backslash escapes; B'..', X'..', N'..'; U&'...' and U&"..."
 *   (with a following UESCAPE 'c'); adjacent string segments separated by whitespace holding a newline
 *   are one literal, continued in the same escape mode (`E'a'\n'\''` is one escape string);
 * - plain strings follow standard_conforming_strings=on (backslash is an ordinary character) unless the
 *   caller says the server runs with it off;
 * - dollar quoting (`$$...$$`, `$tag$...$tag$`, tag an identifier without `$`), positional parameters
 *   (`$1`), identifiers that contain `$` (`a$b`), quoted identifiers with `""`;
 * - numbers (`1`, `1.5`, `.5`, `1e-3`, `0x1F`, `1_000`; `1..2` is `1` and two dots), operators with the
 *   server's rules (an operator stops before `--` or `/*`; a multi-character operator does not end in `+`
 *   or `-` unless it holds one of `~!@#%^&|\`?`), punctuation `( ) , ; . .. [ ] :: :` (`:=` and `=>` are
 *   operators);
 * - statement boundaries: a `;` outside parentheses ends a statement, except inside the
 *   `BEGIN ATOMIC ... END` body of a CREATE FUNCTION / PROCEDURE, as the server's grammar does. A `;`
 *   that does not end a statement is kept as a 'punct' token of it.
 *
 * An unterminated string, identifier or comment is lexed to the end of the input and `unterminated` is
 * set: the server would reject the whole query string, and the classifier treats it as unknown.
 * A character the server does not know (`\`, `{`, ...) becomes a one-character 'operator' token.
 */

export type TokenKind = 'keyword_or_ident' | 'quoted_ident' | 'string' | 'number' | 'param' | 'operator' | 'punct';

/** How a 'string' token was written ('unicode' is also used for U&"..." quoted identifiers). */
export type StringStyle = 'standard' | 'escape' | 'bit' | 'hex' | 'national' | 'unicode' | 'dollar';

export interface Comment {
  kind: 'line' | 'block';
  /** Offset of the first character (`-` or `/`). */
  start: number;
  /** Offset just past the comment (past `*\/`; a line comment ends before its newline). */
  end: number;
  /** The comment as written, delimiters included. */
  text: string;
  /** The comment without its delimiters (`--`, `/*`, `*\/`). */
  body: string;
  /** False for a block comment that runs to the end of the input. */
  terminated: boolean;
}

export interface LexResult {
  /** Tokens of each statement, split at top-level `;`; empty statements are dropped. */
  statements: Token[][];
  comments: Comment[];
  /** A string, quoted identifier or block comment runs to the end of the input. */
  unterminated: boolean;
}

export interface LexOptions {
  /**
   * The server's standard_conforming_strings (default true, PostgreSQL's default since 9.1). When false,
   * backslash escapes a quote in plain '...' strings too, as the server then does.
   */
  standardConformingStrings?: boolean;
}

export class Token {
  // Fields are `declare`d and assigned once in the constructor (no define-then-assign, no private
  // brand checks): a Token is made for every token of every statement the proxy classifies.
  declare readonly kind: TokenKind;
  /** Offset of the token's first character in the lexed string. */
  declare readonly start: number;
  /** Offset just past the token. */
  declare readonly end: number;
  /**
   * Parenthesis depth: 0 at the top level of a statement. An opening `(` has the depth outside it, the
   * tokens within have one more, the closing `)` the depth outside again.
   */
  declare readonly depth: number;
  /** For 'string' tokens (and U&"..." identifiers): how the literal was written. */
  declare readonly style: StringStyle | undefined;
  declare private readonly src: string;
  declare private decoded: string | undefined;
  /** Character code of the escape character of a U& literal, or -1 when backslash escapes apply. */
  declare private readonly esc: number;

  constructor(kind: TokenKind, src: string, start: number, end: number, depth: number, style?: StringStyle, esc = -1) {
    this.kind = kind;
    this.start = start;
    this.end = end;
    this.depth = depth;
    this.style = style;
    this.src = src;
    this.decoded = undefined;
    this.esc = esc;
  }

  /**
   * The token's value: an unquoted identifier or keyword lowercased (ASCII letters only, like the server),
   * a quoted identifier or string literal with its quoting and escapes undone, anything else as written.
   */
  get text(): string {
    let t = this.decoded;
    if (t === undefined) {
      t = this.decode();
      this.decoded = t;
    }
    return t;
  }

  /** The token exactly as written in the source. */
  get raw(): string {
    return this.src.slice(this.start, this.end);
  }

  /**
   * True when this is an unquoted identifier or keyword equal to `word`, ignoring ASCII case. `word` must
   * be lowercase. Makes no string.
   */
  is(word: string): boolean {
    if (this.kind !== 'keyword_or_ident') return false;
    const len = word.length;
    if (this.end - this.start !== len) return false;
    const src = this.src;
    const base = this.start;
    for (let k = 0; k < len; k++) {
      let c = src.charCodeAt(base + k);
      if (c >= 65 && c <= 90) c += 32;
      if (c !== word.charCodeAt(k)) return false;
    }
    return true;
  }

  /** True when this is the punctuation `p` (`(`, `)`, `,`, `;`, `.`, `[`, `]`, `::`, `:`). */
  isPunct(p: string): boolean {
    return this.kind === 'punct' && this.end - this.start === p.length && this.src.startsWith(p, this.start);
  }

  /** True when this is the operator `op` exactly. */
  isOperator(op: string): boolean {
    return this.kind === 'operator' && this.end - this.start === op.length && this.src.startsWith(op, this.start);
  }

  /** Shown by util.inspect and JSON.stringify instead of the source reference. */
  toJSON(): { kind: TokenKind; text: string; start: number; end: number; depth: number } {
    return { kind: this.kind, text: this.text, start: this.start, end: this.end, depth: this.depth };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return this.toJSON();
  }

  private decode(): string {
    const src = this.src;
    switch (this.kind) {
      case 'keyword_or_ident':
        return asciiLower(src, this.start, this.end);
      case 'quoted_ident': {
        const unicode = this.style === 'unicode';
        const open = unicode ? this.start + 2 : this.start;
        const close = src.charCodeAt(this.end - 1) === DQUOTE && this.end - 1 > open ? this.end - 1 : this.end;
        let s = src.slice(open + 1, close);
        if (s.includes('""')) s = s.replaceAll('""', '"');
        return unicode ? decodeUnicodeEscapes(s, this.esc === -1 ? BACKSLASH : this.esc) : s;
      }
      case 'string':
        return decodeStringToken(src, this.start, this.end, this.style ?? 'standard', this.esc);
      default:
        return src.slice(this.start, this.end);
    }
  }
}

// Character codes.
const TAB = 9;
const LF = 10;
const VT = 11;
const FF = 12;
const CR = 13;
const SPACE = 32;
const DQUOTE = 34;
const DOLLAR = 36;
const AMP = 38;
const QUOTE = 39;
const LPAREN = 40;
const RPAREN = 41;
const STAR = 42;
const PLUS = 43;
const MINUS = 45;
const DOT = 46;
const SLASH = 47;
const COLON = 58;
const EQUALS = 61;
const BACKSLASH = 92;

// Character classes for codes below 128 (bit flags in CHAR_CLASS); every code from 128 up (any
// non-ASCII UTF-16 unit) is an identifier character, as the server treats every high-bit byte.
export const C_SPACE = 1;
export const C_IDSTART = 2;
export const C_DIGIT = 4;
/** Operator characters: `~!@#^&|\`?+-*\/%<>=`. */
export const C_OP = 8;
/** Punctuation: `( ) , ; [ ] . :`. */
export const C_PUNCT = 16;
/** Operator characters that allow a multi-character operator to end in `+` or `-`. */
const C_OPSPECIAL = 32;

const CLASS = new Uint8Array(128);
/** The classes (C_*) of the codes below 128; shared with the classifier's fast path (./common-shape.ts). */
export const CHAR_CLASS: Readonly<Uint8Array> = CLASS;
for (const c of [SPACE, TAB, LF, VT, FF, CR]) CLASS[c] = C_SPACE;
for (let c = 65; c <= 90; c++) CLASS[c] = C_IDSTART;
for (let c = 97; c <= 122; c++) CLASS[c] = C_IDSTART;
CLASS[95] = C_IDSTART; // _
for (let c = 48; c <= 57; c++) CLASS[c] = C_DIGIT;
for (const ch of '~!@#^&|`?+-*/%<>=') CLASS[ch.charCodeAt(0)] = C_OP;
for (const ch of '~!@#^&|`?%') CLASS[ch.charCodeAt(0)] = C_OP | C_OPSPECIAL;
for (const ch of '(),;[].:') CLASS[ch.charCodeAt(0)] = C_PUNCT;

/** 1 for the characters that continue an identifier (letters, digits, `_`, `$`), for codes below 128. */
export const IDENT_CONT = new Uint8Array(128);
for (let c = 0; c < 128; c++) if ((CLASS[c]! & (C_IDSTART | C_DIGIT)) !== 0 || c === DOLLAR) IDENT_CONT[c] = 1;

function isIdentStart(c: number): boolean {
  return c >= 128 || (CLASS[c]! & C_IDSTART) !== 0;
}
/** Identifier continuation: letters, digits, `_`, `$`, non-ASCII. */
function isIdentCont(c: number): boolean {
  return c >= 128 || (CLASS[c]! & (C_IDSTART | C_DIGIT)) !== 0 || c === DOLLAR;
}
/** Dollar-quote tag continuation: like an identifier, without `$`. */
function isTagCont(c: number): boolean {
  return c >= 128 || (CLASS[c]! & (C_IDSTART | C_DIGIT)) !== 0;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
function isSpace(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_SPACE) !== 0;
}
function isOpChar(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_OP) !== 0;
}

/** Lowercases ASCII letters only, like the server's identifier downcasing in a multibyte encoding. */
function asciiLower(src: string, start: number, end: number): string {
  let k = start;
  for (; k < end; k++) {
    const c = src.charCodeAt(k);
    if (c >= 65 && c <= 90) break;
  }
  const s = src.slice(start, end);
  if (k === end) return s;
  let ascii = true;
  for (let j = start; j < end; j++) {
    if (src.charCodeAt(j) >= 128) {
      ascii = false;
      break;
    }
  }
  if (ascii) return s.toLowerCase();
  let out = '';
  for (let j = 0; j < s.length; j++) {
    const c = s.charCodeAt(j);
    out += c >= 65 && c <= 90 ? String.fromCharCode(c + 32) : s[j];
  }
  return out;
}

/** Escape handling inside a single-quoted literal. */
const Q_STANDARD = 0; // '' doubles a quote, backslash is ordinary
const Q_BACKSLASH = 1; // '' doubles a quote, backslash escapes the next character
const Q_NODOUBLE = 2; // B'' and X'': the first quote ends the segment

/**
 * Offset just past a single-quoted literal whose opening quote is at `open`, following segment
 * continuations; -1 when it runs to the end of the input.
 */
function scanQuoted(src: string, open: number, mode: number): number {
  const n = src.length;
  let i = open + 1;
  for (;;) {
    // Find the closing quote of this segment.
    let closed = -1;
    while (i < n) {
      const c = src.charCodeAt(i);
      if (c === QUOTE) {
        if (mode !== Q_NODOUBLE && i + 1 < n && src.charCodeAt(i + 1) === QUOTE) {
          i += 2;
          continue;
        }
        closed = i + 1;
        break;
      }
      if (c === BACKSLASH && mode === Q_BACKSLASH) {
        i += 2;
        continue;
      }
      i++;
    }
    if (closed < 0) return -1;
    const next = continuation(src, closed);
    if (next < 0) return closed;
    i = next + 1;
  }
}

/**
 * After a closing quote at `from - 1`: the offset of the quote that continues the literal, or -1. The
 * server continues a literal across whitespace that holds a newline, with `--` comments allowed in it:
 * {horiz_whitespace}*{newline}{special_whitespace}*{quote}.
 */
function continuation(src: string, from: number): number {
  const n = src.length;
  let k = from;
  let newline = false;
  while (k < n) {
    const c = src.charCodeAt(k);
    if (c === SPACE || c === TAB || c === FF) k++;
    else if (c === LF || c === CR) {
      newline = true;
      k++;
    } else if (c === VT) {
      if (!newline) return -1;
      k++;
    } else if (c === MINUS && k + 1 < n && src.charCodeAt(k + 1) === MINUS) {
      let m = k + 2;
      while (m < n) {
        const d = src.charCodeAt(m);
        if (d === LF || d === CR) break;
        m++;
      }
      if (m >= n) return -1; // a comment must be followed by a newline
      k = m;
    } else break;
  }
  return newline && k < n && src.charCodeAt(k) === QUOTE ? k : -1;
}

/** Offset past any whitespace and comments from `k` (nothing is recorded). */
function skipTrivia(src: string, k: number): number {
  const n = src.length;
  while (k < n) {
    const c = src.charCodeAt(k);
    if (isSpace(c)) k++;
    else if (c === MINUS && src.charCodeAt(k + 1) === MINUS) {
      k += 2;
      while (k < n && src.charCodeAt(k) !== LF && src.charCodeAt(k) !== CR) k++;
    } else if (c === SLASH && src.charCodeAt(k + 1) === STAR) {
      k = scanBlockComment(src, k);
      if (k < 0) return n;
    } else break;
  }
  return k;
}

/** Offset just past a (nested) block comment starting at `k`, or -1 when unterminated. */
function scanBlockComment(src: string, k: number): number {
  const n = src.length;
  let level = 1;
  let j = k + 2;
  while (j < n) {
    const c = src.charCodeAt(j);
    if (c === SLASH && j + 1 < n && src.charCodeAt(j + 1) === STAR) {
      level++;
      j += 2;
    } else if (c === STAR && j + 1 < n && src.charCodeAt(j + 1) === SLASH) {
      level--;
      j += 2;
      if (level === 0) return j;
    } else j++;
  }
  return -1;
}

/**
 * For a U& literal ending at `end`: the escape character given by a following `UESCAPE 'c'`, or -1
 * (backslash).
 */
function uescapeAfter(src: string, end: number): number {
  let k = skipTrivia(src, end);
  if (k + 7 > src.length) return -1;
  const word = 'uescape';
  for (let j = 0; j < 7; j++) {
    let c = src.charCodeAt(k + j);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== word.charCodeAt(j)) return -1;
  }
  k += 7;
  if (k < src.length && isIdentCont(src.charCodeAt(k))) return -1;
  k = skipTrivia(src, k);
  if (src.charCodeAt(k) === QUOTE && src.charCodeAt(k + 2) === QUOTE && k + 2 < src.length) {
    return src.charCodeAt(k + 1);
  }
  return -1;
}

/**
 * Splits `sql` into statements of tokens, and collects its comments. Never throws.
 */
export function lexSql(sql: string, options?: LexOptions): LexResult {
  const scs = options?.standardConformingStrings !== false;
  const n = sql.length;
  const statements: Token[][] = [];
  const comments: Comment[] = [];
  let unterminated = false;
  let cur: Token[] = [];
  let depth = 0;
  // BEGIN ATOMIC tracking (only in a CREATE ... FUNCTION/PROCEDURE statement).
  let isCreate = false;
  let sawRoutine = false;
  let atomic = 0;
  let i = 0;

  while (i < n) {
    const c = sql.charCodeAt(i);
    const cls = c < 128 ? CLASS[c]! : C_IDSTART;

    if (cls & C_SPACE) {
      i++;
      continue;
    }

    // Comments.
    if (c === MINUS && i + 1 < n && sql.charCodeAt(i + 1) === MINUS) {
      let j = i + 2;
      while (j < n) {
        const d = sql.charCodeAt(j);
        if (d === LF || d === CR) break;
        j++;
      }
      comments.push({ kind: 'line', start: i, end: j, text: sql.slice(i, j), body: sql.slice(i + 2, j), terminated: true });
      i = j;
      continue;
    }
    if (c === SLASH && i + 1 < n && sql.charCodeAt(i + 1) === STAR) {
      const j = scanBlockComment(sql, i);
      if (j < 0) {
        unterminated = true;
        comments.push({ kind: 'block', start: i, end: n, text: sql.slice(i), body: sql.slice(i + 2), terminated: false });
        i = n;
        break;
      }
      comments.push({ kind: 'block', start: i, end: j, text: sql.slice(i, j), body: sql.slice(i + 2, j - 2), terminated: true });
      i = j;
      continue;
    }

    // Identifiers, keywords and prefixed literals.
    if (cls & C_IDSTART) {
      const c1 = i + 1 < n ? sql.charCodeAt(i + 1) : -1;
      if (c1 === QUOTE) {
        const lower = c | 0x20;
        let mode = -1;
        let style: StringStyle = 'standard';
        if (lower === 0x65) {
          mode = Q_BACKSLASH;
          style = 'escape';
        } else if (lower === 0x62) {
          mode = Q_NODOUBLE;
          style = 'bit';
        } else if (lower === 0x78) {
          mode = Q_NODOUBLE;
          style = 'hex';
        } else if (lower === 0x6e) {
          mode = scs ? Q_STANDARD : Q_BACKSLASH;
          style = 'national';
        }
        if (mode >= 0) {
          let end = scanQuoted(sql, i + 1, mode);
          if (end < 0) {
            unterminated = true;
            end = n;
          }
          cur.push(new Token('string', sql, i, end, depth, style, mode === Q_BACKSLASH ? BACKSLASH : -1));
          i = end;
          continue;
        }
      } else if ((c | 0x20) === 0x75 && c1 === AMP && i + 2 < n) {
        const c2 = sql.charCodeAt(i + 2);
        if (c2 === QUOTE) {
          let end = scanQuoted(sql, i + 2, Q_STANDARD);
          if (end < 0) {
            unterminated = true;
            end = n;
          }
          cur.push(new Token('string', sql, i, end, depth, 'unicode', uescapeAfter(sql, end)));
          i = end;
          continue;
        }
        if (c2 === DQUOTE) {
          let end = scanQuotedIdent(sql, i + 2);
          if (end < 0) {
            unterminated = true;
            end = n;
          }
          cur.push(new Token('quoted_ident', sql, i, end, depth, 'unicode', uescapeAfter(sql, end)));
          i = end;
          continue;
        }
      }
      let j = i + 1;
      // The loop that runs most: one table look-up per character.
      for (; j < n; j++) {
        const d = sql.charCodeAt(j);
        if (d < 128 && IDENT_CONT[d] === 0) break;
      }
      const t = new Token('keyword_or_ident', sql, i, j, depth);
      // Only a statement that starts with CREATE can hold a BEGIN ATOMIC body: nothing to track otherwise.
      if (cur.length === 0) isCreate = t.is('create');
      else if (isCreate) {
        if (atomic === 0) {
          if (t.is('function') || t.is('procedure')) sawRoutine = true;
          else if (sawRoutine && t.is('atomic') && cur[cur.length - 1]!.is('begin')) atomic = 1;
        } else if (t.is('case')) atomic++;
        else if (t.is('end')) atomic--;
      }
      cur.push(t);
      i = j;
      continue;
    }

    // Plain strings.
    if (c === QUOTE) {
      const mode = scs ? Q_STANDARD : Q_BACKSLASH;
      let end = scanQuoted(sql, i, mode);
      if (end < 0) {
        unterminated = true;
        end = n;
      }
      cur.push(new Token('string', sql, i, end, depth, 'standard', mode === Q_BACKSLASH ? BACKSLASH : -1));
      i = end;
      continue;
    }

    // Quoted identifiers.
    if (c === DQUOTE) {
      let end = scanQuotedIdent(sql, i);
      if (end < 0) {
        unterminated = true;
        end = n;
      }
      cur.push(new Token('quoted_ident', sql, i, end, depth));
      i = end;
      continue;
    }

    // Numbers.
    if (cls & C_DIGIT || (c === DOT && i + 1 < n && isDigit(sql.charCodeAt(i + 1)))) {
      const end = scanNumber(sql, i);
      cur.push(new Token('number', sql, i, end, depth));
      i = end;
      continue;
    }

    // Parameters and dollar quotes.
    if (c === DOLLAR) {
      const c1 = i + 1 < n ? sql.charCodeAt(i + 1) : -1;
      if (isDigit(c1)) {
        let j = i + 2;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
        cur.push(new Token('param', sql, i, j, depth));
        i = j;
        continue;
      }
      let tagEnd = -1; // offset of the tag's closing `$`
      if (c1 === DOLLAR) tagEnd = i + 1;
      else if (c1 >= 0 && isIdentStart(c1)) {
        let j = i + 2;
        while (j < n && isTagCont(sql.charCodeAt(j))) j++;
        if (j < n && sql.charCodeAt(j) === DOLLAR) tagEnd = j;
      }
      if (tagEnd >= 0) {
        const tag = sql.slice(i, tagEnd + 1);
        const close = sql.indexOf(tag, tagEnd + 1);
        let end: number;
        if (close < 0) {
          unterminated = true;
          end = n;
        } else end = close + tag.length;
        cur.push(new Token('string', sql, i, end, depth, 'dollar'));
        i = end;
        continue;
      }
      cur.push(new Token('operator', sql, i, i + 1, depth));
      i++;
      continue;
    }

    // Punctuation.
    if (cls & C_PUNCT) {
      if (c === LPAREN) {
        cur.push(new Token('punct', sql, i, i + 1, depth));
        depth++;
        i++;
        continue;
      }
      if (c === RPAREN) {
        if (depth > 0) depth--;
        cur.push(new Token('punct', sql, i, i + 1, depth));
        i++;
        continue;
      }
      if (c === 59 /* ; */) {
        if (depth === 0 && atomic <= 0) {
          if (cur.length > 0) statements.push(cur);
          cur = [];
          isCreate = false;
          sawRoutine = false;
          atomic = 0;
        } else cur.push(new Token('punct', sql, i, i + 1, depth));
        i++;
        continue;
      }
      if (c === DOT && i + 1 < n && sql.charCodeAt(i + 1) === DOT) {
        cur.push(new Token('punct', sql, i, i + 2, depth)); // `..` (used by PL/pgSQL FOR loops)
        i += 2;
        continue;
      }
      if (c === COLON && i + 1 < n) {
        const c1 = sql.charCodeAt(i + 1);
        if (c1 === COLON) {
          cur.push(new Token('punct', sql, i, i + 2, depth));
          i += 2;
          continue;
        }
        if (c1 === EQUALS) {
          cur.push(new Token('operator', sql, i, i + 2, depth));
          i += 2;
          continue;
        }
      }
      cur.push(new Token('punct', sql, i, i + 1, depth));
      i++;
      continue;
    }

    // Operators.
    if (cls & C_OP) {
      const end = scanOperator(sql, i);
      cur.push(new Token('operator', sql, i, end, depth));
      i = end;
      continue;
    }

    // Anything else: a character the server would reject.
    cur.push(new Token('operator', sql, i, i + 1, depth));
    i++;
  }
  if (cur.length > 0) statements.push(cur);
  return { statements, comments, unterminated };
}

/**
 * Offset just past the plain `'...'` literal (standard_conforming_strings on) whose quote is at `open`,
 * following segment continuations exactly as the lexer does; -1 when it runs to the end of the input.
 */
export function scanStandardString(src: string, open: number): number {
  return scanQuoted(src, open, Q_STANDARD);
}

/** Offset just past a quoted identifier whose opening `"` is at `open`, or -1 when unterminated. */
function scanQuotedIdent(src: string, open: number): number {
  const n = src.length;
  let i = open + 1;
  while (i < n) {
    const j = src.indexOf('"', i);
    if (j < 0) return -1;
    if (j + 1 < n && src.charCodeAt(j + 1) === DQUOTE) {
      i = j + 2;
      continue;
    }
    return j + 1;
  }
  return -1;
}

/** Offset just past the numeric literal starting at `i` (a digit, or `.` before a digit), as the lexer reads it. */
export function scanNumber(src: string, i: number): number {
  const n = src.length;
  const c = src.charCodeAt(i);
  if (c === 48 && i + 2 < n) {
    const p = src.charCodeAt(i + 1) | 0x20;
    if ((p === 0x78 || p === 0x6f || p === 0x62) && isHexDigit(src.charCodeAt(i + 2))) {
      let j = i + 2;
      while (j < n) {
        const d = src.charCodeAt(j);
        if (isHexDigit(d) || (d === 95 && j + 1 < n && isHexDigit(src.charCodeAt(j + 1)))) j++;
        else break;
      }
      return j;
    }
  }
  let j = c === DOT ? i : digitsEnd(src, i);
  if (j < n && src.charCodeAt(j) === DOT && !(j + 1 < n && src.charCodeAt(j + 1) === DOT)) {
    j = digitsEnd(src, j + 1);
  }
  if (j < n && (src.charCodeAt(j) | 0x20) === 0x65) {
    const d1 = j + 1 < n ? src.charCodeAt(j + 1) : -1;
    if (isDigit(d1)) j = digitsEnd(src, j + 1);
    else if ((d1 === PLUS || d1 === MINUS) && j + 2 < n && isDigit(src.charCodeAt(j + 2))) j = digitsEnd(src, j + 2);
  }
  return j;
}

/** Offset past the decimal digits (with single `_` separators between digits) from `j`. */
function digitsEnd(src: string, j: number): number {
  const n = src.length;
  while (j < n) {
    const d = src.charCodeAt(j);
    if (isDigit(d) || (d === 95 && j + 1 < n && isDigit(src.charCodeAt(j + 1)))) j++;
    else break;
  }
  return j;
}

function scanOperator(src: string, i: number): number {
  const n = src.length;
  let j = i + 1;
  while (j < n && isOpChar(src.charCodeAt(j))) {
    const d = src.charCodeAt(j);
    const p = src.charCodeAt(j - 1);
    // An operator never contains the start of a comment.
    if ((d === STAR && p === SLASH) || (d === MINUS && p === MINUS)) {
      j--;
      break;
    }
    j++;
  }
  let len = j - i;
  const last = src.charCodeAt(j - 1);
  if (len > 1 && (last === PLUS || last === MINUS)) {
    let special = false;
    for (let k = i; k < j - 1; k++) {
      const d = src.charCodeAt(k);
      if ((CLASS[d]! & C_OPSPECIAL) !== 0) {
        special = true;
        break;
      }
    }
    if (!special) {
      do len--;
      while (len > 1 && (src.charCodeAt(i + len - 1) === PLUS || src.charCodeAt(i + len - 1) === MINUS));
    }
  }
  return i + len;
}

/** Undoes the quoting and escapes of a string token spanning [start, end). */
function decodeStringToken(src: string, start: number, end: number, style: StringStyle, esc: number): string {
  if (style === 'dollar') {
    const tagEnd = src.indexOf('$', start + 1);
    const tagLen = tagEnd - start + 1;
    if (end - start >= 2 * tagLen && src.startsWith(src.slice(start, tagEnd + 1), end - tagLen)) {
      return src.slice(tagEnd + 1, end - tagLen);
    }
    return src.slice(tagEnd + 1, end); // unterminated
  }
  let open = start;
  while (open < end && src.charCodeAt(open) !== QUOTE) open++;
  const backslash = style === 'escape' || ((style === 'standard' || style === 'national') && esc === BACKSLASH);
  const noDouble = style === 'bit' || style === 'hex';
  let out = '';
  let i = open + 1;
  while (i < end) {
    // One segment.
    let segStart = i;
    let closed = false;
    while (i < end) {
      const c = src.charCodeAt(i);
      if (c === QUOTE) {
        out += src.slice(segStart, i);
        if (!noDouble && i + 1 < end && src.charCodeAt(i + 1) === QUOTE) {
          out += "'";
          i += 2;
          segStart = i;
          continue;
        }
        closed = true;
        i++;
        break;
      }
      if (c === BACKSLASH && backslash) {
        out += src.slice(segStart, i);
        i = decodeBackslash(src, i, end, (s) => (out += s));
        segStart = i;
        continue;
      }
      i++;
    }
    if (!closed) {
      out += src.slice(segStart, i);
      break;
    }
    const next = continuation(src, i);
    if (next < 0 || next >= end) break;
    i = next + 1;
  }
  if (style === 'unicode') return decodeUnicodeEscapes(out, esc === -1 ? BACKSLASH : esc);
  return out;
}

/** Decodes the backslash escape at `i` (inside an E'' string); returns the offset after it. */
function decodeBackslash(src: string, i: number, end: number, emit: (s: string) => void): number {
  if (i + 1 >= end) {
    emit('\\');
    return i + 1;
  }
  const c = src.charCodeAt(i + 1);
  switch (c) {
    case 0x62:
      emit('\b');
      return i + 2;
    case 0x66:
      emit('\f');
      return i + 2;
    case 0x6e:
      emit('\n');
      return i + 2;
    case 0x72:
      emit('\r');
      return i + 2;
    case 0x74:
      emit('\t');
      return i + 2;
    case 0x78: {
      let j = i + 2;
      let v = 0;
      while (j < end && j < i + 4 && isHexDigit(src.charCodeAt(j))) {
        v = v * 16 + parseInt(src[j]!, 16);
        j++;
      }
      if (j === i + 2) {
        emit('x');
        return i + 2;
      }
      emit(String.fromCharCode(v));
      return j;
    }
    case 0x75:
    case 0x55: {
      const len = c === 0x75 ? 4 : 8;
      const hex = src.slice(i + 2, i + 2 + len);
      if (hex.length === len && /^[0-9a-fA-F]+$/.test(hex)) {
        const v = parseInt(hex, 16);
        if (v <= 0x10ffff) {
          emit(String.fromCodePoint(v));
          return i + 2 + len;
        }
      }
      emit(String.fromCharCode(c));
      return i + 2;
    }
    default:
      if (c >= 48 && c <= 55) {
        let j = i + 1;
        let v = 0;
        while (j < end && j < i + 4) {
          const d = src.charCodeAt(j);
          if (d < 48 || d > 55) break;
          v = v * 8 + (d - 48);
          j++;
        }
        emit(String.fromCharCode(v & 0xff));
        return j;
      }
      emit(src[i + 1]!);
      return i + 2;
  }
}

/** Decodes U& escapes: `<esc>XXXX`, `<esc>+XXXXXX`, `<esc><esc>`. Invalid escapes are kept as written. */
function decodeUnicodeEscapes(s: string, esc: number): string {
  const escCh = String.fromCharCode(esc);
  if (!s.includes(escCh)) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== esc) {
      out += s[i];
      i++;
      continue;
    }
    if (s.charCodeAt(i + 1) === esc) {
      out += escCh;
      i += 2;
      continue;
    }
    const plus = s.charCodeAt(i + 1) === PLUS;
    const len = plus ? 6 : 4;
    const from = plus ? i + 2 : i + 1;
    const hex = s.slice(from, from + len);
    if (hex.length === len && /^[0-9a-fA-F]+$/.test(hex)) {
      const v = parseInt(hex, 16);
      if (v <= 0x10ffff) {
        out += String.fromCodePoint(v);
        i = from + len;
        continue;
      }
    }
    out += s[i];
    i++;
  }
  return out;
}

/**
 * Offset of the first `\` at or after `from` that is outside literals, quoted identifiers and comments
 * of `sql` (lexed as a whole, so a literal opened before `from` counts), or -1. In a psql script such a
 * backslash starts a meta-command.
 */
export function metaCommandStart(sql: string, from: number): number {
  for (const st of lexSql(sql).statements) {
    for (const tok of st) {
      if (tok.start >= from && tok.isOperator('\\')) return tok.start;
    }
  }
  return -1;
}
