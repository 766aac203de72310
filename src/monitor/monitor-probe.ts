import type { PgsplitConfig } from '../config/config.js';
import type { ServerTarget } from '../server/server-connection.js';
import type { NodeEntry } from '../server/server-nodes.js';
import { MonitorConnection } from './monitor-connection.js';

/**
 * The replica monitor's connection to one server, opened on the first query and again on the first one
 * after it was dropped, and the check and sample in flight on it (the monitor keeps one of each).
 */
export class MonitorProbe {
  /** A check in flight (see ReplicaMonitor.check). */
  inFlight: Promise<void> | null = null;
  /** A position sample in flight (see ReplicaMonitor.sample). */
  sampling: Promise<void> | null = null;
  /**
   * Its replica was removed from the configuration, or the monitor stopped: nothing runs on it again,
   * and what was in flight reports nothing (a server is not "down" because pgsplit let it go).
   */
  retired = false;
  private retiredWhy = '';
  private conn: MonitorConnection | null = null;
  private opening: Promise<MonitorConnection> | null = null;
  /** Counts drops: a connection that finishes opening after a drop is closed, not kept. */
  private generation = 0;
  /** The login `conn` or `opening` is for. */
  private user = '';
  private password: string | undefined = undefined;

  /**
   * `prepare` runs on each new connection before its first query (the monitor reads settings there),
   * within what is left of monitor.timeout (`timeoutMs`).
   */
  constructor(
    readonly node: NodeEntry,
    private readonly prepare: (c: MonitorConnection, timeoutMs: number) => Promise<void>,
  ) {}

  /**
   * Runs `query` (a whole simple Query message) and resolves with the first row as text, or null; connects
   * first when there is no open connection. Connecting and the query together take at most
   * monitor.timeout, as one check. Whoever sees it fail drops the connection (see {@link drop}).
   */
  run(query: Buffer, opts: PgsplitConfig['monitor']): Promise<Array<string | null> | null> {
    if (this.retired) return Promise.reject(new Error(this.retiredWhy));
    // monitor.user (with monitor.password) wins over the URL's user and password.
    const e = this.node.endpoint;
    const user = opts.user ?? e.user ?? 'postgres';
    const password = opts.user !== null ? (opts.password ?? undefined) : e.password;
    // A reload that changed monitor.user / password: this query connects again with the new login
    // (between checks, so that no check fails for it).
    if ((this.conn !== null || this.opening !== null) && (user !== this.user || password !== this.password)) this.drop();
    // A connection the server or the network closed between queries (a restart, pg_terminate_backend) is
    // opened again rather than failing a check: one lost backend says little about the server.
    if (this.conn !== null && !this.conn.closed) return this.conn.run(query, opts.timeoutMs);
    return this.connectAndRun(query, opts, user, password);
  }

  private async connectAndRun(query: Buffer, opts: PgsplitConfig['monitor'], user: string, password: string | undefined): Promise<Array<string | null> | null> {
    const started = performance.now();
    if (this.opening === null) {
      this.user = user;
      this.password = password;
      this.opening = this.open(opts, user, password);
    }
    const conn = await this.opening;
    return conn.run(query, Math.max(1, opts.timeoutMs - (performance.now() - started)));
  }

  private async open(opts: PgsplitConfig['monitor'], user: string, password: string | undefined): Promise<MonitorConnection> {
    const generation = this.generation;
    const e = this.node.endpoint;
    const target: ServerTarget = {
      name: e.name, configKey: this.node.configKey, host: e.host, port: e.port, user, password,
      database: e.database ?? 'postgres', tls: e.tls,
      // A refused login names the keys to fix: monitor.user / monitor.password when they were used.
      ...(opts.user !== null ? { secretKey: 'monitor.password' } : {}),
    };
    let conn: MonitorConnection | null = null;
    try {
      const started = performance.now();
      conn = await MonitorConnection.open(target, opts.timeoutMs);
      await this.prepare(conn, Math.max(1, opts.timeoutMs - (performance.now() - started)));
      if (this.retired) throw new Error(this.retiredWhy);
      if (generation !== this.generation) throw new Error('the connection was dropped while it opened');
      this.conn = conn;
      return conn;
    } catch (err) {
      conn?.close();
      throw err;
    } finally {
      if (generation === this.generation) this.opening = null;
    }
  }

  /** Drops the connection at once (a frozen server never answers a polite Terminate); the next query opens another. */
  drop(): void {
    this.generation++;
    this.opening = null;
    this.conn?.close();
    this.conn = null;
  }

  /** Closes the connection for good (see {@link retired}); what asks for a query after this hears `why`. */
  retire(why: string): void {
    this.retired = true;
    this.retiredWhy = why;
    this.drop();
  }
}
