import type { PgsplitError } from '../errors.js';

/**
 * Builders for the backend messages pgsplit itself originates (handshake, errors, locally answered
 * statements). Relayed server messages are never rebuilt; they pass through as bytes.
 */

function message(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/**
 * A protocol C string. A NUL inside (client text quoted in an error, e.g. a malformed SCRAM message) would
 * end the field early and make the rest read as other fields: it is written as \\x00 instead.
 */
function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s.includes('\0') ? s.replace(/\0/g, '\\x00') : s, 'utf8'), Buffer.alloc(1)]);
}

export interface ErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string | undefined;
  hint?: string | undefined;
}

function fieldsBody(f: ErrorFields): Buffer {
  const parts: Buffer[] = [
    Buffer.from('S'), cstr(f.severity), Buffer.from('V'), cstr(f.severity),
    Buffer.from('C'), cstr(f.code), Buffer.from('M'), cstr(f.message),
  ];
  if (f.detail) parts.push(Buffer.from('D'), cstr(f.detail));
  if (f.hint) parts.push(Buffer.from('H'), cstr(f.hint));
  parts.push(Buffer.alloc(1));
  return Buffer.concat(parts);
}

export function errorResponse(f: ErrorFields): Buffer {
  return message(0x45, fieldsBody(f));
}

/** ErrorResponse for a PgsplitError. */
export function errorFor(e: PgsplitError): Buffer {
  return errorResponse({ severity: e.severity, code: e.sqlState, message: e.message, detail: e.detail, hint: e.hint });
}

export function noticeResponse(f: ErrorFields): Buffer {
  return message(0x4e, fieldsBody(f));
}

export function authenticationOk(): Buffer {
  const b = Buffer.alloc(4);
  return message(0x52, b);
}

export function authenticationMd5(salt: Buffer): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(5, 0);
  salt.copy(b, 4, 0, 4);
  return message(0x52, b);
}

export function authenticationSasl(mechanisms: string[]): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(10, 0);
  return message(0x52, Buffer.concat([head, ...mechanisms.map(cstr), Buffer.alloc(1)]));
}

export function authenticationSaslContinue(data: string): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(11, 0);
  return message(0x52, Buffer.concat([head, Buffer.from(data, 'utf8')]));
}

export function authenticationSaslFinal(data: string): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(12, 0);
  return message(0x52, Buffer.concat([head, Buffer.from(data, 'utf8')]));
}

export function parameterStatus(name: string, value: string): Buffer {
  return message(0x53, Buffer.concat([cstr(name), cstr(value)]));
}

export function backendKeyData(pid: number, secret: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(pid, 0);
  b.writeInt32BE(secret, 4);
  return message(0x4b, b);
}

export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return message(0x5a, Buffer.from(status));
}

export function commandComplete(tag: string): Buffer {
  return message(0x43, cstr(tag));
}

export function emptyQueryResponse(): Buffer {
  return message(0x49, Buffer.alloc(0));
}

/** RowDescription for text columns (type text, oid 25). */
/** Type OIDs (pg_type) pgsplit declares for the columns it answers itself. */
export const PgType = { bool: 16, int8: 20, int4: 23, text: 25, float8: 701, timestamptz: 1184 } as const;
const TYPE_SIZE = new Map<number, number>([[16, 1], [20, 8], [23, 4], [701, 8], [1184, 8]]);

/** Columns of text, unless `typeOids` gives a column's type (values are still sent as text). */
export function rowDescription(columns: string[], typeOids: readonly number[] = []): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(2);
  count.writeInt16BE(columns.length, 0);
  parts.push(count);
  columns.forEach((c, i) => {
    const oid = typeOids[i] ?? PgType.text;
    const f = Buffer.alloc(18);
    f.writeInt32BE(0, 0); // table oid
    f.writeInt16BE(0, 4); // column attnum
    f.writeInt32BE(oid, 6); // type oid
    f.writeInt16BE(TYPE_SIZE.get(oid) ?? -1, 10); // type size
    f.writeInt32BE(-1, 12); // type modifier
    f.writeInt16BE(0, 16); // text format
    parts.push(cstr(c), f);
  });
  return message(0x54, Buffer.concat(parts));
}

export function dataRow(values: (string | null)[]): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(2);
  count.writeInt16BE(values.length, 0);
  parts.push(count);
  for (const v of values) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeInt32BE(-1, 0);
      parts.push(len);
    } else {
      const b = Buffer.from(v, 'utf8');
      len.writeInt32BE(b.length, 0);
      parts.push(len, b);
    }
  }
  return message(0x44, Buffer.concat(parts));
}

export function parseComplete(): Buffer {
  return message(0x31, Buffer.alloc(0));
}
export function bindComplete(): Buffer {
  return message(0x32, Buffer.alloc(0));
}
export function closeComplete(): Buffer {
  return message(0x33, Buffer.alloc(0));
}
/** ParameterDescription of a statement without parameters. */
export function parameterDescription(): Buffer {
  return message(0x74, Buffer.alloc(2));
}
export function noData(): Buffer {
  return message(0x6e, Buffer.alloc(0));
}
export function sslRefused(): Buffer {
  return Buffer.from('N');
}

/** The answer to SSLRequest that starts a TLS handshake. */
export function sslAccepted(): Buffer {
  return Buffer.from('S');
}
