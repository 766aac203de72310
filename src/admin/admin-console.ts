import type net from 'node:net';
import { FrameReader } from '../codec/frame-reader.js';
import { Frontend } from '../codec/message-types.js';
import { readQuery } from '../codec/message-fields.js';
import {
  PgType, backendKeyData, commandComplete, dataRow, emptyQueryResponse, errorFor, errorResponse, noticeResponse, parameterStatus, readyForQuery, rowDescription,
} from '../codec/backend-messages.js';
import { PgsplitError, SqlState } from '../errors.js';
import type { PoolRegistry } from '../pool/pool-registry.js';
import { poolLabel } from '../pool/server-pool.js';

/** What the console reads from and does to the running proxy (the ProxyServer provides it). */
export interface AdminSource {
  version: string;
  nodes(): Array<{ name: string; role: 'primary' | 'replica'; state: string; lagSeconds: number | null; lagBytes: number | null; inFlight: number; connections: number; lastError: string | null }>;
  clients(): Array<{
    id: number; user: string; database: string; state: string; addr: string; port: number; tagged: boolean; servers: string;
    applicationName: string; tagSource: string;
    /** Epoch milliseconds. */
    connectedAt: number; lastActiveAt: number;
  }>;
  servers(): Array<{ node: string; state: string; client: number; backendPid: number }>;
  stats(): Array<{ node: string; queries: number; totalTimeUs: number; errors?: number }>;
  config(): Array<{ key: string; value: string }>;
  /**
   * The server pools, for SHOW POOLS and the pooled rows of SHOW SERVERS; absent or null while the proxy
   * does not pool (SHOW POOLS then has no rows).
   */
  pools?: () => PoolRegistry | null;
  /** PAUSE (true): no new work starts outside transactions; RESUME (false): it goes on. */
  setPaused(paused: boolean): void;
  /** Takes a replica out of rotation by hand (true) or puts it back (false); an error message if it cannot. */
  setDisabled(node: string, disabled: boolean): string | null;
  /** Reads the configuration file again and applies it; throws (the reason) when it is refused. */
  reload(): { changed: string[]; needsRestart: string[]; added: string[]; removed: string[] };
  /** Closes a client's session (FATAL 57P01 to it, its statement cancelled); an error message if there is no such client. */
  kill(clientId: number): string | null;
}

const HELP: ReadonlyArray<[string, string]> = [
  ['SHOW HELP', 'this list'],
  ['SHOW VERSION', 'pgsplit version'],
  ['SHOW NODES', 'one row per server: role, state, lag in seconds and bytes, statements in flight, last error'],
  ['SHOW CLIENTS', 'one row per client session: id, user, database, state, address, tag, application_name, connect and last-activity times'],
  ['SHOW SERVERS', 'one row per server connection, with the client id it serves, the backend pid (pg_stat_activity.pid), its login and its pool'],
  ['SHOW POOLS', 'one row per server pool (database, user, node, role): clients holding and waiting for a connection, connections in use, idle, being cleaned and opened, longest wait'],
  ['SHOW STATS', 'statements and time per node since start'],
  ['SHOW CONFIG', 'the configuration in force (no secrets)'],
  ['PAUSE', 'new work waits (transactions under way go on to their end); see in_flight in SHOW NODES'],
  ['RESUME', 'let waiting work go'],
  ['RELOAD', 'read the --config file again and apply it (an invalid file is refused; the running configuration stays)'],
  ['DISABLE <node>', 'take a replica out of rotation (its sessions move on at their next read)'],
  ['ENABLE <node>', 'put it back'],
  ['KILL <client id>', 'close that client session at once (FATAL 57P01 to the client; a running statement is cancelled); ids from SHOW CLIENTS'],
];

type Cell = string | number | boolean | null;
/** A column and the type its RowDescription declares (counts int8, times timestamptz, ...). */
type Column = readonly [name: string, typeOid: number];
const col = {
  text: (name: string): Column => [name, PgType.text],
  int8: (name: string): Column => [name, PgType.int8],
};

