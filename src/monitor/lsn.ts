/**
 * PostgreSQL WAL positions (pg_lsn): `X/Y`, two hexadecimal halves of a 64-bit byte offset into the WAL.
 * Kept as bigint so that arithmetic stays exact past 2^53 and across the 32-bit half boundary
 * (`0/FFFFFFFF` + 1 = `1/0`).
 */

/** The position `X/Y` as a byte offset, or null when `text` is not a pg_lsn. */
export function parseLsn(text: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) return null;
  return (BigInt(`0x${m[1]!}`) << 32n) | BigInt(`0x${m[2]!}`);
}

/** A byte offset as PostgreSQL prints a pg_lsn (uppercase hex, no leading zeros). */
export function formatLsn(lsn: bigint): string {
  const hi = lsn >> 32n;
  const lo = lsn & 0xffffffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Bytes from `behind` up to `ahead`; 0 when `behind` is not behind. */
export function lsnBytesBehind(ahead: bigint, behind: bigint): number {
  return ahead > behind ? Number(ahead - behind) : 0;
}

/** WAL page size (XLOG_BLCKSZ) and the sizes of a page's header: short, and long on a segment's first page. */
const WAL_PAGE = 8192n;
const SHORT_PAGE_HEADER = 24n;
const LONG_PAGE_HEADER = 40n;

/**
 * The end of the last WAL record before the insert position `insertLsn`, as a replica reports replay
 * positions. When the last record ended exactly at a page boundary, pg_current_wal_insert_lsn() points
 * past the next page's header (24 bytes, or 40 on the first page of a segment of `segmentSize` bytes),
 * a position no replica ever reports having replayed. No record can end right after a page header (its
 * continuation there would be empty), so the adjustment is exact.
 */
export function recordEndAt(insertLsn: bigint, segmentSize: bigint): bigint {
  if (segmentSize > 0n && insertLsn % segmentSize === LONG_PAGE_HEADER) return insertLsn - LONG_PAGE_HEADER;
  if (insertLsn % WAL_PAGE === SHORT_PAGE_HEADER) return insertLsn - SHORT_PAGE_HEADER;
  return insertLsn;
}
