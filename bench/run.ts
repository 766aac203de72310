/**
 * Side-by-side throughput of pgbench against the primary directly and through pgsplit (untagged and
 * tagged), on one local cluster, interleaved (A B C A B C) and repeated so that a noisy machine shifts
 * all targets alike. Reports medians and ratios to the direct run. The peers (PgBouncer, pgpool-II), the
 * latency percentiles and the Nova workload join this file with the benchmark issue.
 *
 *   npm run bench            quick mode: 3 rounds of 3 s
 *   npm run bench -- --full  5 rounds of 10 s, more client counts
 */
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { claimFreePort } from '../src/cluster/local-node.js';

const execFileAsync = promisify(execFile);
const full = process.argv.includes('--full');
const rounds = full ? 5 : 3;
const seconds = full ? 10 : 3;
const clientCounts = full ? [1, 16, 64] : [1, 16];

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
  const stop = async () => {
    proxy.kill('SIGTERM');
    await cluster.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    await new Promise((r) => setTimeout(r, 800));
    const env = { ...process.env };
    await execFileAsync(path.join(bin, 'pgbench'), ['-i', '-q', '-s', '10', '-h', '127.0.0.1', '-p', String(cluster.primary.port), '-U', 'postgres', 'postgres'], { env });
    await cluster.waitForReplication(60_000);
    const targets = [
      { name: 'direct', port: cluster.primary.port, env },
      { name: 'pgsplit-untagged', port, env },
      { name: 'pgsplit-tagged', port, env: { ...env, PGOPTIONS: '-c pgsplit.route=replica' } },
    ];
    const rows: string[] = [];
    for (const load of ['-S', '-N']) {
      for (const mode of ['simple', 'extended', 'prepared']) {
        for (const c of clientCounts) {
          const tps = new Map<string, number[]>(targets.map((t) => [t.name, []]));
          for (let r = 0; r < rounds; r++) {
            for (const t of targets) {
              const v = await pgbench(bin, t.port, [load, '-M', mode, '-c', String(c), '-j', String(Math.min(c, 2)), '-T', String(seconds)], t.env);
              tps.get(t.name)?.push(v);
            }
          }
          const d = median(tps.get('direct') ?? []);
          const cells = targets.map((t) => {
            const m = median(tps.get(t.name) ?? []);
            return `${t.name}=${m.toFixed(0)} (${(m / d).toFixed(2)})`;
          });
          const line = `pgbench ${load} -M ${mode} -c ${c}: ${cells.join('  ')}`;
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
