/**
 * A token of the SQL lexer (./sql-lexer.ts): kind, offsets and parenthesis depth, with its text made
 * only when read. One is made for every token of every statement the proxy classifies.
 */
import { BACKSLASH, DQUOTE } from './char-class.js';
import { decodeStringToken, decodeUnicodeEscapes } from './decode-string-token.js';

export type TokenKind = 'keyword_or_ident' | 'quoted_ident' | 'string' | 'number' | 'param' | 'operator' | 'punct';

/** How a 'string' token was written ('unicode' is also used for U&"..." quoted identifiers). */
export type StringStyle = 'standard' | 'escape' | 'bit' | 'hex' | 'national' | 'unicode' | 'dollar';

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
