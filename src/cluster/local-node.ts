/**
 * One PostgreSQL server of a {@link LocalCluster}: a data directory plus the pg_ctl, SQL and signal
 * plumbing that tests need to start, stop, pause and freeze it. Also holds the low-level helpers the
 * cluster shares (running server binaries as the `postgres` OS user, picking free ports).
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);

/** The OS user every server command runs as when we are root. */
export const POSTGRES_OS_USER = 'postgres';

/** True when server commands must be wrapped, because PostgreSQL refuses to run as root. */
export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Builds the argv for a PostgreSQL binary, routed through `runuser` when we are root. Returning argv
 * (never a shell string) keeps paths and values from being interpreted by a shell.
 */
export function postgresCommand(file: string, args: readonly string[]): [string, string[]] {
  if (runningAsRoot()) return ['runuser', ['-u', POSTGRES_OS_USER, '--', file, ...args]];
  return [file, [...args]];
}

/**
 * The environment for server tools. PG* variables are dropped because a stray PGDATA, PGPORT or
 * PGOPTIONS in the caller's shell would silently redirect or reconfigure the tools.
 */
export function postgresToolEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  env.LC_ALL = 'C';
  return env;
}

/**
 * Runs a server binary from `binDir` and resolves with its output. The error carries the tool's
 * stderr, since that is where initdb, pg_ctl and pg_basebackup explain themselves.
 */
export async function runPostgresTool(
  binDir: string,
  tool: string,
  args: readonly string[],
  opts: { cwd: string; timeoutMs?: number },
): Promise<{ stdout: string; stderr: string }> {
  const [cmd, argv] = postgresCommand(path.join(binDir, tool), args);
  try {
    const { stdout, stderr } = await execFileAsync(cmd, argv, {
      cwd: opts.cwd,
      env: postgresToolEnv(),
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 16 * 1024 * 1024,
      encoding: 'utf8',
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string; killed?: boolean };
    const output = [e.stderr, e.stdout].filter((s) => s && s.trim() !== '').join('\n').trim();
    const why = e.killed ? 'timed out' : 'failed';
    throw new Error(`${tool} ${why}: ${firstLine(e.message)}${output ? `\n${output}` : ''}`, { cause: err });
  }
}

/** Synchronous best-effort twin of {@link runPostgresTool}, for process-exit cleanup where async work never runs. */
export function runPostgresToolSync(binDir: string, tool: string, args: readonly string[], cwd: string): boolean {
  const [cmd, argv] = postgresCommand(path.join(binDir, tool), args);
  try {
    const res = spawnSync(cmd, argv, {
      cwd: fs.existsSync(cwd) ? cwd : '/',
      env: postgresToolEnv(),
      stdio: 'ignore',
      timeout: 20_000,
    });
    return res.status === 0;
  } catch {
    return false;
  }
}

/** Ports handed out in this process and not yet released, so two nodes never get the same one. */
const claimedPorts = new Set<number>();

/**
 * Asks the kernel for a free loopback port. The port is only free at the moment we close the probe,
 * so a caller must still cope with losing a race to another process (see the bind retry in start).
 */
export async function claimFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
        const address = server.address();
        const found = typeof address === 'object' && address !== null ? address.port : 0;
        server.close(() => resolve(found));
      });
    });
    if (port > 0 && !claimedPorts.has(port)) {
      claimedPorts.add(port);
      return port;
    }
  }
  throw new Error('could not find a free loopback port after 50 attempts');
}

/** Returns a port claimed with {@link claimFreePort} once no server listens on it any more. */
export function releasePort(port: number): void {
  claimedPorts.delete(port);
}

/** Quotes a value for postgresql.conf; quoted values are accepted for every setting type. */
export function confValue(value: string | number): string {
  const s = String(value);
  if (/[\r\n\0]/.test(s)) throw new Error(`postgresql.conf value must be a single line: ${JSON.stringify(s)}`);
  return `'${s.replace(/'/g, "''")}'`;
}

