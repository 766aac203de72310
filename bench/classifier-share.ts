/**
 * How much of the proxy's CPU the statement classifier takes under load: pgsplit runs under V8's CPU
 * profiler while pgbench drives it, and the profile's self time is split by source folder (router =
 * lexer, classifier, hints, cache; session; codec; ...) and by function.
 *
 * The workloads are the worst case for the classifier's cache: `-M simple` sends every statement as text
 * with its literals inlined, so with pgbench's random account ids nearly every text is new and is lexed
 * and classified from scratch.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/classifier-share.js [--seconds N]
 */
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { claimFreePort } from '../src/cluster/local-node.js';

const execFileAsync = promisify(execFile);
const secondsArg = process.argv.indexOf('--seconds');
const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 15;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Folder of a profiled function under dist/src (router, session, codec, ...), or what else it is. */
function bucket(url: string, fn: string): string {
  const m = /\/dist\/src\/([^/]+)\//.exec(url);
  if (m) return m[1]!;
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(idle)' || fn === '(program)') return fn;
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('node_modules')) return 'packages';
  return url === '' ? 'native (sockets, buffers)' : 'other';
}

function summarise(profile: Profile): { byBucket: Map<string, number>; byFunction: Map<string, number>; busy: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byBucket = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!node) return;
    const { functionName, url } = node.callFrame;
    const b = bucket(url, functionName);
    if (b === '(idle)') return;
    busy += dt;
    byBucket.set(b, (byBucket.get(b) ?? 0) + dt);
    if (b === 'router') {
      const key = `${functionName || '(anonymous)'} (${path.basename(url)})`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + dt);
    }
  });
  return { byBucket, byFunction, busy };
}

async function main(): Promise<void> {
  const bin = (await execFileAsync('pg_config', ['--bindir'])).stdout.trim();
  const cluster = await LocalCluster.start({ replicas: 1, settings: { max_connections: '200' } });
  const profDir = mkdtempSync(path.join(os.tmpdir(), 'pgsplit-prof-'));
  const here = path.dirname(fileURLToPath(import.meta.url));
  try {
    await execFileAsync(path.join(bin, 'pgbench'), ['-i', '-q', '-s', '10', '-h', '127.0.0.1', '-p', String(cluster.primary.port), '-U', 'postgres', 'postgres']);
    await cluster.waitForReplication(60_000);
    for (const [label, args, tagged] of [
      ['pgbench -S -M simple, tagged (reads to the replica)', ['-S'], true],
      ['pgbench TPC-B -M simple, untagged', [], false],
    ] as const) {
      const port = await claimFreePort();
      const proxy = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, path.join(here, '../../bin/pgsplit.js'),
        '--listen', `127.0.0.1:${port}`, '--primary', cluster.primary.url(), '--replica', cluster.replicas[0]!.url(), '--log-level', 'warn'],
      { stdio: ['ignore', 'inherit', 'inherit'] });
      await new Promise((r) => setTimeout(r, 800));
      const env = tagged ? { ...process.env, PGOPTIONS: '-c pgsplit.route=replica' } : process.env;
      const { stdout } = await execFileAsync(path.join(bin, 'pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres',
        ...args, '-M', 'simple', '-c', '8', '-j', '2', '-T', String(seconds), 'postgres'], { env, maxBuffer: 1 << 24 });
      const tps = /tps = ([\d.]+) \(without/.exec(stdout)?.[1] ?? '?';
      const exited = new Promise((r) => proxy.once('exit', r));
      proxy.kill('SIGTERM');
      await exited;
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error('pgsplit wrote no CPU profile');
      const profile = JSON.parse(readFileSync(path.join(profDir, file), 'utf8')) as Profile;
      rmSync(path.join(profDir, file));
      const { byBucket, byFunction, busy } = summarise(profile);
      const pct = (v: number): string => `${((v / busy) * 100).toFixed(1).padStart(5)} %`;
      process.stdout.write(`\n${label}: ${tps} tps through pgsplit; pgsplit busy ${(busy / 1e6).toFixed(1)} s CPU in ${seconds} s\n`);
      for (const [b, v] of [...byBucket].sort((x, y) => y[1] - x[1])) process.stdout.write(`  ${pct(v)}  ${b}\n`);
      process.stdout.write('  router, by function:\n');
      for (const [f, v] of [...byFunction].sort((x, y) => y[1] - x[1]).slice(0, 8)) process.stdout.write(`    ${pct(v)}  ${f}\n`);
    }
  } finally {
    rmSync(profDir, { recursive: true, force: true });
    await cluster.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
