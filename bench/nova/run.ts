/**
 * `npm run bench:nova`: the Nova periodic-task benchmark from the command line (the work is done by
 * runNovaBench in nova-bench.ts). Writes bench/results/nova.md and nova.svg, prints the summary, and
 * exits 1 when the run failed (errors, API or hinted reads on replicas, ...), 2 on bad arguments.
 *
 *   npm run bench:nova                      quick: 8 compute hosts, 4 API sessions, 20 s per phase
 *   npm run bench:nova -- --full            32 compute hosts, 8 API sessions, 60 s per phase
 *   npm run bench:nova -- --seconds 10      another phase length (also with --full)
 *   options: --hosts N, --api N, --instances N (per host), --out DIR (default bench/results)
 */
import path from 'node:path';
import { stopAllClustersSync } from '../../src/cluster/local-cluster.js';
import { formatNovaSummary, packageRoot, runNovaBench, type NovaBenchOptions } from './nova-bench.js';

const QUICK = { seconds: 20, computeHosts: 8, apiSessions: 4, instancesPerHost: 20 };
const FULL = { seconds: 60, computeHosts: 32, apiSessions: 8, instancesPerHost: 40 };
const USAGE = 'usage: node dist/bench/nova/run.js [--full] [--seconds N] [--hosts N] [--api N] [--instances N] [--out DIR]';

/** Parses the arguments; throws with a message for the user on anything it does not know. */
function parseNovaArgs(argv: readonly string[]): NovaBenchOptions & { help?: boolean } {
  const full = argv.includes('--full');
  const base = full ? FULL : QUICK;
  const opts: NovaBenchOptions & { help?: boolean } = {
    ...base,
    mode: full ? 'full' : 'quick',
    outDir: path.join(packageRoot(), 'bench', 'results'),
  };
  const number = (flag: string, value: string | undefined, integer: boolean): number => {
    const n = Number(value);
    if (value === undefined || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new Error(`${flag} needs a positive ${integer ? 'integer' : 'number'}, got ${value ?? 'nothing'}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    switch (arg) {
      case '--full':
        break;
      case '--help':
      case '-h':
        opts.help = true;
        break;
      case '--seconds':
        opts.seconds = number(arg, argv[++i], false);
        break;
      case '--hosts':
        opts.computeHosts = number(arg, argv[++i], true);
        break;
      case '--api':
        opts.apiSessions = number(arg, argv[++i], true);
        break;
      case '--instances':
        opts.instancesPerHost = number(arg, argv[++i], true);
        break;
      case '--out': {
        const dir = argv[++i];
        if (!dir) throw new Error('--out needs a directory');
        opts.outDir = path.resolve(dir);
        break;
      }
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  const custom = argv.some((a) => ['--seconds', '--hosts', '--api', '--instances'].includes(a));
  if (custom) opts.mode = `${opts.mode}, adjusted`;
  return opts;
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof parseNovaArgs>;
  try {
    opts = parseNovaArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench:nova: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // Ctrl-C: the servers run as separate processes, so stop them before leaving.
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`bench:nova: ${signal}: stopping the servers\n`);
    stopAllClustersSync();
    process.exit(signal === 'SIGTERM' ? 143 : 130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const report = await runNovaBench({
    ...opts,
    command: ['npm run bench:nova', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write('\n=== Nova periodic-task benchmark ===\n');
  for (const line of formatNovaSummary(report)) process.stdout.write(`${line}\n`);
  for (const note of report.notes) process.stdout.write(`note: ${note}\n`);
  if (report.files) process.stdout.write(`report: ${report.files.markdown}\nchart:  ${report.files.svg}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:nova: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
