/**
 * Side-by-side throughput of pgbench against the primary directly, through PgBouncer (transaction
 * pooling), pgpool-II (streaming replication, load balancing) and pgsplit (untagged and tagged), on one
 * local cluster with two replicas, interleaved (A B C A B C) and repeated so that a noisy machine shifts
 * all targets alike. Reports medians and ratios to the direct run, and the two comparisons the project
 * promises (pgsplit untagged vs PgBouncer, pgsplit tagged vs pgpool-II). A peer that is not installed
 * (apt-get install pgbouncer pgpool2) is left out and said so; a load a peer cannot run (named prepared
 * statements through PgBouncer 1.18's transaction pooling) shows n/a.
 *
 *   npm run bench            quick mode: 3 rounds of 3 s
 *   npm run bench -- --full  5 rounds of 10 s, more client counts
 *   npm run bench -- --only -S:simple:16   one cell of the matrix (parts may be *)
 */
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { startPgBouncer, startPgpool, type PeerProxy } from './peer-proxies.js';
import { claimFreePort } from '../src/cluster/local-node.js';

const execFileAsync = promisify(execFile);
const full = process.argv.includes('--full');
const rounds = full ? 5 : 3;
const seconds = full ? 10 : 3;
/** `--only LOAD:MODE:CLIENTS` (e.g. `-S:simple:16`, parts may be `*`) narrows the matrix. */
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? (process.argv[onlyArg + 1] ?? '').split(':') : [];
const wanted = (i: number, v: string): boolean => only[i] === undefined || only[i] === '*' || only[i] === v;
const clientCounts = (full ? [1, 16, 64] : [1, 16]).filter((c) => wanted(2, String(c)));

async function pgbench(bin: string, port: number, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { stdout } = await execFileAsync(path.join(bin, 'pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], { env, maxBuffer: 1 << 24 });
  const failed = /number of failed transactions: (\d+)/.exec(stdout);
  if (failed && failed[1] !== '0') throw new Error(`pgbench reported failed transactions:\n${stdout}`);
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
  if (!m) throw new Error(`no tps in pgbench output:\n${stdout}`);
  return Number(m[1]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main(): Promise<void> {
  const bin = (await execFileAsync('pg_config', ['--bindir'])).stdout.trim();
  const cluster = await LocalCluster.start({ replicas: 2, settings: { max_connections: '300' } });
  const port = await claimFreePort();
  const here = path.dirname(fileURLToPath(import.meta.url));
  const proxy = spawn(process.execPath, [path.join(here, '../../bin/pgsplit.js'), '--listen', `127.0.0.1:${port}`,
    '--primary', cluster.primary.url(), ...cluster.replicas.flatMap((r) => ['--replica', r.url()]), '--log-level', 'warn'],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  let stopPeers = async (): Promise<void> => {};
  const stop = async () => {
    proxy.kill('SIGTERM');
    await stopPeers();
    await cluster.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    await new Promise((r) => setTimeout(r, 800));
    const env = { ...process.env };
    await execFileAsync(path.join(bin, 'pgbench'), ['-i', '-q', '-s', '10', '-h', '127.0.0.1', '-p', String(cluster.primary.port), '-U', 'postgres', 'postgres'], { env });
    await cluster.waitForReplication(60_000);
    const peers: PeerProxy[] = [];
    for (const start of [startPgBouncer, startPgpool]) {
      const p = await start(cluster, Math.max(...clientCounts) + 8);
      if (typeof p === 'string') process.stdout.write(`peer left out: ${p}\n`);
      else {
        peers.push(p);
        process.stdout.write(`peer: ${p.version} on port ${p.port}\n`);
      }
    }
    stopPeers = async () => {
      for (const p of peers) await p.stop();
    };
    const targets: Array<{ name: string; port: number; env: NodeJS.ProcessEnv; unsupported?: ReadonlySet<string> }> = [
      { name: 'direct', port: cluster.primary.port, env },
      ...peers.map((p) => ({ name: p.name, port: p.port, env, unsupported: p.unsupported })),
      { name: 'pgsplit-untagged', port, env },
      { name: 'pgsplit-tagged', port, env: { ...env, PGOPTIONS: '-c pgsplit.route=replica' } },
    ];
    const rows: string[] = [];
    for (const load of ['-S', '-N'].filter((l) => wanted(0, l))) {
      for (const mode of ['simple', 'extended', 'prepared'].filter((m) => wanted(1, m))) {
        for (const c of clientCounts) {
          const tps = new Map<string, number[]>(targets.map((t) => [t.name, []]));
          for (let r = 0; r < rounds; r++) {
            for (const t of targets) {
              if (t.unsupported?.has(mode)) continue;
              const v = await pgbench(bin, t.port, [load, '-M', mode, '-c', String(c), '-j', String(Math.min(c, 2)), '-T', String(seconds)], t.env);
              tps.get(t.name)?.push(v);
            }
          }
          const d = median(tps.get('direct') ?? []);
          const med = (name: string): number | undefined => {
            const xs = tps.get(name) ?? [];
            return xs.length > 0 ? median(xs) : undefined;
          };
          const cells = targets.map((t) => {
            const m = med(t.name);
            return m === undefined ? `${t.name}=n/a` : `${t.name}=${m.toFixed(0)} (${(m / d).toFixed(2)})`;
          });
          const vs = (a: string, b: string): string => {
            const x = med(a);
            const y = med(b);
            return x !== undefined && y !== undefined ? `  ${a}/${b}=${(x / y).toFixed(2)}` : '';
          };
          const line = `pgbench ${load} -M ${mode} -c ${c}: ${cells.join('  ')}${vs('pgsplit-untagged', 'pgbouncer')}${vs('pgsplit-tagged', 'pgpool')}`;
          rows.push(line);
          process.stdout.write(`${line}\n`);
        }
      }
    }
    process.stdout.write(`\nmedians of ${rounds} interleaved rounds of ${seconds} s; ratio to direct in parentheses\n`);
  } finally {
    await stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
