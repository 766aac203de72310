import type { Frame } from './frame-reader.js';

/**
 * The few message bodies routing needs to read. Each reader takes a payload (no type, no length) and
 * returns only what the caller uses; anything malformed yields null so the caller can answer with a
 * protocol error instead of throwing on the hot path.
 */

/** Reads a NUL-terminated string at `off`; returns [value, offset after the NUL] or null. */
export function readCString(buf: Buffer, off: number): [string, number] | null {
  const end = buf.indexOf(0, off);
  if (end < 0) return null;
  return [buf.toString('utf8', off, end), end + 1];
}

/** A Parse's statement name and query text. */
export interface ParseFields {
  name: string;
  query: string;
}

/** A Bind's portal and statement names. */
export interface BindFields {
  portal: string;
  statement: string;
}

/** Parse ('P'): statement name and query text. */
export function readParse(payload: Buffer): ParseFields | null {
  const a = readCString(payload, 0);
  if (!a) return null;
  const b = readCString(payload, a[1]);
  if (!b) return null;
  return { name: a[0], query: b[0] };
}

/** Bind ('B'): portal and statement names. */
export function readBind(payload: Buffer): BindFields | null {
  const a = readCString(payload, 0);
  if (!a) return null;
  const b = readCString(payload, a[1]);
  if (!b) return null;
  return { portal: a[0], statement: b[0] };
}

/** A client's Parse frame's fields, decoded at most once per frame (see Frame.memo). */
export function parseOf(f: Frame): ParseFields | null {
  if (f.memo === undefined) f.memo = readParse(f.payload);
  return f.memo as ParseFields | null;
}

/** A client's Bind frame's portal and statement names, decoded at most once per frame (see Frame.memo). */
export function bindOf(f: Frame): BindFields | null {
  if (f.memo === undefined) f.memo = readBind(f.payload);
  return f.memo as BindFields | null;
}

/** Describe ('D') and Close ('C'): kind 'S' (statement) or 'P' (portal) and the name. */
export function readTarget(payload: Buffer): { kind: 'S' | 'P'; name: string } | null {
  const k = payload[0];
  if (k !== 0x53 && k !== 0x50) return null;
  const a = readCString(payload, 1);
  if (!a) return null;
  return { kind: k === 0x53 ? 'S' : 'P', name: a[0] };
}

/** Query ('Q'): the query text. */
export function readQuery(payload: Buffer): string | null {
  const a = readCString(payload, 0);
  return a ? a[0] : null;
}

/** ErrorResponse / NoticeResponse fields by their one-letter codes. */
export function readErrorFields(payload: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < payload.length) {
    const code = payload[off];
    if (code === 0 || code === undefined) break;
    const v = readCString(payload, off + 1);
    if (!v) break;
    out[String.fromCharCode(code)] = v[0];
    off = v[1];
  }
  return out;
}

/** StartupMessage body after the protocol code: name/value pairs. */
export function readStartupParams(payload: Buffer, from: number): Record<string, string> | null {
  const out: Record<string, string> = {};
  let off = from;
  while (off < payload.length) {
    if (payload[off] === 0) return out;
    const k = readCString(payload, off);
    if (!k) return null;
    const v = readCString(payload, k[1]);
    if (!v) return null;
    out[k[0]] = v[0];
    off = v[1];
  }
  return null;
}

/** ParameterStatus ('S'): parameter name and value. */
export function readParameterStatus(payload: Buffer): [string, string] {
  const z = payload.indexOf(0);
  return [payload.toString('utf8', 0, z), payload.toString('utf8', z + 1, payload.length - 1)];
}

/** DataRow ('D'): the column values as text (null for SQL NULL); stops at a value that overruns the payload. */
export function readDataRow(payload: Buffer): Array<string | null> {
  const out: Array<string | null> = [];
  if (payload.length < 2) return out;
  const n = payload.readInt16BE(0);
  let off = 2;
  for (let i = 0; i < n && off + 4 <= payload.length; i++) {
    const len = payload.readInt32BE(off);
    off += 4;
    if (len < 0) out.push(null);
    else {
      if (off + len > payload.length) break;
      out.push(payload.toString('utf8', off, off + len));
      off += len;
    }
  }
  return out;
}
