import { sqlLiteral } from '../server/sql-literal.js';

/**
 * The session settings a client has made (SET, RESET, set_config(..., false), DISCARD, LOAD), as the
 * values a server holds after them, so that every server the session uses runs with the same ones.
 *
 * The values are read from the server that ran the change (pg_settings rows whose source is 'session',
 * custom parameters the session named, the session user and the role), once the session is outside a
 * transaction: what a rollback undid is gone by then, and a partial value (DateStyle) or one set through
 * set_config is what the server made of it. Each capture
 * bumps `version`; a server link remembers the version it has seen and, before its next statement,
 * receives `replayFor(linkVersion)`: RESET ALL, the session's LOADs, then every captured value.
 */
export class SessionSettings {
  // Shared empty collections until the session sets something (an idle session should cost little).
  private values: ReadonlyMap<string, string> = NO_VALUES;
  /**
   * Custom (dotted) parameter names the session has set, such as app.tenant_id: pg_settings does not list
   * such placeholders, so they are asked for by name (see captureSql).
   */
  private custom: Set<string> | null = null;
  /** LOAD statements that ran, in order: a library that reserves its prefix removes placeholders of it. */
  private readonly loads: string[] = [];
  version = 0;

  /** Takes the values a server reports (see captureSql): they replace what was known. */
  replace(values: Map<string, string>): void {
    this.values = values;
    this.version++;
  }

  /** A statement set (or reset) `name`: a custom one is asked for from now on. */
  noteName(name: string): void {
    if (name.includes('.') && (this.custom?.size ?? 0) < MAX_CUSTOM_NAMES) (this.custom ??= new Set()).add(name.toLowerCase());
  }

  /** A LOAD ran without error: replayed (once) before the values, as the primary ran it before them. */
  noteLoad(statement: string): void {
    if (!this.loads.includes(statement) && this.loads.length < MAX_LOADS) this.loads.push(statement);
  }

  /** A LOAD is among what is replayed: a connection that had it holds the library (see Session.detach). */
  get loadsLibraries(): boolean {
    return this.loads.length > 0;
  }

  /** The query that reads back what the session holds: the rows of CAPTURE_SETTINGS_SQL and each custom name that exists. */
  captureSql(): string {
    if (this.custom === null) return CAPTURE_SETTINGS_SQL;
    const names = [...this.custom].map(sqlLiteral).join(', ');
    return `${CAPTURE_SETTINGS_SQL} UNION ALL SELECT c.n, c.v FROM (SELECT n, pg_catalog.current_setting(n, true) AS v ` +
      `FROM pg_catalog.unnest(ARRAY[${names}]::text[]) AS n) AS c WHERE c.v IS NOT NULL`;
  }

  /**
   * The queries that bring a server from `linkVersion` up to date, or null when it already is: RESET ALL,
   * the session's LOADs, then every value, each in a transaction of its own (a transaction's isolation is fixed when it
   * starts). A standby never gets a serializable default: it would refuse every statement after it, and
   * such a session sends it no reads anyway.
   */
  replayFor(linkVersion: number, standby: boolean): string[] | null {
    if (linkVersion >= this.version) return null;
    const rows: string[] = [];
    const out = ['RESET ALL', ...this.loads];
    for (const [n, v] of this.values) {
      if (standby && n === 'default_transaction_isolation' && v === 'serializable') continue;
      if (IDENTITY.includes(n)) continue;
      rows.push(`(${sqlLiteral(n)}, ${sqlLiteral(v)})`);
    }
    if (rows.length > 0) out.push(`SELECT pg_catalog.set_config(s.n, s.v, false) FROM (VALUES ${rows.join(', ')}) AS s(n, v)`);
    // Who the session is, last and in this order: SET SESSION AUTHORIZATION resets the role. Neither is
    // reset by RESET ALL.
    for (const n of IDENTITY) {
      const v = this.values.get(n);
      if (v !== undefined) out.push(`SELECT pg_catalog.set_config(${sqlLiteral(n)}, ${sqlLiteral(v)}, false)`);
    }
    return out;
  }
}

const NO_VALUES: ReadonlyMap<string, string> = new Map();

/** The session's identity (not in pg_settings), replayed after the other settings, in this order. */
const IDENTITY = ['session_authorization', 'role'];
/** Bounds on what one session's settings keep (a client inventing names must not grow memory without end). */
const MAX_CUSTOM_NAMES = 256;
const MAX_LOADS = 32;

/**
 * What a server's session holds beyond its startup: the settings made in the session, the session user and
 * the role (SET SESSION AUTHORIZATION and SET ROLE are not in pg_settings and survive RESET ALL).
 */
export const CAPTURE_SETTINGS_SQL =
  // The transaction_* parameters belong to a transaction (a standby refuses transaction_isolation =
  // serializable); the session's defaults for them are the default_transaction_* ones.
  "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session' " +
  "AND name NOT IN ('role', 'session_authorization', 'transaction_isolation', 'transaction_read_only', 'transaction_deferrable') " +
  "UNION ALL SELECT 'session_authorization', pg_catalog.current_setting('session_authorization') " +
  "UNION ALL SELECT 'role', pg_catalog.current_setting('role')";
