/**
 * What one server connection holds beyond its socket, for a pool to hand it from client to client: the
 * parameter values it holds (reported with ParameterStatus, or set by pgsplit), the prepared statements
 * pgsplit made on it, and what clients left behind on it (dirty flags). From these it plans the
 * cleanup before the connection goes back to its pool, and the settings to apply before the next
 * client's statements run on it.
 *
 * The flags are set by whoever watches the client's statements (the session, through its classifier);
 * this class only records and decides. The cleanup follows what PgBouncer's server_reset_query and
 * PgDog's cleanup do, with the least destructive statement that undoes what was done: RESET ALL keeps
 * pgsplit's prepared statements (a pooled connection's most valuable state), DEALLOCATE ALL keeps
 * settings alone, DISCARD ALL undoes what else a session can hold (LISTEN, advisory locks, cursors WITH
 * HOLD, SET ROLE / SESSION AUTHORIZATION), and a connection left inside a transaction, whose protocol
 * state is unknown (PgBouncer closes such an unclean server too), or where a temporary object was made
 * (its backend keeps the temporary schema, which a fresh backend's next client would not see), is closed.
 */
import { Backend } from '../codec/message-types.js';
import { readParameterStatus } from '../codec/message-fields.js';
import { PreparedCache } from './prepared-cache.js';
import type { LeftOnConnection } from './server-source.js';
import { sqlLiteral } from './sql-literal.js';

/** ReadyForQuery's status byte: idle, in a transaction block, in a failed transaction block. */
export type TransactionStatus = 'I' | 'T' | 'E';

/** What must happen to a connection before another client may use it, mildest first. */
export type CleanupKind = 'none' | 'reset-all' | 'deallocate-all' | 'discard-all' | 'close';

export interface CleanupPlan {
  kind: CleanupKind;
  /** The statement to run (a simple Query), or null for 'none' and 'close'. */
  sql: string | null;
  /** Why, in words, for logs: 'SET ran', 'left inside a transaction', ... */
  reason: string;
}

/** One parameter to change: the name as the client or server spelled it, and the value it must hold. */
export interface SettingChange {
  name: string;
  value: string;
}

export interface SettingsPlan {
  changes: SettingChange[];
  /** One simple-Query statement making every change, or null when the connection already matches. */
  sql: string | null;
}

/**
 * Parameters the server reports but no session can set (or that identify the login, which the pool key
 * fixes): never in a settings plan. role is not reported, but it is identity too: a client's SET ROLE
 * marks the connection (noteIdentityChange) and DISCARD ALL undoes it.
 */
const NOT_APPLIED = new Set([
  'server_version', 'server_encoding', 'integer_datetimes', 'in_hot_standby', 'is_superuser', 'session_authorization', 'role',
]);

const NOTHING_TO_SET: SettingsPlan = Object.freeze({ changes: [], sql: null }) as SettingsPlan;

const CLEAN: CleanupPlan = Object.freeze({ kind: 'none', sql: null, reason: 'clean' });

/** GUC names are case-insensitive (DateStyle = datestyle). */
function key(name: string): string {
  return name.toLowerCase();
}

export class ServerState {
  /** Prepared statements pgsplit made here (pgsplit_<n>), kept across clients; see statement-sync. */
  readonly prepared: PreparedCache;
  /** Values this connection holds that pgsplit knows: by lowercase name, with the name as spelled. */
  private readonly values = new Map<string, SettingChange>();
  /** Bumped at each change of `values`: a settings plan found empty stays so until then (see settingsPlan). */
  private valuesVersion = 0;
  private matched: ReadonlyMap<string, string> | null = null;
  private matchedVersion = -1;
  /** Lowercase names the server reports with ParameterStatus: their values stay known after a reset. */
  private readonly reported = new Set<string>();
  /** What the server reported at startup: its defaults for the pool's login (nothing else was asked for). */
  readonly startup: ReadonlyMap<string, string>;
  /** From the last ReadyForQuery. */
  transactionStatus: TransactionStatus = 'I';
  /** A SET / RESET / set_config(..., false) ran, or pgsplit set a parameter the server does not report. */
  settingsChanged = false;
  /** SET ROLE or SET SESSION AUTHORIZATION ran (RESET ALL does not undo them). */
  identityChanged = false;
  /** A prepared statement under a client's own name exists (SQL PREPARE, or a Parse not renamed). */
  clientPrepared = false;
  /** LISTEN ran. */
  listening = false;
  /** A temporary table (or other temporary object) was created. */
  tempObjects = false;
  /** A session-level advisory lock was taken. */
  advisoryLocks = false;
  /** A cursor WITH HOLD was declared (it outlives the transaction). */
  heldCursors = false;
  /**
   * A client held the connection for a whole session (pool.mode session), unwatched: anything a session
   * can leave may be on it, so only DISCARD ALL makes it clean.
   */
  clientSession = false;
  /**
   * Why the connection's protocol state is unknown (a reply still owed, a COPY cut off, a statement
   * cancelled mid-way), or null: such a connection is closed, never reused.
   */
  unusable: string | null = null;

