/**
 * Named prepared statements when server connections are pooled: a client's statement names map to
 * server-side names, one per statement (text and parameter types), `pgsplit_<n>`, shared by every client.
 * A client's Parse is sent only when the connection it holds does not have that statement yet; a Bind or
 * Describe on a connection that lacks it gets the Parse first (prepare on demand), as PgBouncer
 * (max_prepared_statements) and PgDog do. A client's Close is answered locally: the server-side
 * statement stays for other clients, and the connection's LRU (PreparedCache, bounded by
 * pool.prepared_statements) decides when it goes, with a Close pgsplit sends itself.
 *
 * Pure bookkeeping: every decision says which frames to send before and instead of the client's message,
 * and which replies are pgsplit's own (to be swallowed). The unnamed statement is left alone: clients
 * send its Parse in the same batch as its Bind, on one connection. SQL-level PREPARE / EXECUTE are not
 * seen here (ServerState.clientPrepared covers them).
 */
import { serialize } from '../codec/frontend-messages.js';
import { readCString } from '../codec/message-fields.js';
import { errors, type PgsplitError } from '../errors.js';
import type { PreparedCache } from '../server/prepared-cache.js';

/** The prefix of server-side names; a client using it for its own names still works (names are per client). */
export const SERVER_NAME_PREFIX = 'pgsplit_';

/**
 * Statement → server-side name, for the whole process: the same text and parameter types always get
 * the same name while the entry lives. Bounded (least recently used out); an evicted statement gets a
 * new name when next prepared, which is safe because names are never reused.
 */
export class StatementRegistry {
  private readonly names = new Map<string, string>();
  private next = 1;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.names.size;
  }

  /** `body`: a Parse payload after the statement name (query text, parameter count and types). */
  nameFor(body: Buffer): string {
    // latin1 maps each byte to one character: a faithful key for any bytes, without decoding.
    const key = body.toString('latin1');
    const found = this.names.get(key);
    if (found !== undefined) {
      this.names.delete(key);
      this.names.set(key, found);
      return found;
    }
    const name = `${SERVER_NAME_PREFIX}${this.next++}`;
    this.names.set(key, name);
    if (this.names.size > this.capacity) {
      const oldest = this.names.keys().next();
      if (oldest.done !== true) this.names.delete(oldest.value);
    }
    return name;
  }
}

/** One statement a client prepared: the server-side name, and the Parse to send wherever it is missing. */
interface ClientStatement {
  serverName: string;
  /** The whole Parse message under the server-side name (a copy: the client's buffer is reused). */
  parse: Buffer;
}

/** What to do with a client's Parse. */
export type ParseDecision =
  /** Unnamed: forward it as it is. */
  | { kind: 'pass' }
  /** The client already has a statement by that name: answer with this error (PostgreSQL's 42P05). */
  | { kind: 'error'; error: PgsplitError }
  /**
   * The connection already has the statement: send nothing, answer ParseComplete locally, in its place
   * among the server's replies, and not at all if an earlier message of the batch failed (the server
   * would have skipped the Parse up to the Sync): then `undo` forgets the client's name, and leaves the
   * connection's statement alone (parseFailed would make pgsplit prepare it there again, which fails).
   */
  | { kind: 'local'; undo: () => void }
  /**
   * Send `before` (Closes of the `evicted` statements: their CloseCompletes are pgsplit's), then `frame`
   * (its ParseComplete is the client's).
   */
  | { kind: 'send'; before: Buffer[]; frame: Buffer; evicted: string[] };

/** What to do with a client's Bind or Describe. */
export type UseDecision =
  /** Not a statement pgsplit renamed (unnamed, a portal, or a name only the server knows): forward it as it is. */
  | { kind: 'pass' }
  /**
   * Send `before` (Closes of the `evicted` statements, then the Parse if the connection lacks it; every
   * reply to them is pgsplit's), then `frame`.
   */
  | { kind: 'send'; before: Buffer[]; frame: Buffer; evicted: string[] };

/** What to do with a client's Close. */
export type CloseDecision =
  | { kind: 'pass' }
  /**
   * Answer CloseComplete locally, in order, and not after an earlier error of the batch (as for a local
   * ParseComplete); `undo` then gives the client its statement back, as the server would have kept it.
   */
  | { kind: 'local'; undo: () => void };

/** The statement names one client session uses, mapped to the shared server-side ones. */
export class StatementSync {
  private readonly statements = new Map<string, ClientStatement>();
  /** Server-side names the current batch uses: not evicted before its Sync (it may still Execute their portals). */
  private readonly batch = new Set<string>();

  constructor(private readonly registry: StatementRegistry) {}

  /** The server-side name of the client's statement `name`, or undefined. */
  serverName(name: string): string | undefined {
    return this.statements.get(name)?.serverName;
  }

  /** A client's Parse (the whole message), for the connection whose prepared statements are `server`. */
  parse(raw: Buffer, server: PreparedCache): ParseDecision {
    const name = nameAt(raw, 5);
    if (name === null || name.value === '') return { kind: 'pass' };
    if (this.statements.has(name.value)) return { kind: 'error', error: errors.preparedStatementExists(name.value) };
    const serverName = this.registry.nameFor(raw.subarray(name.end));
    const parse = renameParse(raw, serverName);
    this.statements.set(name.value, { serverName, parse });
    this.batch.add(serverName);
    if (server.touch(serverName)) {
      const undo = (): void => {
        if (this.statements.get(name.value)?.serverName === serverName) this.statements.delete(name.value);
      };
      return { kind: 'local', undo };
    }
    const evicted = this.evict(server, serverName);
    return { kind: 'send', before: evicted.map(closeFrame), frame: parse, evicted };
  }

