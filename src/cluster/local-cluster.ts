/**
 * The local cluster kit: starts a real PostgreSQL primary with N streaming replicas on this machine,
 * for tests, benchmarks and the demo. Servers are tuned for speed and small footprint, not durability,
 * and everything lives in one throwaway directory that {@link LocalCluster.stop} removes.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { LocalNode, claimFreePort, confLines, releasePort, runPostgresTool, runningAsRoot, POSTGRES_OS_USER } from './local-node.js';

export { LocalNode } from './local-node.js';

/**
 * On a replica, with $1 the primary's pg_current_wal_insert_lsn(): its replay position, and whether it
 * has replayed that far. An insert position right after a page boundary points past the page header
 * (24 or 40 bytes), while replay stops at the boundary itself; that gap counts as caught up.
 */
export const REPLAYED_UP_TO_SQL = `SELECT r::text AS replayed,
        coalesce(pg_wal_lsn_diff($1::pg_lsn, r) <= 0
          OR (pg_wal_lsn_diff($1::pg_lsn, r) <= 40 AND pg_wal_lsn_diff(r, '0/0') % 8192 = 0), false) AS ok
   FROM (SELECT pg_last_wal_replay_lsn() AS r) s`;

const execFileAsync = promisify(execFile);

/** A login role created on the primary (and so present on every replica), authenticated with `method`. */
export interface ClusterUser {
  name: string;
  password: string;
  method: 'scram-sha-256' | 'md5';
}

/** How to build a {@link LocalCluster}. */
export interface LocalClusterOptions {
  /** Number of streaming replicas; default 2. */
  replicas?: number;
  /**
   * Directory for data directories, logs and sockets; default: a fresh `pgsplit-cluster-*` under
   * os.tmpdir(). It must be empty or absent, because stop() deletes it.
   */
  baseDir?: string;
  /** Directory with initdb, pg_ctl, pg_basebackup; default: `pg_config --bindir`, else PG_BINDIR. */
  binDir?: string;
  /** Roles created on the primary (replicated), with hba lines using their method. */
  users?: ClusterUser[];
  /** Extra postgresql.conf settings, applied to every node. */
  settings?: Record<string, string>;
  /** Progress messages; default no-op. */
  log?: (msg: string) => void;
}

/** Defaults chosen for a 2-core test machine: small memory, no durability work. */
const BASE_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  shared_buffers: '32MB',
  max_connections: '200',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  wal_level: 'replica',
  max_wal_senders: '10',
  hot_standby: 'on',
  hot_standby_feedback: 'on',
  wal_keep_size: '256MB',
  // Replicas reconnect quickly after a primary restart instead of the default 5 s.
  wal_retrieve_retry_interval: '500ms',
};

/** Unix socket paths are limited to 107 bytes; leave room for `/.s.PGSQL.NNNNN.lock`. */
const MAX_SOCKET_DIR_LENGTH = 107 - '/.s.PGSQL.65535.lock'.length;

/** Clusters still holding servers, for the exit-time safety net. */
const liveClusters = new Set<LocalCluster>();
let exitHookInstalled = false;

/**
 * Synchronously stops every server started by any live {@link LocalCluster} in this process
 * (`pg_ctl stop -m immediate`, thawing frozen ones first) and removes their directories.
 * Best-effort and never throws; meant for SIGINT/SIGTERM handlers, and also run on process 'exit'
 * so a crashed test does not leave servers behind.
 */
export function stopAllClustersSync(): void {
  for (const cluster of [...liveClusters]) {
    try {
      cluster.stopSync();
    } catch {
      // Keep going: one broken cluster must not leave the others running.
    }
  }
}

/**
 * For command-line tools that start clusters (benchmarks, soak, fuzz, demo): on SIGINT or SIGTERM, say
 * so on stderr as `NAME: SIGNAL: stopping the servers`, stop every live cluster at once
 * ({@link stopAllClustersSync}: the servers first, so that work still in flight fails fast instead of
 * starting more), then run `cleanup` (stop child processes, remove folders; given 15 s at most), and exit
 * 130 (SIGINT) or 143 (SIGTERM). A second signal exits at once. Returns a function that removes the
 * handlers, for a tool that ends normally and wants the default behaviour back.
 */
