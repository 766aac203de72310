/**
 * One simple Query pgsplit runs itself on an idle server connection (a pool's cleanup, a settings plan),
 * outside any client's traffic: the rows come back as text, an error as its fields. ParameterStatus and
 * ReadyForQuery go to the connection's ServerState on the way, so the state stays what the server holds.
 */
import { serialize } from '../codec/frontend-messages.js';
import { Backend } from '../codec/message-types.js';
import { readDataRow, readErrorFields, readParameterStatus } from '../codec/message-fields.js';
import { errors } from '../errors.js';
import type { ServerConnection } from './server-connection.js';
import type { ServerState, TransactionStatus } from './server-state.js';

export interface InternalQueryResult {
  rows: Array<Array<string | null>>;
  /** The ErrorResponse's fields (C, M, ...), or null when the statement succeeded. */
  error: Record<string, string> | null;
  status: TransactionStatus;
}

/**
 * Sends `sql` as a Query and resolves at its ReadyForQuery. Rejects (SERVER_LOST) when the connection
 * fails or closes first, or after `timeoutMs` without an answer; the connection is unusable then and the
 * caller closes it. The connection's onData is taken for the query and left as a no-op afterwards.
 */
export function runInternalQuery(conn: ServerConnection, state: ServerState | null, sql: string, timeoutMs: number): Promise<InternalQueryResult> {
  return new Promise((resolve, reject) => {
    const rows: Array<Array<string | null>> = [];
    let error: Record<string, string> | null = null;
    const finish = (err: Error | null, status: TransactionStatus = 'I'): void => {
      clearTimeout(timer);
      conn.onData = () => {};
      conn.socket.removeListener('close', onClose);
      conn.socket.removeListener('error', onError);
      if (err !== null) reject(err);
      else resolve({ rows, error, status });
    };
    const onClose = (): void => finish(errors.serverLost(conn.target.name, 'the server closed the connection'));
    const onError = (e: Error): void => finish(errors.serverLost(conn.target.name, e.message));
    const timer = setTimeout(() => finish(errors.serverLost(conn.target.name, `no answer to pgsplit's own "${sql.slice(0, 40)}" within ${timeoutMs} ms`)), timeoutMs);
    conn.onData = (chunk) => {
      let frames;
      try {
        frames = conn.reader.push(chunk);
      } catch (e) {
        finish(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      // Frames are views of a reused read buffer: everything needed is read out before returning.
      for (const f of frames) {
        state?.observe(f.type, f.payload);
        if (f.type === Backend.DataRow) rows.push(readDataRow(f.payload));
        else if (f.type === Backend.ErrorResponse) error = readErrorFields(f.payload);
        else if (f.type === Backend.ParameterStatus) {
          const [name, value] = readParameterStatus(f.payload);
          conn.parameters.set(name, value);
        } else if (f.type === Backend.ReadyForQuery) {
          finish(null, String.fromCharCode(f.payload[0] ?? 0x49) as TransactionStatus);
          return;
        }
      }
    };
    conn.socket.once('close', onClose);
    conn.socket.once('error', onError);
    if (conn.state !== 'ready' || conn.socket.destroyed) {
      finish(errors.serverLost(conn.target.name, 'the connection is closed'));
      return;
    }
    conn.socket.write(serialize.query(sql));
  });
}
