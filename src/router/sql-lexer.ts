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
import { Token, type StringStyle } from './token.js';
import { AMP, BACKSLASH, COLON, CR, CHAR_CLASS, C_DIGIT, C_IDSTART, C_OP, C_PUNCT, C_SPACE, DOLLAR, DOT, DQUOTE, EQUALS, IDENT_CONT, LF, LPAREN, MINUS, QUOTE, RPAREN, SLASH, STAR, isDigit, isIdentStart, isTagCont } from './char-class.js';
import { Q_BACKSLASH, Q_NODOUBLE, Q_STANDARD, scanBlockComment, scanNumber, scanOperator, scanQuoted, scanQuotedIdent, uescapeAfter } from './sql-scanners.js';

// Token is part of lexSql's result: importers keep getting it from here.
export { Token, type StringStyle, type TokenKind } from './token.js';

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
    const cls = c < 128 ? CHAR_CLASS[c]! : C_IDSTART;

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
