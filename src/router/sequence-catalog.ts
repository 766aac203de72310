/**
 * The names of the sequences in one database, so that reads of a sequence relation (SELECT last_value,
 * log_cnt, is_called FROM seq) go to the primary: a standby shows its own WAL-logged state of a sequence,
 * which stays different from the primary's. Read by a session from a server before its first replica
 * read (see Session.captureSession), again after DDL run through pgsplit, and at least every
 * REFRESH_MS (DDL run elsewhere). A statement whose text names one of them, anywhere, runs on the
 * primary: a column that shares a sequence's name costs a read on the primary, never a wrong answer.
 */
export class SequenceCatalog {
  private re: RegExp | null = null;
  private loadedAt = -Infinity;
  private stale = true;

  /** Whether the names must be read (again) before a replica read. */
  needsLoad(now: number): boolean {
    return this.stale || now - this.loadedAt > REFRESH_MS;
  }

  /** DDL ran through pgsplit: read the names again before the next replica read. */
  invalidate(): void {
    this.stale = true;
  }

  load(names: readonly string[], now: number): void {
    this.loadedAt = now;
    this.stale = false;
    if (names.length === 0) {
      this.re = null;
      return;
    }
    const alternatives = [...new Set(names.map((n) => n.toLowerCase()))]
      .sort((a, b) => b.length - a.length)
      .map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.re = new RegExp(`(?<![\\p{L}\\p{N}_$])(?:${alternatives.join('|')})(?![\\p{L}\\p{N}_$])`, 'iu');
  }

  /** Whether the statement text names a sequence of this database. */
  mentions(text: string): boolean {
    return this.re !== null && this.re.test(text);
  }
}

/** The longest a catalog is trusted without a reload (sequences created by clients outside pgsplit). */
export const REFRESH_MS = 30_000;

/** The rows a capture adds for the catalog: one per sequence, its name in the second column. */
export const SEQUENCE_ROW = ' sequence';
export const CAPTURE_SEQUENCES_SQL = `SELECT '${SEQUENCE_ROW}', c.relname::text FROM pg_catalog.pg_class c WHERE c.relkind = 'S'`;

const catalogs = new Map<string, SequenceCatalog>();

/** The catalog of one database of one primary (`key`: its address and the database name), shared by its sessions. */
export function sequenceCatalog(key: string): SequenceCatalog {
  let c = catalogs.get(key);
  if (c === undefined) {
    c = new SequenceCatalog();
    catalogs.set(key, c);
  }
  return c;
}
