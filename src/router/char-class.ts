/**
 * Character codes and classes of the SQL lexer: one Uint8Array look-up per character (codes below 128;
 * every code from 128 up is an identifier character, as the server treats every high-bit byte), shared
 * by the lexer, its scanners and the classifier's fast path (./common-shape.ts).
 */

// Character codes.
export const TAB = 9;
export const LF = 10;
export const VT = 11;
export const FF = 12;
export const CR = 13;
export const SPACE = 32;
export const DQUOTE = 34;
export const DOLLAR = 36;
export const AMP = 38;
export const QUOTE = 39;
export const LPAREN = 40;
export const RPAREN = 41;
export const STAR = 42;
export const PLUS = 43;
export const MINUS = 45;
export const DOT = 46;
export const SLASH = 47;
export const COLON = 58;
export const EQUALS = 61;
export const BACKSLASH = 92;

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
export const C_OPSPECIAL = 32;

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

export function isIdentStart(c: number): boolean {
  return c >= 128 || (CLASS[c]! & C_IDSTART) !== 0;
}
/** Identifier continuation: letters, digits, `_`, `$`, non-ASCII. */
export function isIdentCont(c: number): boolean {
  return c >= 128 || (CLASS[c]! & (C_IDSTART | C_DIGIT)) !== 0 || c === DOLLAR;
}
/** Dollar-quote tag continuation: like an identifier, without `$`. */
export function isTagCont(c: number): boolean {
  return c >= 128 || (CLASS[c]! & (C_IDSTART | C_DIGIT)) !== 0;
}
export function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
export function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
export function isSpace(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_SPACE) !== 0;
}
export function isOpChar(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_OP) !== 0;
}