export function stopClustersOnSignal(name: string, cleanup?: () => Promise<void> | void): () => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGTERM' ? 143 : 130;
    if (stopping) process.exit(code);
    stopping = true;
    process.stderr.write(`${name}: ${signal}: stopping the servers\n`);
    stopAllClustersSync();
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 15_000);
    });
    Promise.race([Promise.resolve().then(cleanup), limit])
      .catch((e: unknown) => process.stderr.write(`${name}: cleanup after ${signal} failed: ${e instanceof Error ? e.message : String(e)}\n`))
      .finally(() => {
        clearTimeout(timer);
        // Clusters started while the cleanup ran (a tool between two phases) go too.
        stopAllClustersSync();
        process.exit(code);
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
}

function registerLive(cluster: LocalCluster): void {
  liveClusters.add(cluster);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', stopAllClustersSync);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns true. Errors count as "not yet", because the thing being waited for
 * (a restarting replica, a walsender) is often briefly unreachable; the last one is reported on timeout.
 */
async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, describe: () => Promise<string> | string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(50);
  }
  const reason = lastError === undefined ? '' : ` (last error: ${(lastError as Error).message})`;
  throw new Error(`${await describe()} after ${timeoutMs} ms${reason}`);
}

async function resolveBinDir(explicit: string | undefined): Promise<string> {
  if (explicit) return explicit;
  try {
    const { stdout } = await execFileAsync('pg_config', ['--bindir'], { encoding: 'utf8' });
    const dir = stdout.trim();
    if (dir && fs.existsSync(path.join(dir, 'initdb'))) return dir;
  } catch {
    // Fall through to PG_BINDIR: pg_config is not always on PATH (e.g. only the server package installed).
  }
  const fromEnv = process.env.PG_BINDIR;
  if (fromEnv) return fromEnv;
  throw new Error('cannot find PostgreSQL binaries: pg_config --bindir failed; set binDir or PG_BINDIR');
}

/** The postgres OS user's ids when running as root (files the servers must own), else undefined. */
export async function postgresOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (!runningAsRoot()) return undefined;
  try {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
      execFileAsync('id', ['-u', POSTGRES_OS_USER], { encoding: 'utf8' }),
      execFileAsync('id', ['-g', POSTGRES_OS_USER], { encoding: 'utf8' }),
    ]);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
  } catch (err) {
    throw new Error(`running as root but there is no '${POSTGRES_OS_USER}' OS user to run PostgreSQL as`, { cause: err });
  }
}

/** Creates (or adopts an empty) base directory; refuses a non-empty one since stop() deletes it. */
async function prepareBaseDir(requested: string | undefined): Promise<string> {
  if (requested === undefined) return fsp.mkdtemp(path.join(os.tmpdir(), 'pgsplit-cluster-'));
  const dir = path.resolve(requested);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const entries = await fsp.readdir(dir);
  if (entries.length > 0) throw new Error(`baseDir ${dir} is not empty; LocalCluster deletes its baseDir on stop, so give it an empty or new directory`);
  return dir;
}