/** Epoch milliseconds as timestamptz text output (DateStyle ISO, UTC). */
function timestamptz(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}+00`;
}

const cell = (v: Cell): string | null => (v === null ? null : typeof v === 'boolean' ? (v ? 't' : 'f') : String(v));

/**
 * The admin console: a client that connects to the database `pgsplit` as an admin user gets this
 * instead of a session. It speaks the simple query protocol (psql) and answers from the proxy's own
 * state; nothing reaches a server. Column names follow PgBouncer's where the meaning is the same.
 */
export class AdminConsole {
  private readonly reader: FrameReader;

  constructor(private readonly socket: net.Socket, private readonly src: AdminSource, maxMessageSize: number) {
    this.reader = new FrameReader({ maxMessageSize });
  }

  /** Sends the startup tail (parameters, key, ReadyForQuery) and starts answering. */
  start(leftover: Buffer | null): void {
    this.socket.write(Buffer.concat([
      parameterStatus('server_version', `15.0 (pgsplit ${this.src.version} admin console)`),
      parameterStatus('server_encoding', 'UTF8'), parameterStatus('client_encoding', 'UTF8'),
      parameterStatus('standard_conforming_strings', 'on'), parameterStatus('DateStyle', 'ISO, MDY'),
      parameterStatus('integer_datetimes', 'on'), backendKeyData(0, 0), readyForQuery('I'),
    ]));
    this.socket.on('data', (c: Buffer) => this.onData(c));
    if (leftover && leftover.length > 0) this.onData(leftover);
  }

  private onData(chunk: Buffer): void {
    try {
      for (const f of this.reader.push(chunk)) {
        if (f.type === Frontend.Terminate) {
          this.socket.end();
          return;
        }
        if (f.type === Frontend.Query) this.socket.write(Buffer.concat([this.answer(readQuery(f.payload) ?? ''), readyForQuery('I')]));
        else if (f.type === Frontend.Sync) {
          this.socket.write(Buffer.concat([errorResponse({ severity: 'ERROR', code: SqlState.featureNotSupported,
            message: 'the pgsplit admin console speaks the simple query protocol only', hint: 'use psql -d pgsplit' }), readyForQuery('I')]));
        }
      }
    } catch (e) {
      if (e instanceof PgsplitError) this.socket.end(errorFor(e));
      else this.socket.destroy();
    }
  }

  private table(columns: readonly Column[], rows: Cell[][], tag: string): Buffer {
    return Buffer.concat([
      rowDescription(columns.map((c) => c[0]), columns.map((c) => c[1])), ...rows.map((r) => dataRow(r.map(cell))), commandComplete(`${tag} ${rows.length}`),
    ]);
  }

  private error(message: string, hint: string, code: string = SqlState.syntaxError): Buffer {
    return errorResponse({ severity: 'ERROR', code, message, hint });
  }

  /** RELOAD: what changed as NOTICEs (psql prints them), or the reason it was refused (SQLSTATE F0000). */
  private reload(): Buffer {
    let r: ReturnType<AdminSource['reload']>;
    try {
      r = this.src.reload();
    } catch (e) {
      const code = e instanceof PgsplitError ? e.sqlState : SqlState.configFileError;
      return errorResponse({ severity: 'ERROR', code, message: `reload refused: ${(e as Error).message}`,
        hint: 'the configuration in force is unchanged; fix the file (pgsplit check-config FILE tells what is wrong) and RELOAD again' });
    }
    const notes: string[] = [r.changed.length > 0 ? `changed: ${r.changed.join(', ')}` : 'nothing changed'];
    if (r.added.length > 0) notes.push(`replicas added: ${r.added.join(', ')} (reads go there once checked)`);
    if (r.removed.length > 0) notes.push(`replicas removed: ${r.removed.join(', ')} (draining: SHOW NODES shows them until no session uses them)`);
    if (r.needsRestart.length > 0) notes.push(`changed but applied only at the next restart: ${r.needsRestart.join(', ')}`);
    return Buffer.concat([...notes.map((m) => noticeResponse({ severity: 'NOTICE', code: '00000', message: m })), commandComplete('RELOAD')]);
  }

  /**
   * SHOW SERVERS: the sessions' server connections as before, then the pooled connections no session
   * reports (idle ones, or leased outside a session). A session's connection that came from a pool (same
   * node and backend pid) gets its pool's login and label; user and pool are empty for the others.
   */
  private servers(): Buffer {
    const pooled = this.src.pools?.()?.servers() ?? [];
    const byPid = new Map(pooled.map((p) => [`${p.node}\0${p.backendPid}`, p]));
    const rows: Cell[][] = this.src.servers().map((s) => {
      const p = byPid.get(`${s.node}\0${s.backendPid}`);
      if (p !== undefined) byPid.delete(`${s.node}\0${s.backendPid}`);
      return ['S', s.node, s.state, s.client, s.backendPid, p?.user ?? null, p === undefined ? null : poolLabel(p)];
    });
    for (const p of byPid.values()) rows.push(['S', p.node, p.state, null, p.backendPid, p.user, poolLabel(p)]);
    // The first five columns as before; user (the server login, PgBouncer's name) and pool come after them.
    return this.table([col.text('type'), col.text('node'), col.text('state'), col.int8('client'), ['backend_pid', PgType.int4], col.text('user'), col.text('pool')], rows, 'SHOW');
  }

  /**
   * SHOW POOLS. The first eleven columns are PgBouncer's, in its order, so that scripts written for it
   * read pgsplit alike: sv_tested counts connections running the cleanup of a released lease (PgBouncer's
   * server_reset_query), sv_login those being opened, and sv_used is always 0 (pgsplit runs no
   * server_check_query). maxwait is whole seconds and maxwait_us the microseconds beyond them, as there.
   * node and role, which PgBouncer has no use for, come last.
   */
  private pools(): Buffer {
    const rows = this.src.pools?.()?.rows() ?? [];
    return this.table([
      col.text('database'), col.text('user'), col.int8('cl_active'), col.int8('cl_waiting'), col.int8('sv_active'), col.int8('sv_idle'), col.int8('sv_used'),
      col.int8('sv_tested'), col.int8('sv_login'), col.int8('maxwait'), col.int8('maxwait_us'), col.text('node'), col.text('role'),
    ], rows.map((p) => [
      p.database, p.user, p.clientsActive, p.clientsWaiting, p.serversActive, p.serversIdle, 0,
      p.serversCleaning, p.serversPending - p.serversCleaning, Math.floor(p.longestWaitMs / 1000), (p.longestWaitMs % 1000) * 1000, p.node, p.role,
    ]), 'SHOW');
  }

  /** The answer to one query string (without ReadyForQuery). */
  answer(sql: string): Buffer {
    const text = sql.trim().replace(/;\s*$/, '').trim();
    if (text === '') return emptyQueryResponse();
    const words = text.split(/\s+/);
    const verb = (words[0] ?? '').toUpperCase();
    const what = (words[1] ?? '').toUpperCase();
    if (verb === 'SHOW' && words.length === 2) {
      switch (what) {
        case 'HELP':
          return this.table([col.text('command'), col.text('description')], HELP.map(([c, d]) => [c, d]), 'SHOW');
        case 'VERSION':
          return this.table([col.text('version')], [[`pgsplit ${this.src.version}`]], 'SHOW');
        case 'NODES':
          return this.table([col.text('name'), col.text('role'), col.text('state'), ['lag_seconds', PgType.float8], col.int8('lag_bytes'), col.int8('in_flight'), col.int8('connections'), col.text('last_error')],
            this.src.nodes().map((n) => [n.name, n.role, n.state, n.lagSeconds === null ? null : n.lagSeconds.toFixed(3), n.lagBytes, n.inFlight, n.connections, n.lastError]), 'SHOW');
        case 'CLIENTS':
          // The first nine columns as before; what was added since comes after them.
          return this.table([col.text('type'), col.int8('id'), col.text('user'), col.text('database'), col.text('state'), col.text('addr'), ['port', PgType.int4], ['tagged', PgType.bool],
            col.text('servers'), col.text('application_name'), col.text('tag'), ['connect_time', PgType.timestamptz], ['last_activity', PgType.timestamptz]],
          this.src.clients().map((c) => ['C', c.id, c.user, c.database, c.state, c.addr, c.port, c.tagged, c.servers, c.applicationName, c.tagSource,
            timestamptz(c.connectedAt), timestamptz(c.lastActiveAt)]), 'SHOW');
        case 'SERVERS':
          return this.servers();
        case 'POOLS':
          return this.pools();
        case 'STATS':
          return this.table([col.text('node'), col.int8('total_query_count'), col.int8('total_query_time'), col.int8('avg_query_time')],
            this.src.stats().map((s) => [s.node, s.queries, Math.round(s.totalTimeUs), s.queries > 0 ? Math.round(s.totalTimeUs / s.queries) : 0]), 'SHOW');
        case 'CONFIG':
          return this.table([col.text('key'), col.text('value')], this.src.config().map((c) => [c.key, c.value]), 'SHOW');
        default:
          break;
      }
    }
    if ((verb === 'PAUSE' || verb === 'RESUME') && words.length === 1) {
      this.src.setPaused(verb === 'PAUSE');
      return commandComplete(verb);
    }
    if (verb === 'RELOAD' && words.length === 1) return this.reload();
    if ((verb === 'DISABLE' || verb === 'ENABLE') && words.length === 2) {
      const node = words[1] as string;
      const why = this.src.setDisabled(node, verb === 'DISABLE');
      if (why !== null) return this.error(why, 'SHOW NODES lists the replicas by name', SqlState.undefinedObject);
      return commandComplete(verb);
    }
    if (verb === 'KILL' && words.length === 2) {
      const id = words[1] as string;
      if (!/^\d{1,15}$/.test(id)) return this.error(`KILL takes a client id (a number), not "${id.slice(0, 40)}"`, 'SHOW CLIENTS lists the ids');
      const why = this.src.kill(Number(id));
      if (why !== null) return this.error(why, 'SHOW CLIENTS lists the ids', SqlState.undefinedObject);
      return commandComplete('KILL');
    }
    return this.error(`the admin console does not know "${text.length > 60 ? `${text.slice(0, 60)}...` : text}"`, 'SHOW HELP lists the commands');
  }
}