  /**
   * Settings the connection logged in with (client startup parameters, LoginParams.settings): the values
   * RESET ALL and DISCARD ALL return to, so they stay known through a cleanup.
   */
  private readonly login: ReadonlyMap<string, string>;

  /**
   * `parameters`: what the server reported at startup (ServerConnection.parameters);
   * `preparedCapacity`: pool.prepared_statements; `login`: the settings it logged in with.
   */
  constructor(parameters: ReadonlyMap<string, string>, preparedCapacity: number, login: ReadonlyMap<string, string> = new Map()) {
    this.prepared = new PreparedCache(preparedCapacity);
    this.startup = new Map(parameters);
    this.login = login;
    for (const [name, value] of parameters) this.noteParameterStatus(name, value);
    this.setLoginValues();
  }

  /** The login's settings the server does not report, as known values (reported ones come with ParameterStatus). */
  private setLoginValues(): void {
    for (const [name, value] of this.login) if (!this.reported.has(key(name))) this.values.set(key(name), { name, value });
    this.valuesVersion++;
  }

  /** A ParameterStatus from the server: its value now, whatever ran. */
  noteParameterStatus(name: string, value: string): void {
    this.reported.add(key(name));
    this.values.set(key(name), { name, value });
    this.valuesVersion++;
  }

  /**
   * Any message from the server, as whoever reads the connection sees it: ParameterStatus and
   * ReadyForQuery keep the state true to the server; the rest is ignored. Cheap enough for the relay path
   * (a type test per message).
   */
  observe(type: number, payload: Buffer): void {
    if (type === Backend.ReadyForQuery) this.noteReadyForQuery(String.fromCharCode(payload[0] ?? 0x49) as TransactionStatus);
    else if (type === Backend.ParameterStatus) {
      const [name, value] = readParameterStatus(payload);
      this.noteParameterStatus(name, value);
    }
  }

  /** A ReadyForQuery from the server. */
  noteReadyForQuery(status: TransactionStatus): void {
    this.transactionStatus = status;
  }

  /**
   * A client left `what` on the connection (pool.mode transaction: the session says so, as its
   * classifier sees each statement): the flag its cleanup plan undoes it by.
   */
  left(what: LeftOnConnection): void {
    switch (what) {
      case 'settings': case 'setseed': this.settingsChanged = true; break;
      case 'identity': this.identityChanged = true; break;
      case 'listen': this.listening = true; break;
      case 'temp-table': this.tempObjects = true; break;
      case 'advisory-lock': this.advisoryLocks = true; break;
      case 'cursor-with-hold': this.heldCursors = true; break;
      case 'sql-prepare': this.clientPrepared = true; break;
      // A loaded library stays in the backend: nothing but a new connection undoes it.
      case 'load': this.unusable ??= 'LOAD ran'; break;
    }
  }

  /** The value of `name` as far as pgsplit knows, or undefined. */
  get(name: string): string | undefined {
    return this.values.get(key(name))?.value;
  }

  /** Whether nothing a client did is left on the connection (its cleanup plan is 'none'). */
  get clean(): boolean {
    return this.cleanupPlan().kind === 'none';
  }

