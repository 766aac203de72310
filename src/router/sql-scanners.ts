/**
 * The scanners the lexer (./sql-lexer.ts) calls at the start of a token that is more than one character
 * class: quoted literals and their continuations across newlines, block comments, quoted identifiers,
 * UESCAPE, numbers and operators. Each returns the offset just past what it read (-1: unterminated),
 * so the lexer makes no string while scanning. scanNumber and scanStandardString are shared with the
 * classifier's fast path (./common-shape.ts), so both read a literal exactly alike.
 */
import { BACKSLASH, CHAR_CLASS, CR, C_OPSPECIAL, DOT, DQUOTE, FF, LF, MINUS, PLUS, QUOTE, SLASH, SPACE, STAR, TAB, VT, isDigit, isHexDigit, isIdentCont, isOpChar, isSpace } from './char-class.js';

/** Escape handling inside a single-quoted literal. */
export const Q_STANDARD = 0; // '' doubles a quote, backslash is ordinary
export const Q_BACKSLASH = 1; // '' doubles a quote, backslash escapes the next character
export const Q_NODOUBLE = 2; // B'' and X'': the first quote ends the segment

/**
 * Offset just past a single-quoted literal whose opening quote is at `open`, following segment
 * continuations; -1 when it runs to the end of the input.
 */
export function scanQuoted(src: string, open: number, mode: number): number {
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
export function continuation(src: string, from: number): number {
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
export function scanBlockComment(src: string, k: number): number {
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
export function uescapeAfter(src: string, end: number): number {
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
 * Offset just past the plain `'...'` literal (standard_conforming_strings on) whose quote is at `open`,
 * following segment continuations exactly as the lexer does; -1 when it runs to the end of the input.
 */
export function scanStandardString(src: string, open: number): number {
  return scanQuoted(src, open, Q_STANDARD);
}

/** Offset just past a quoted identifier whose opening `"` is at `open`, or -1 when unterminated. */
export function scanQuotedIdent(src: string, open: number): number {
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

export function scanOperator(src: string, i: number): number {
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
      if ((CHAR_CLASS[d]! & C_OPSPECIAL) !== 0) {
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
