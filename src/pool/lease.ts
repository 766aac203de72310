/**
 * A server connection as a pool holds it (PooledServer), and a client's use of one (Lease): what
 * ServerPool.acquire hands out and release / releaseWithError / remove take back. A lease ends once;
 * the session keeps no reference to the connection past that.
 */
import type { ServerConnection } from '../server/server-connection.js';
import type { ServerState } from '../server/server-state.js';

/** One connection of a pool, with the times its lifetime and idle timeout count from. */
export interface PooledServer {
  /** Pool-local number, for logs. */
  readonly id: number;
  readonly conn: ServerConnection;
  /** LoginParams.key of the client parameters it logged in with ('' for the pool's login alone). */
  readonly login: string;
  readonly state: ServerState;
  /** performance.now() when it was connected (pool.server_lifetime counts from here). */
  readonly createdAt: number;
  /** performance.now() when it last became idle (pool.server_idle_timeout counts from here). */
  idleSince: number;
  /** What its data goes to while idle (ServerConnection.onData): the pool closes it. */
  whileIdle: (chunk: Buffer) => void;
}

/** One client's hold on one server connection, from acquire until it is given back. */
export class Lease {
  /** Whether release, releaseWithError or remove has taken it back. */
  ended = false;
  /** Its place among the pool's parked leases (see ParkedLeases), or -1 while its holder uses it. */
  parkIndex = -1;
  /** performance.now() when it was last parked. */
  parkedSince = 0;
  /** While parked: tells its holder to let it go now. */
  reclaim: (() => void) | null = null;

  constructor(
    readonly server: PooledServer,
    /** Who holds it (client id, user, address): for logs and SHOW. */
    readonly identity: string,
    /** How long the client waited for it, ms (0 when a connection was idle). */
    readonly waitedMs: number,
    /** performance.now() when it was handed out. */
    readonly since: number,
  ) {}

  get conn(): ServerConnection {
    return this.server.conn;
  }

  get state(): ServerState {
    return this.server.state;
  }
}
