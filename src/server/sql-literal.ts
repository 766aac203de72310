/**
 * A SQL string literal that reads the same whatever standard_conforming_strings is: E'' with
 * backslashes and quotes doubled. For statements pgsplit writes itself (settings, cleanup); a client's
 * text is never quoted with it.
 */
export function sqlLiteral(s: string): string {
  return `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
