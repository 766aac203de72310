/**
 * The peers pgsplit is measured against, started for one benchmark run in front of a LocalCluster:
 * PgBouncer in transaction pooling mode, and pgpool-II in streaming-replication mode with load balancing
 * (reads spread over the replicas). Each runs from a temporary directory on a free loopback port, as the
 * `postgres` user when we are root (both refuse or dislike running as root), and is stopped by `stop()`.
 * Both come from Debian's packages (`apt-get install pgbouncer pgpool2`); a missing binary is reported,
 * and the benchmark runs without that peer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { LocalCluster } from '../src/cluster/local-cluster.js';
import { claimFreePort, runningAsRoot, POSTGRES_OS_USER } from '../src/cluster/local-node.js';

/** A running peer proxy. */
export interface PeerProxy {
  name: 'pgbouncer' | 'pgpool';
  port: number;
  version: string;
  /** Why some loads cannot run through it (e.g. named prepared statements through transaction pooling). */
  unsupported: ReadonlySet<string>;
  /** The proxy's own process (pgpool-II's parent; its children are found from it). */
  pid: number;
  stop(): Promise<void>;
}

const BINARIES = { pgbouncer: '/usr/sbin/pgbouncer', pgpool: '/usr/sbin/pgpool' } as const;

async function ownedTempDir(prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  if (runningAsRoot()) {
    const { execFileSync } = await import('node:child_process');
    execFileSync('chown', [POSTGRES_OS_USER, dir]);
  }
  return dir;
}

async function versionOf(bin: string): Promise<string> {
  const { execFile } = await import('node:child_process');
  // pgbouncer prints its version on stdout, pgpool on stderr.
  return new Promise((resolve) => execFile(bin, ['--version'], (err, stdout, stderr) => resolve(err ? 'unknown' : `${stdout}${stderr}`.split('\n')[0]!.trim())));
}

/**
 * Spawn options that run a peer as the postgres OS user when we are root. The process is spawned as that
 * user directly (not through runuser), so its pid is the proxy's own: signals reach it and its CPU time
 * can be read from /proc.
 */
async function postgresIdentity(): Promise<{ uid?: number; gid?: number }> {
  if (!runningAsRoot()) return {};
  const { execFileSync } = await import('node:child_process');
  const id = (flag: string): number => Number(execFileSync('id', [flag, POSTGRES_OS_USER]).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Resolves once something accepts TCP connections on the port, or rejects after `ms`. */
async function waitForPort(port: number, ms: number, child: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with code ${child.exitCode}; see ${log}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`not listening on ${port} after ${ms} ms; see ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopper(child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT'); // both shut down on SIGINT (pgpool: fast shutdown)
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await fsp.rm(dir, { recursive: true, force: true });
  };
}

/**
 * PgBouncer, transaction pooling, pools of `poolSize` server connections to the primary, accepting up to
 * `maxClientConn` clients.
 */
export async function startPgBouncer(cluster: LocalCluster, poolSize: number, maxClientConn = 6000): Promise<PeerProxy | string> {
  if (!existsSync(BINARIES.pgbouncer)) return 'pgbouncer not installed (apt-get install pgbouncer)';
  const dir = await ownedTempDir('pgsplit-bench-pgbouncer-');
  const port = await claimFreePort();
  const ini = path.join(dir, 'pgbouncer.ini');
  const log = path.join(dir, 'pgbouncer.log');
  await fsp.writeFile(path.join(dir, 'userlist.txt'), '"postgres" ""\n');
  await fsp.writeFile(ini, [
    '[databases]',
    `postgres = host=127.0.0.1 port=${cluster.primary.port} dbname=postgres`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${path.join(dir, 'userlist.txt')}`,
    'pool_mode = transaction',
    `default_pool_size = ${poolSize}`,
    `max_client_conn = ${maxClientConn}`,
    `logfile = ${log}`,
    'log_connections = 0',
    'log_disconnections = 0',
    'ignore_startup_parameters = extra_float_digits,options',
    '',
  ].join('\n'));
  if (runningAsRoot()) {
    const { execFileSync } = await import('node:child_process');
    execFileSync('chown', ['-R', POSTGRES_OS_USER, dir]);
  }
  const child = spawn(BINARIES.pgbouncer, [ini], { stdio: 'ignore', ...await postgresIdentity() });
  await waitForPort(port, 10_000, child, log);
  return {
    name: 'pgbouncer',
    port,
    version: await versionOf(BINARIES.pgbouncer),
    // PgBouncer 1.18 in transaction mode cannot keep named prepared statements (1.21 added that).
    unsupported: new Set(['prepared']),
    pid: child.pid ?? 0,
    stop: stopper(child, dir),
  };
}

/**
 * pgpool-II in streaming-replication mode with load balancing over the primary and the replicas (the
 * primary takes a share of the reads, as in a default pgpool-II setup), `children` client slots.
 */
export async function startPgpool(cluster: LocalCluster, children: number): Promise<PeerProxy | string> {
  if (!existsSync(BINARIES.pgpool)) return 'pgpool not installed (apt-get install pgpool2)';
  const dir = await ownedTempDir('pgsplit-bench-pgpool-');
  const port = await claimFreePort();
  const pcpPort = await claimFreePort();
  const conf = path.join(dir, 'pgpool.conf');
  const log = path.join(dir, 'pgpool.log');
  const backends = [cluster.primary, ...cluster.replicas].flatMap((n, i) => [
    `backend_hostname${i} = '127.0.0.1'`,
    `backend_port${i} = ${n.port}`,
    `backend_weight${i} = 1`,
    `backend_data_directory${i} = '${n.dataDir}'`,
    `backend_flag${i} = '${i === 0 ? 'ALWAYS_PRIMARY' : 'ALLOW_TO_FAILOVER'}'`,
  ]);
  await fsp.writeFile(conf, [
    "backend_clustering_mode = 'streaming_replication'",
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `pcp_port = ${pcpPort}`,
    `unix_socket_directories = '${dir}'`,
    `pcp_socket_dir = '${dir}'`,
    `pid_file_name = '${path.join(dir, 'pgpool.pid')}'`,
    `logdir = '${dir}'`,
    ...backends,
    'load_balance_mode = on',
    'statement_level_load_balance = off',
    `num_init_children = ${children}`,
    'max_pool = 1',
    'connection_cache = on',
    'sr_check_period = 0',
    'health_check_period = 0',
    'failover_on_backend_error = off',
    'enable_pool_hba = off',
    "pool_passwd = ''",
    "log_destination = 'stderr'",
    '',
  ].join('\n'));
  await fsp.writeFile(path.join(dir, 'pcp.conf'), '');
  if (runningAsRoot()) {
    const { execFileSync } = await import('node:child_process');
    execFileSync('chown', ['-R', POSTGRES_OS_USER, dir]);
  }
  const out = await fsp.open(log, 'w');
  const child = spawn(BINARIES.pgpool, ['-n', '-f', conf, '-F', path.join(dir, 'pcp.conf')], { stdio: ['ignore', out.fd, out.fd], ...await postgresIdentity() });
  child.once('exit', () => void out.close());
  await waitForPort(port, 15_000, child, log);
  return {
    name: 'pgpool',
    port,
    version: await versionOf(BINARIES.pgpool),
    unsupported: new Set(),
    pid: child.pid ?? 0,
    stop: stopper(child, dir),
  };
}
