/**
 * `npm run bench`: the side-by-side benchmark (see bench-suite.ts), report in bench/results/.
 *
 *   npm run bench                    quick mode: 3 rounds of 3 s, 1 and 16 clients, idle 1,000 and 5,000, slow read 1 GiB
 *   npm run bench -- --full          5 rounds of 10 s, 1/16/64 clients, idle 1,000 and 5,000, slow read 3 GiB
 *   npm run bench -- --smoke         one 1 s round of one cell and small resource runs: proves the harness works
 *   npm run bench -- --only -S:simple:16   one cell of the matrix (parts may be *); implies --throughput-only
 *   --idle 1000,5000                 idle-client counts for the memory measurement
 *   --out DIR                        write the report elsewhere
 */
import { runBench, type BenchMode } from './bench-suite.js';

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const mode: BenchMode = argv.includes('--full') ? 'full' : argv.includes('--smoke') ? 'smoke' : 'quick';
const only = flag('--only')?.split(':');
const idle = flag('--idle')?.split(',').map(Number);
runBench({ mode, only, outDir: flag('--out'), idleCounts: idle, throughputOnly: only !== undefined || argv.includes('--throughput-only') })
  .then((r) => {
    process.stdout.write(`\nreport written (${r.cells.length} cells); medians of ${r.settings.rounds} interleaved rounds of ${r.settings.seconds} s\n`);
  })
  .catch((e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
