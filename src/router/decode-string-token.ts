/**
 * The value of a string token: quoting and escapes undone (E'' backslash escapes, U&'' and U&"" Unicode
 * escapes with their UESCAPE character, dollar quoting, '' doubling). Only run when a token's `text` is
 * read, never during lexing.
 */
import type { StringStyle } from './token.js';
import { continuation } from './sql-scanners.js';
import { BACKSLASH, PLUS, QUOTE, isHexDigit } from './char-class.js';

/** Undoes the quoting and escapes of a string token spanning [start, end). */
export function decodeStringToken(src: string, start: number, end: number, style: StringStyle, esc: number): string {
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
export function decodeUnicodeEscapes(s: string, esc: number): string {
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