  /** A client's Bind (the whole message): renamed, with the Parse first when the connection lacks it. */
  bind(raw: Buffer, server: PreparedCache): UseDecision {
    // Bind: portal name, then statement name.
    const portal = nameAt(raw, 5);
    const statement = portal === null ? null : nameAt(raw, portal.end);
    if (statement === null) return { kind: 'pass' };
    return this.use(raw, statement.value, server, renameBindStatement);
  }

  /** A client's Describe (the whole message): a statement one is renamed (and prepared on demand); a portal one passes. */
  describe(raw: Buffer, server: PreparedCache): UseDecision {
    if (raw[5] !== 0x53) return { kind: 'pass' };
    const name = nameAt(raw, 6);
    if (name === null) return { kind: 'pass' };
    return this.use(raw, name.value, server, renameTarget);
  }

  /**
   * A client's Close (the whole message). Closing its own statement is local (the server-side one stays
   * for others; the answer is a CloseComplete pgsplit writes). A portal, the unnamed statement or a name
   * pgsplit does not know goes to the server (it may be a statement SQL PREPARE made there).
   */
  close(raw: Buffer): CloseDecision {
    if (raw[5] !== 0x53) return { kind: 'pass' };
    const name = nameAt(raw, 6);
    const statement = name === null ? undefined : this.statements.get(name.value);
    if (name === null || statement === undefined) return { kind: 'pass' };
    this.statements.delete(name.value);
    const undo = (): void => {
      if (!this.statements.has(name.value)) this.statements.set(name.value, statement);
    };
    return { kind: 'local', undo };
  }

  /** The batch ended (Sync): its statements may be evicted again. */
  sync(): void {
    this.batch.clear();
  }

  /**
   * A Parse pgsplit sent (a 'send' decision's, or one prepared on demand) failed or was skipped after an
   * error: the server does not have the statement, and a client Parse that failed leaves the client
   * without it too.
   */
  parseFailed(server: PreparedCache, serverName: string, clientName?: string): void {
    server.delete(serverName);
    if (clientName !== undefined && this.statements.get(clientName)?.serverName === serverName) this.statements.delete(clientName);
  }

  /**
   * The Close pgsplit sent to evict `serverName` was skipped (an earlier error of the batch): the server
   * still has the statement, so the cache keeps it (over its bound until the next eviction), and pgsplit
   * never prepares it there twice.
   */
  closeSkipped(server: PreparedCache, serverName: string): void {
    server.restore(serverName);
  }

  private use(raw: Buffer, name: string, server: PreparedCache, rename: (raw: Buffer, name: string) => Buffer): UseDecision {
    const statement = name === '' ? undefined : this.statements.get(name);
    if (statement === undefined) return { kind: 'pass' };
    this.batch.add(statement.serverName);
    const frame = rename(raw, statement.serverName);
    if (server.touch(statement.serverName)) return { kind: 'send', before: [], frame, evicted: [] };
    const evicted = this.evict(server, statement.serverName);
    return { kind: 'send', before: [...evicted.map(closeFrame), statement.parse], frame, evicted };
  }

  private evict(server: PreparedCache, serverName: string): string[] {
    return server.add(serverName, this.batch);
  }
}

function closeFrame(name: string): Buffer {
  return serialize.close({ type: 'S', name });
}

/** The NUL-terminated name at `off` in a whole message: its text and the offset after the NUL. */
function nameAt(raw: Buffer, off: number): { value: string; end: number } | null {
  const r = readCString(raw, off);
  return r === null ? null : { value: r[0], end: r[1] };
}

/** A whole Parse message with its statement name replaced. */
export function renameParse(raw: Buffer, name: string): Buffer {
  const old = nameAt(raw, 5);
  return old === null ? raw : withName(raw, 5, old.end, name);
}

/** A whole Bind message with its statement name (after the portal name) replaced. */
export function renameBindStatement(raw: Buffer, name: string): Buffer {
  const portal = nameAt(raw, 5);
  const old = portal === null ? null : nameAt(raw, portal.end);
  return portal === null || old === null ? raw : withName(raw, portal.end, old.end, name);
}

/** A whole Describe or Close message with its target name (statement or portal) replaced. */
export function renameTarget(raw: Buffer, name: string): Buffer {
  const old = nameAt(raw, 6);
  return old === null ? raw : withName(raw, 6, old.end, name);
}

/** `raw` with the name between `start` and `end` (its NUL included) replaced by `name`, length fixed. */
function withName(raw: Buffer, start: number, end: number, name: string): Buffer {
  const nameBytes = Buffer.byteLength(name, 'utf8');
  const out = Buffer.allocUnsafe(raw.length - (end - start) + nameBytes + 1);
  raw.copy(out, 0, 0, start);
  out.write(name, start, 'utf8');
  out[start + nameBytes] = 0;
  raw.copy(out, start + nameBytes + 1, end);
  out.writeInt32BE(out.length - 1, 1);
  return out;
}
