import { ServerConnection, type ServerTarget } from '../server/server-connection.js';
import { Backend } from '../codec/message-types.js';
import { readDataRow, readErrorFields } from '../codec/message-fields.js';

/** A query waiting for its ReadyForQuery: what came back so far, and how to settle it. */
interface Pending {
  resolve: (row: Array<string | null> | null) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  row: Array<string | null> | null;
  /** The ErrorResponse's message, when the server sent one. */
  error: string | null;
}

/**
 * The replica monitor's own connection to one server, for its checks and WAL-position samples: a few
 * small queries, some of them hundreds of times a second. It logs in as the sessions' pooled connections
 * do (ServerConnection.connect: TLS per the URL's sslmode, cleartext, md5, SCRAM), then speaks the simple
 * Query protocol by hand: the caller hands over a Query message it built once, the first DataRow comes
 * back as text columns, an ErrorResponse as a rejection with the server's message. A general client
 * (node-postgres) spent several microseconds of the proxy's CPU on each of these (a Query object, a
 * promise chain, a parser and row objects per query), which at that rate showed in every proxied
 * transaction.
 *
 * Queries sent before the previous answer arrived wait in order (the protocol answers them in order);
 * the monitor keeps one sample in flight per connection, and a check may join it. A query not answered
 * within its timeout closes the connection: a frozen server never answers, and whatever comes after it
 * on this connection would wait behind it.
 */
export class MonitorConnection {
  private readonly pending: Pending[] = [];
  /** Why the connection is closed; null while it is open. */
  private lost: Error | null = null;

  private constructor(private readonly conn: ServerConnection) {
    conn.onData = (chunk) => this.read(chunk);
    conn.onError = (e) => this.close(new Error(`connection to ${conn.target.name} failed: ${e.message}`));
    conn.onClose = () => this.close(new Error(`${conn.target.name} closed the monitor's connection`));
    conn.dispatchEvents();
  }

  /**
   * Connects and logs in to `target` as application_name pgsplit-monitor; rejects as
   * ServerConnection.connect does (unreachable, refused login, no answer within `timeoutMs`).
   */
  static async open(target: ServerTarget, timeoutMs: number): Promise<MonitorConnection> {
    return new MonitorConnection(await ServerConnection.connect(target, { application_name: 'pgsplit-monitor' }, timeoutMs, 'monitor.timeout'));
  }

  /** True once the connection is closed (by close(), a timeout, or the server or network ending it). */
  get closed(): boolean {
    return this.lost !== null;
  }

  /**
   * Sends `query` (a whole simple Query message) and resolves with the first row of its answer as text
   * (null columns for SQL NULL), or null when it returned no row. Rejects with the server's message on an
   * ErrorResponse (the connection stays usable), and when the connection closes or `timeoutMs` pass
   * without the answer (then it is closed).
   */
  run(query: Buffer, timeoutMs: number): Promise<Array<string | null> | null> {
    if (this.lost !== null) return Promise.reject(this.lost);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.close(new Error(`no answer within ${timeoutMs} ms (monitor.timeout)`)), timeoutMs);
      this.pending.push({ resolve, reject, timer, row: null, error: null });
      this.conn.socket.write(query);
    });
  }

  /**
   * Closes the connection at once and rejects whatever waits with `why` (or the server's own message, when
   * it said why before it closed: a terminated backend). No Terminate first: a frozen server would never
   * read it, and the socket must not outlive the monitor (destroy frees it now).
   */
  close(why: Error = new Error('the monitor closed its connection')): void {
    if (this.lost !== null) return;
    this.lost = why;
    this.conn.clearHolder();
    this.conn.socket.destroy();
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(p.error !== null ? new Error(p.error) : why);
    }
  }

  /** The server's bytes: read with the frame cursor (no Frame objects), the few messages that matter parsed. */
  private read(chunk: Buffer): void {
    const r = this.conn.reader;
    try {
      r.feed(chunk);
      for (let type = r.next(); type >= 0; type = r.next()) {
        // The chunk may be a view of a read buffer reused for the next read: values are copied out as strings.
        const head = this.pending[0];
        if (type === Backend.DataRow) {
          if (head !== undefined && head.row === null) head.row = readDataRow(r.buf.subarray(r.start + 5, r.end));
        } else if (type === Backend.ErrorResponse) {
          if (head !== undefined) head.error = readErrorFields(r.buf.subarray(r.start + 5, r.end)).M ?? 'the server reported an error';
        } else if (type === Backend.ReadyForQuery && head !== undefined) {
          this.pending.shift();
          clearTimeout(head.timer);
          if (head.error !== null) head.reject(new Error(head.error));
          else head.resolve(head.row);
        }
        // RowDescription, CommandComplete, ParameterStatus and notices carry nothing the monitor reads.
      }
    } catch (e) {
      this.close(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
