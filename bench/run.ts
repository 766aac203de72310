/**
 * `npm run bench`: the side-by-side benchmark (see bench-suite.ts). `--help` prints the usage
 * (BENCH_USAGE). Each run writes its report to bench/results/runs/<time>/ (not committed); only
 * `--publish` replaces the committed summary in bench/results/. SIGINT/SIGTERM stop every server and
 * child process the run started and remove their folders.
 */
import { BENCH_USAGE, parseBenchArgs, runBench, type BenchArgs } from './bench-suite.js';
import { openRunScope, stoppedBySignal } from './run-scope.js';

let args: BenchArgs;
try {
  args = parseBenchArgs(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`bench: ${(e as Error).message}\n${BENCH_USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${BENCH_USAGE}\n`);
  process.exit(0);
}
const opts = args.options;
const removeRunTmp = openRunScope('bench');
process.stdout.write(`bench: ${opts.mode} mode, report in ${opts.outDir}\n`);
runBench(opts)
  .then((r) => {
    process.stdout.write(`\nreport written to ${opts.outDir} (${r.cells.length} cells); medians of ${r.settings.rounds} interleaved rounds of ${r.settings.seconds} s\n`);
    removeRunTmp();
    process.exit(0);
  })
  .catch((e: unknown) => {
    // After SIGINT/SIGTERM the signal handler finishes its cleanup and exits 130/143.
    if (stoppedBySignal()) return;
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    removeRunTmp();
    process.exit(1);
  });

