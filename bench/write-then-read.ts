/**
 * `npm run bench:write-then-read`: the write-then-read loop (direct, through the bare Node relay,
 * untagged and tagged through pgsplit) and the lag estimate against a heartbeat; see
 * write-then-read-run.ts for what each phase measures.
 *
 * Results (report.md, results.json) go to bench/results/runs/write-then-read-<time>/ (never replacing
 * committed results). Keep runs short on a shared machine: the defaults take about a minute.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopAllClustersSync } from '../src/cluster/local-cluster.js';
import { runWriteThenRead, writeThenReadMarkdown, type WriteThenReadOptions } from './write-then-read-run.js';

interface Args extends WriteThenReadOptions {
  out: string | undefined;
}

const USAGE = `usage: node dist/bench/write-then-read.js [options]
  --rounds N        interleaved rounds of the loop: direct, relay, untagged, tagged, replica-direct (default 5)
  --iterations N    INSERT-then-SELECT pairs per loop (default 300)
  --lag-seconds N   length of the lag-estimate phase (default 10)
  --heartbeat-ms N  heartbeat period on the primary during that phase (default 1: steady writes)
  --monitor K=V     a monitor.* setting for pgsplit (repeatable), e.g. --monitor lag_interval=10ms
  --out DIR         where report.md and results.json go (default bench/results/runs/write-then-read-<time>/)
`;

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { rounds: 5, iterations: 300, lagSeconds: 10, heartbeatMs: 1, out: undefined, monitor: {} };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === '--rounds') a.rounds = num(f, argv[++i]);
    else if (f === '--iterations') a.iterations = num(f, argv[++i]);
    else if (f === '--lag-seconds') a.lagSeconds = num(f, argv[++i]);
    else if (f === '--heartbeat-ms') a.heartbeatMs = num(f, argv[++i]);
    else if (f === '--out') a.out = argv[++i];
    else if (f === '--monitor') {
      const kv = argv[++i] ?? '';
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--monitor needs KEY=VALUE, got ${kv}`);
      a.monitor[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (f === '-h' || f === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${f}\n${USAGE}`);
  }
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = args.out ?? path.join(root, 'bench', 'results', 'runs', `write-then-read-${stamp}`);
  const { out: _out, ...opts } = args;
  const result = await runWriteThenRead(opts, (m) => void process.stderr.write(`${m}\n`));
  const md = writeThenReadMarkdown(result, `node dist/bench/write-then-read.js ${process.argv.slice(2).join(' ')}`);
  await fsp.mkdir(outDir, { recursive: true });
  await fsp.writeFile(path.join(outDir, 'report.md'), md);
  await fsp.writeFile(path.join(outDir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${md}\nwritten to ${outDir}\n`);
}

process.on('SIGINT', () => {
  stopAllClustersSync();
  process.exit(130);
});
main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  stopAllClustersSync();
  process.exit(1);
});