function validateUser(user: ClusterUser): void {
  // pg_hba.conf has no escape for '"' and a newline would end the line, so such names cannot be expressed safely.
  if (!user.name || /["\r\n\0]/.test(user.name)) throw new Error(`unsupported cluster user name: ${JSON.stringify(user.name)}`);
  if (user.method !== 'md5' && user.method !== 'scram-sha-256') throw new Error(`unsupported auth method for ${user.name}: ${String(user.method)}`);
}

function hbaConf(users: readonly ClusterUser[]): string {
  const lines = [
    '# pgsplit local cluster: users with passwords first, since the first matching line wins',
    ...users.map((u) => `host all "${u.name}" 127.0.0.1/32 ${u.method}`),
    'local all all trust',
    'local replication all trust',
    'host all all 127.0.0.1/32 trust',
    'host replication all 127.0.0.1/32 trust',
  ];
  return lines.join('\n') + '\n';
}

/** A PostgreSQL primary with streaming replicas, running on this machine. */
export class LocalCluster {
  readonly primary: LocalNode;
  readonly replicas: LocalNode[];
  /** Primary first, then replicas in order. */
  readonly nodes: LocalNode[];
  readonly baseDir: string;
  readonly superuser = 'postgres';

  readonly #binDir: string;
  readonly #extraDirs: string[];
  readonly #log: (msg: string) => void;
  #stopping: Promise<void> | undefined;
  #stopped = false;

  private constructor(init: {
    primary: LocalNode;
    replicas: LocalNode[];
    baseDir: string;
    binDir: string;
    extraDirs: string[];
    log: (msg: string) => void;
  }) {
    this.primary = init.primary;
    this.replicas = init.replicas;
    this.nodes = [init.primary, ...init.replicas];
    this.baseDir = init.baseDir;
    this.#binDir = init.binDir;
    this.#extraDirs = init.extraDirs;
    this.#log = init.log;
  }

  /**
   * Creates and starts the cluster: initdb and start the primary, create the users, then base-backup
   * and start the replicas in parallel and wait until each one streams. On failure everything already
   * started is stopped and removed before the error is thrown.
   */
  static async start(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
    const log = opts.log ?? (() => {});
    const replicaCount = opts.replicas ?? 2;
    if (!Number.isInteger(replicaCount) || replicaCount < 0) throw new Error(`replicas must be a non-negative integer, got ${replicaCount}`);
    const users = opts.users ?? [];
    users.forEach(validateUser);
    // Render early so a bad setting fails before anything is created.
    const settingsText = confLines({ ...BASE_SETTINGS, ...(opts.settings ?? {}) });

    const started = Date.now();
    const binDir = await resolveBinDir(opts.binDir);
    const owner = await postgresOwner();
    const baseDir = await prepareBaseDir(opts.baseDir);
    const chown = async (p: string): Promise<void> => {
      if (owner) await fsp.chown(p, owner.uid, owner.gid);
    };

    const extraDirs: string[] = [];
    const ports: number[] = [];
    let cluster: LocalCluster | undefined;
    try {
      await chown(baseDir);
      const socketDir = await LocalCluster.#makeSocketDir(baseDir, extraDirs);
      await chown(socketDir);

      for (let i = 0; i <= replicaCount; i++) ports.push(await claimFreePort());
      const nodeInit = (name: string, role: 'primary' | 'replica', port: number, upstream?: LocalNode): LocalNode =>
        new LocalNode({
          name,
          role,
          port,
          dataDir: path.join(baseDir, name),
          socketDir,
          logFile: path.join(baseDir, `${name}.log`),
          binDir,
          workDir: baseDir,
          superuser: 'postgres',
          upstream,
        });
      const primary = nodeInit('primary', 'primary', ports[0] as number);
      const replicas = ports.slice(1).map((port, i) => nodeInit(`replica${i + 1}`, 'replica', port, primary));
      cluster = new LocalCluster({ primary, replicas, baseDir, binDir, extraDirs, log });
      // Registered before any server starts, so the exit hook also covers a half-built cluster.
      registerLive(cluster);

      log(`initdb ${primary.dataDir}`);
      await runPostgresTool(
        binDir,
        'initdb',
        ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
        { cwd: baseDir },
      );
      await fsp.appendFile(path.join(primary.dataDir, 'postgresql.conf'), `\n# pgsplit local cluster: all nodes\n${settingsText}`);
      await fsp.writeFile(path.join(primary.dataDir, 'pg_hba.conf'), hbaConf(users));
      await primary.startFresh();
      log(`primary listening on 127.0.0.1:${primary.port}`);

      if (users.length > 0) await LocalCluster.#createUsers(primary, users);

      await Promise.all(replicas.map((replica) => cluster!.#startReplica(replica)));
      log(`cluster with ${replicas.length} replica(s) ready in ${Date.now() - started} ms`);
      return cluster;
    } catch (err) {
      if (cluster) await cluster.stop();
      else {
        ports.forEach(releasePort);
        await fsp.rm(baseDir, { recursive: true, force: true }).catch(() => {});
        for (const dir of extraDirs) await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
      }
      throw err;
    }
  }

  /**
   * Wait until every running, non-paused replica has replayed the primary's current WAL position
   * (timeout ms default 10000). Frozen replicas are skipped too, since they cannot make progress.
   */
  async waitForReplication(timeoutMs = 10_000): Promise<void> {
    if (!this.primary.running || this.primary.frozen) throw new Error('waitForReplication: the primary is not running');
    // The insert position (not the write position) covers commits that synchronous_commit=off has not flushed yet.
    const [row] = await this.primary.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const target = row?.lsn;
    if (!target) throw new Error('waitForReplication: could not read the primary WAL position');
    const pending = this.replicas.filter((r) => r.running && !r.frozen && !r.replayPaused);
    await Promise.all(
      pending.map(async (replica) => {
        let last = 'unknown';
        await waitUntil(
          async () => {
            const [state] = await replica.query<{ replayed: string | null; ok: boolean }>(REPLAYED_UP_TO_SQL, [target]);
            last = state?.replayed ?? 'none';
            return state?.ok === true;
          },
          timeoutMs,
          () => `${replica.name} has replayed WAL up to ${last}, not the primary's ${target},`,
        );
      }),
    );
  }

  /** Stop every server it started (thaw frozen ones first: SIGCONT), remove baseDir. Idempotent, never throws. */
  async stop(): Promise<void> {
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  /**
   * Synchronous best-effort variant of {@link stop} (immediate shutdown), for exit handlers.
   * Never throws.
   */
  stopSync(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const node of [...this.replicas, this.primary]) {
      try {
        node.stopSync();
      } catch {
        // Best effort: carry on with the remaining nodes.
      }
    }
    this.#release();
    for (const dir of [this.baseDir, ...this.#extraDirs]) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // Nothing more we can do at exit time.
      }
    }
  }

  async #stopAll(): Promise<void> {
    if (this.#stopped) return;
    // Immediate mode: the data is deleted next, so a clean checkpoint would be wasted work.
    await Promise.all(
      this.nodes.map(async (node) => {
        try {
          await node.stop('immediate');
        } catch (err) {
          this.#log(`${node.name}: pg_ctl stop failed, killing it: ${(err as Error).message}`);
          node.killSync();
        }
      }),
    );
    this.#stopped = true;
    this.#release();
    for (const dir of [this.baseDir, ...this.#extraDirs]) {
      await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch((err: Error) => {
        this.#log(`could not remove ${dir}: ${err.message}`);
      });
    }
    this.#log(`cluster in ${this.baseDir} stopped`);
  }

  #release(): void {
    for (const node of this.nodes) releasePort(node.port);
    liveClusters.delete(this);
  }

  async #startReplica(replica: LocalNode): Promise<void> {
    this.#log(`pg_basebackup ${replica.dataDir}`);
    await runPostgresTool(
      this.#binDir,
      'pg_basebackup',
      ['-h', this.primary.host, '-p', String(this.primary.port), '-U', this.superuser, '-D', replica.dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'],
      { cwd: this.baseDir },
    );
    await replica.startFresh();
    this.#log(`${replica.name} listening on 127.0.0.1:${replica.port}`);

    await waitUntil(
      async () => {
        const [row] = await replica.query<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering');
        return row?.recovering === true;
      },
      30_000,
      () => `${replica.name} did not report pg_is_in_recovery() = true`,
    );
    // cluster_name (set per node) is what the walreceiver reports as application_name.
    await waitUntil(
      async () => {
        const rows = await this.primary.query<{ state: string }>('SELECT state FROM pg_stat_replication WHERE application_name = $1', [replica.name]);
        return rows.some((r) => r.state === 'streaming');
      },
      30_000,
      async () => `${replica.name} is not streaming from the primary (see ${replica.logFile}):\n${await replica.logTail(10)}\n`,
    );
  }

  /** Unix socket paths must stay under 107 bytes; fall back to a short directory in /tmp if baseDir is too deep. */
  static async #makeSocketDir(baseDir: string, extraDirs: string[]): Promise<string> {
    const inside = path.join(baseDir, 'sock');
    if (inside.length <= MAX_SOCKET_DIR_LENGTH) {
      await fsp.mkdir(inside, { mode: 0o700 });
      return inside;
    }
    const outside = await fsp.mkdtemp('/tmp/pgs-');
    extraDirs.push(outside);
    return outside;
  }

  static async #createUsers(primary: LocalNode, users: readonly ClusterUser[]): Promise<void> {
    const client = new pg.Client({ host: primary.host, port: primary.port, user: 'postgres', database: 'postgres' });
    client.on('error', () => {});
    await client.connect();
    try {
      for (const user of users) {
        // password_encryption decides how the password is stored, which must match the hba method.
        await client.query(`SET password_encryption = ${pg.escapeLiteral(user.method)}`);
        await client.query(`CREATE ROLE ${pg.escapeIdentifier(user.name)} LOGIN SUPERUSER PASSWORD ${pg.escapeLiteral(user.password)}`);
      }
    } finally {
      await client.end().catch(() => {});
    }
  }
}
