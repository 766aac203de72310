/**
 * `npm run bench`: the side-by-side benchmark (see bench-suite.ts). `--help` prints the usage
 * (BENCH_USAGE). Each run writes its report to bench/results/runs/<time>/ (not committed); only
 * `--publish` replaces the committed summary in bench/results/. SIGINT/SIGTERM stop every server and
 * child process the run started and remove their folders.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BENCH_USAGE, parseBenchArgs, runBench, stopBenchProcesses, type BenchArgs } from './bench-suite.js';
import { stopClustersOnSignal } from '../src/cluster/local-cluster.js';

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
// Every temporary folder of this run (clusters, peer proxies, pgbench logs) goes under one folder of its
// own, so that one removal after a signal leaves nothing behind, whichever step was running. Readable by
// the postgres user, who runs the servers and peers when we are root.
const runTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-bench-run-'));
fs.chmodSync(runTmp, 0o755);
process.env.TMPDIR = runTmp;
const removeRunTmp = (): void => fs.rmSync(runTmp, { recursive: true, force: true });
stopClustersOnSignal('bench', async () => {
  await stopBenchProcesses();
  // A peer or child still starting when the signal came is not tracked yet: stop whatever this
  // process started that still runs (the servers, started through pg_ctl, are not children).
  await stopDescendants();
  removeRunTmp();
});
process.stdout.write(`bench: ${opts.mode} mode, report in ${opts.outDir}\n`);
runBench(opts)
  .then((r) => {
    process.stdout.write(`\nreport written to ${opts.outDir} (${r.cells.length} cells); medians of ${r.settings.rounds} interleaved rounds of ${r.settings.seconds} s\n`);
    removeRunTmp();
    process.exit(0);
  })
  .catch((e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    removeRunTmp();
    process.exit(1);
  });

/** This process's descendants, from /proc (children before grandchildren). */
function descendants(): number[] {
  const children = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const ppid = Number(fields[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [process.pid];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** SIGTERM to every descendant, SIGKILL to those still there after 5 s. */
async function stopDescendants(): Promise<void> {
  const kill = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  const pids = descendants();
  for (const pid of pids) kill(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (descendants().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of descendants()) kill(pid, 'SIGKILL');
}