/** Renders settings as postgresql.conf lines, rejecting names that could smuggle in extra lines. */
export function confLines(settings: Record<string, string | number>): string {
  return Object.entries(settings)
    .map(([key, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key)) throw new Error(`invalid postgresql.conf setting name: ${JSON.stringify(key)}`);
      return `${key} = ${confValue(value)}\n`;
    })
    .join('');
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads `/proc/PID/stat` into state and parent PID; the comm field may contain spaces or ')', hence lastIndexOf. */
function procStat(pid: number): { state: string; ppid: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const ppid = Number(fields[1]);
  if (state === undefined || !Number.isInteger(ppid)) return undefined;
  return { state, ppid };
}

/** All descendants of `root`, found by walking parent links in /proc (children before grandchildren). */
function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const stat = procStat(pid);
    if (!stat) continue;
    const list = children.get(stat.ppid);
    if (list) list.push(pid);
    else children.set(stat.ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  for (let parent = queue.shift(); parent !== undefined; parent = queue.shift()) {
    for (const child of children.get(parent) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Alive means present and not a zombie; a zombie has released everything but its process-table slot. */
function isAlive(pid: number): boolean {
  const state = procStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // The process may have exited between listing and signalling; nothing left to do for it.
  }
}

/** Everything a {@link LocalNode} needs to know about its place in the cluster. */
export interface LocalNodeInit {
  name: string;
  role: 'primary' | 'replica';
  port: number;
  dataDir: string;
  /** Directory for the Unix socket; kept short because socket paths are limited to 107 bytes. */
  socketDir: string;
  logFile: string;
  binDir: string;
  /** Working directory for server tools; must be accessible to the postgres OS user. */
  workDir: string;
  superuser: string;
  /** The node a replica streams from; used to generate a WAL record when a pause request needs one to take effect. */
  upstream?: LocalNode;
}

/** One PostgreSQL server started by a {@link LocalCluster}. */
export class LocalNode {
  readonly name: string;
  readonly role: 'primary' | 'replica';
  readonly host = '127.0.0.1';
  readonly dataDir: string;
  /** Where pg_ctl writes the server log; its tail is quoted in start failures. */
  readonly logFile: string;
  readonly superuser: string;

  #port: number;
  readonly #socketDir: string;
  readonly #binDir: string;
  readonly #workDir: string;
  readonly #upstream: LocalNode | undefined;
  #running = false;
  #frozen = false;
  #replayPaused = false;

  /** @internal Nodes are created by {@link LocalCluster.start}; the data directory does not exist yet. */
  constructor(init: LocalNodeInit) {
    this.name = init.name;
    this.role = init.role;
    this.#port = init.port;
    this.dataDir = init.dataDir;
    this.#socketDir = init.socketDir;
    this.logFile = init.logFile;
    this.#binDir = init.binDir;
    this.#workDir = init.workDir;
    this.superuser = init.superuser;
    this.#upstream = init.upstream;
  }

  /** Loopback TCP port; fixed once the cluster has started. */
  get port(): number {
    return this.#port;
  }

  /** Whether this kit started the server and has not stopped it since. */
  get running(): boolean {
    return this.#running;
  }

  /** Whether the server's processes are SIGSTOPped by {@link freeze}. */
  get frozen(): boolean {
    return this.#frozen;
  }

  /** Whether WAL replay was paused with {@link pauseReplay} (replicas only). */
  get replayPaused(): boolean {
    return this.#replayPaused;
  }

  /** postgres:// URL; user defaults to the superuser, no password (trust); database default 'postgres'. */
  url(opts: { user?: string; password?: string; database?: string } = {}): string {
    const user = encodeURIComponent(opts.user ?? this.superuser);
    const auth = opts.password === undefined ? user : `${user}:${encodeURIComponent(opts.password)}`;
    const database = encodeURIComponent(opts.database ?? 'postgres');
    return `postgres://${auth}@${this.host}:${this.port}/${database}`;
  }

  /** Run SQL via a short-lived pg.Client as the superuser; returns rows. */
  async query<T = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<T[]> {
    const client = new pg.Client({
      host: this.host,
      port: this.port,
      user: this.superuser,
      database: database ?? 'postgres',
      connectionTimeoutMillis: 10_000,
    });
    // Without a listener, a server shutting down under an idle client would crash the process.
    client.on('error', () => {});
    await client.connect();
    try {
      const res = await client.query(sql, params);
      return res.rows as T[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  /**
   * Pauses WAL replay and waits until PostgreSQL reports 'paused' (replica only).
   *
   * A pause request only takes effect when the startup process reaches the next WAL record, so on an
   * idle cluster it would sit at 'pause requested' forever; we then emit a harmless logical message on
   * the upstream to give it a record to stop at.
   */
  async pauseReplay(timeoutMs = 10_000): Promise<void> {
    this.#assertReplica('pauseReplay');
    await this.query('SELECT pg_wal_replay_pause()');
    this.#replayPaused = true;
    const deadline = Date.now() + timeoutMs;
    let nudgeAt = Date.now() + 200;
    let state = '';
    while (Date.now() < deadline) {
      const [row] = await this.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
      state = row?.state ?? '';
      if (state === 'paused') return;
      if (Date.now() >= nudgeAt && this.#upstream?.running && !this.#upstream.frozen) {
        await this.#upstream.query("SELECT pg_logical_emit_message(false, 'pgsplit-cluster-kit', 'pause')");
        nudgeAt = Date.now() + 1_000;
      }
      await sleep(25);
    }
    throw new Error(`${this.name}: WAL replay did not pause within ${timeoutMs} ms (state '${state}')`);
  }

  /** Resumes WAL replay paused by {@link pauseReplay} (replica only). */
  async resumeReplay(): Promise<void> {
    this.#assertReplica('resumeReplay');
    await this.query('SELECT pg_wal_replay_resume()');
    this.#replayPaused = false;
  }

  /** Stops the server with pg_ctl (thawing it first, since a stopped process cannot shut down). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.#running) return;
    if (this.#frozen) await this.thaw();
    const pids = this.pids();
    await runPostgresTool(this.#binDir, 'pg_ctl', ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60'], {
      cwd: this.#workDir,
      timeoutMs: 90_000,
    });
    // pg_ctl returns once postmaster.pid is gone, a moment before the processes have exited; callers
    // that delete the data directory or count processes next need them really gone.
    const deadline = Date.now() + 5_000;
    while (pids.some(isAlive) && Date.now() < deadline) await sleep(10);
    this.#running = false;
    this.#replayPaused = false;
  }

  /** Starts the server again after {@link stop}, waiting until it accepts connections. */
  async start(): Promise<void> {
    if (this.#running) return;
    await this.#pgCtlStart();
    this.#running = true;
    // Replay pause state lives in shared memory and does not survive a restart.
    this.#replayPaused = false;
  }

  /**
   * First start, during cluster setup. Only here may the port change: if another process took it
   * between our probe and the server's bind, we pick another one, since nobody knows the port yet.
   */
  async startFresh(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.writeNodeSettings();
      try {
        await this.start();
        return;
      } catch (err) {
        const lostPortRace = /could not (bind|create listen socket)|Address already in use/i.test(String(err));
        if (!lostPortRace || attempt >= 3) throw err;
        releasePort(this.#port);
        this.#port = await claimFreePort();
      }
    }
  }

  /**
   * Appends this node's own settings to postgresql.conf. Appending (instead of editing) works because
   * the last occurrence of a setting wins, and replicas inherit the primary's file via the base backup.
   */
  async writeNodeSettings(): Promise<void> {
    const block =
      `\n# pgsplit local cluster: ${this.name}\n` +
      confLines({ port: this.#port, unix_socket_directories: this.#socketDir, cluster_name: this.name });
    // appendFile keeps the file's owner (postgres) even though we may be root.
    await fsp.appendFile(path.join(this.dataDir, 'postgresql.conf'), block);
  }

  /** Stops the server and every child process with SIGSTOP, simulating a hung (not crashed) host. */
  async freeze(): Promise<void> {
    if (this.#frozen) return;
    const postmaster = this.#postmasterPid();
    if (!this.#running || postmaster === undefined) throw new Error(`${this.name}: cannot freeze a server that is not running`);
    // The postmaster goes first and we wait for it to be stopped, so it cannot fork a child we miss.
    signal(postmaster, 'SIGSTOP');
    const deadline = Date.now() + 2_000;
    while (procStat(postmaster)?.state !== 'T' && Date.now() < deadline) await sleep(5);
    const children = descendantsOf(postmaster);
    for (const pid of children) signal(pid, 'SIGSTOP');
    // A signal is taken when the process next runs: until then it may still be running ('R'). Frozen
    // means every process stopped (or dead, a zombie the stopped postmaster has not reaped).
    const settled = (pid: number): boolean => ['T', 'Z', undefined].includes(procStat(pid)?.state);
    while (!children.every(settled) && Date.now() < deadline + 2_000) await sleep(5);
    this.#frozen = true;
  }

  /** Resumes every process stopped by {@link freeze}. */
  async thaw(): Promise<void> {
    if (!this.#frozen) return;
    this.#continueAll();
    this.#frozen = false;
  }

  /** The server's PIDs (postmaster first), read from postmaster.pid and /proc. */
  pids(): number[] {
    const postmaster = this.#postmasterPid();
    if (postmaster === undefined) return [];
    return [postmaster, ...descendantsOf(postmaster)];
  }

  /**
   * Synchronous, never-throwing immediate shutdown for process-exit cleanup.
   * @internal Used by {@link stopAllClustersSync}; prefer {@link stop}.
   */
  stopSync(): void {
    if (!this.#running) return;
    if (this.#frozen) {
      this.#continueAll();
      this.#frozen = false;
    }
    const ok = runPostgresToolSync(
      this.#binDir,
      'pg_ctl',
      ['stop', '-D', this.dataDir, '-m', 'immediate', '-w', '-t', '15'],
      this.#workDir,
    );
    if (!ok) this.killSync();
    this.#running = false;
    this.#replayPaused = false;
  }

  /**
   * SIGKILLs the whole process tree. Last resort when pg_ctl cannot stop the server, so that no
   * server outlives the data directory we are about to delete.
   * @internal
   */
  killSync(): void {
    for (const pid of this.pids()) signal(pid, 'SIGKILL');
    this.#running = false;
    this.#frozen = false;
  }

  /** Last lines of the server log, for error messages. */
  async logTail(lines = 25): Promise<string> {
    try {
      const text = await fsp.readFile(this.logFile, 'utf8');
      return text.trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no server log)';
    }
  }

  async #pgCtlStart(): Promise<void> {
    try {
      await runPostgresTool(
        this.#binDir,
        'pg_ctl',
        ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60'],
        { cwd: this.#workDir, timeoutMs: 90_000 },
      );
    } catch (err) {
      const tail = await this.logTail();
      throw new Error(`${this.name}: pg_ctl start failed on port ${this.#port}: ${(err as Error).message}\n--- ${this.logFile} (tail) ---\n${tail}`, {
        cause: err,
      });
    }
  }

  #continueAll(): void {
    const pids = this.pids();
    // Children first, so the postmaster never wakes up to find its children unresponsive.
    for (const pid of pids.slice(1)) signal(pid, 'SIGCONT');
    if (pids[0] !== undefined) signal(pids[0], 'SIGCONT');
  }

  #postmasterPid(): number | undefined {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8');
    } catch {
      return undefined;
    }
    const pid = Number(text.split('\n', 1)[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    // A stale pid file (after a crash) may name a recycled PID; only trust it if that process is a postgres.
    const stat = procStat(pid);
    if (!stat) return undefined;
    try {
      const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (!comm.startsWith('postgres') && !comm.startsWith('postmaster')) return undefined;
    } catch {
      return undefined;
    }
    return pid;
  }

  #assertReplica(what: string): void {
    if (this.role !== 'replica') throw new Error(`${what} is only valid on a replica, not on ${this.name}`);
  }
}