  /** What to run before the connection goes back to its pool (see the file comment for the order). */
  cleanupPlan(): CleanupPlan {
    if (this.unusable !== null) return { kind: 'close', sql: null, reason: this.unusable };
    if (this.transactionStatus !== 'I') {
      return { kind: 'close', sql: null, reason: this.transactionStatus === 'T' ? 'left inside a transaction' : 'left inside a failed transaction' };
    }
    // DISCARD ALL drops the objects but not the backend's temporary schema, and a backend that has one
    // refuses a later client's SET temp_buffers and passes a PREPARE TRANSACTION a fresh one refuses.
    if (this.tempObjects) return { kind: 'close', sql: null, reason: 'a temporary object was created (its backend keeps a temporary schema)' };
    // The common return in transaction mode: nothing left; known without building the lists below.
    if (!this.identityChanged && !this.listening && !this.advisoryLocks && !this.heldCursors && !this.clientSession &&
      !this.clientPrepared && !this.settingsChanged) return CLEAN;
    const beyondReset = [
      this.identityChanged && 'SET ROLE or SESSION AUTHORIZATION ran',
      this.listening && 'LISTEN ran',
      this.advisoryLocks && 'an advisory lock was taken',
      this.heldCursors && 'a cursor WITH HOLD was declared',
      this.clientSession && 'a client session used it',
    ].filter((r): r is string => r !== false);
    if (beyondReset.length > 0) return { kind: 'discard-all', sql: 'DISCARD ALL', reason: beyondReset.join(', ') };
    if (this.clientPrepared && this.settingsChanged) {
      return { kind: 'discard-all', sql: 'DISCARD ALL', reason: 'settings changed and a client prepared a statement' };
    }
    if (this.clientPrepared) return { kind: 'deallocate-all', sql: 'DEALLOCATE ALL', reason: 'a client prepared a statement' };
    if (this.settingsChanged) return { kind: 'reset-all', sql: 'RESET ALL', reason: 'settings changed' };
    return { kind: 'none', sql: null, reason: 'clean' };
  }

  /**
   * The cleanup statement of `kind` ran without error: forget what it undid. Reported parameters get their
   * new values from the ParameterStatus messages that came with it; the others are unknown again.
   */
  cleaned(kind: CleanupKind): void {
    if (kind === 'reset-all' || kind === 'discard-all') {
      this.settingsChanged = false;
      for (const k of [...this.values.keys()]) if (!this.reported.has(k)) this.values.delete(k);
      this.setLoginValues();
    }
    if (kind === 'deallocate-all' || kind === 'discard-all') {
      this.clientPrepared = false;
      this.prepared.clear();
    }
    if (kind === 'discard-all') {
      this.identityChanged = false;
      this.listening = false;
      this.tempObjects = false;
      this.advisoryLocks = false;
      this.heldCursors = false;
      this.clientSession = false;
    }
  }

  /**
   * What to set so that this connection holds `client`'s values (PgBouncer's varcache, for any
   * parameter): the names whose value differs from what pgsplit knows this connection holds, or that it
   * does not know. `client` is absolute (name → value, as a server reported or pg_settings shows them,
   * so that equal values compare equal); a parameter it leaves out keeps whatever the connection has,
   * which is why a connection whose settings a client changed is reset before it is reused.
   *
   * The statement is one set_config per value, not SET: a list parameter such as search_path is reported
   * in its final quoted form ("$user", public), which SET would take as a single quoted element;
   * set_config takes the value exactly as the server shows it.
   */
  settingsPlan(client: ReadonlyMap<string, string>): SettingsPlan {
    // The same map (clients with the same startup parameters share one) against unchanged values: nothing to do,
    // known without comparing each value (a pool in transaction mode asks this at every borrow).
    if (client === this.matched && this.matchedVersion === this.valuesVersion) return NOTHING_TO_SET;
    const changes: SettingChange[] = [];
    for (const [name, value] of client) {
      if (NOT_APPLIED.has(key(name))) continue;
      if (this.values.get(key(name))?.value === value) continue;
      changes.push({ name, value });
    }
    if (changes.length === 0) {
      this.matched = client;
      this.matchedVersion = this.valuesVersion;
      return NOTHING_TO_SET;
    }
    const rows = changes.map((c) => `(${sqlLiteral(c.name)}, ${sqlLiteral(c.value)})`).join(', ');
    return { changes, sql: `SELECT pg_catalog.set_config(s.n, s.v, false) FROM (VALUES ${rows}) AS s(n, v)` };
  }

  /**
   * A settings plan ran without error: the connection holds its values. A parameter the server does not
   * report stays changed from its default with nobody told, so the connection must be reset before reuse;
   * a reported one is set again by the next client's plan (every client's map holds every reported
   * parameter, from its own startup), as in PgBouncer.
   */
  applied(plan: SettingsPlan): void {
    this.valuesVersion++;
    for (const c of plan.changes) {
      this.values.set(key(c.name), { name: c.name, value: c.value });
      if (!this.reported.has(key(c.name))) this.settingsChanged = true;
    }
  }
}
