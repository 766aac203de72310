/**
 * `npm run bench:nova`: the Nova periodic-task benchmark from the command line (the work is done by
 * runNovaBench in nova-bench.ts). Writes nova.md and nova.svg into a folder of the run's own
 * (bench/results/runs/nova-<time>/), or into bench/results with --publish; prints the summary, and exits
 * 1 when the run failed (errors, API or hinted reads on replicas, ...), 2 on bad arguments.
 */
import path from 'node:path';
import { stopAllClustersSync } from '../../src/cluster/local-cluster.js';
import { NOVA_CLIENT_MODES, type NovaClientMode } from '../../src/demo/nova-workload-options.js';
import { formatNovaSummary, packageRoot, runNovaBench, type NovaBenchOptions } from './nova-bench.js';

const QUICK = { seconds: 20, computeHosts: 8, apiSessions: 4, instancesPerHost: 20 };
const FULL = { seconds: 60, computeHosts: 32, apiSessions: 8, instancesPerHost: 40 };
const USAGE = `usage: node dist/bench/nova/run.js [options]     (npm run bench:nova -- [options])

  --mode M        how the workload's sessions talk to the database:
                    oslo        as oslo.db: every unit of work a transaction opened with a plain BEGIN
                                (reads BEGIN ... ROLLBACK through slave_connection, writes BEGIN ... COMMIT
                                through connection); the default
                    autocommit  one statement at a time
                    both        oslo, then autocommit, in one report
  --full          32 compute hosts, 8 API sessions, 60 s per phase (default: 8, 4, 20 s)
  --seconds N     length of each phase (two phases per mode: baseline and with pgsplit)
  --hosts N       compute hosts;  --api N  API sessions;  --instances N  seeded instances per host
  --out DIR       write nova.md and nova.svg to DIR
                  (default: bench/results/runs/nova-<time>/, a folder of this run's own)
  --publish       write them to bench/results/ instead, replacing the published report
  -h, --help      this text
`;

type NovaArgs = NovaBenchOptions & { help?: boolean };

/** `--mode` values: one mode, or `both` (also spelled `oslo,autocommit`). */
function parseModes(value: string | undefined): NovaClientMode[] {
  if (value === undefined) throw new Error(`--mode needs one of ${NOVA_CLIENT_MODES.join(', ')}, both`);
  const names = value === 'both' ? [...NOVA_CLIENT_MODES] : value.split(',').map((m) => m.trim());
  const modes: NovaClientMode[] = [];
  for (const name of names) {
    const mode = NOVA_CLIENT_MODES.find((m) => m === name);
    if (mode === undefined) throw new Error(`--mode ${value}: unknown mode ${JSON.stringify(name)}; use ${NOVA_CLIENT_MODES.join(', ')} or both`);
    if (!modes.includes(mode)) modes.push(mode);
  }
  return modes;
}

/** Parses the arguments; throws with a message for the user on anything it does not know. */
function parseNovaArgs(argv: readonly string[]): NovaArgs {
  const full = argv.includes('--full');
  const base = full ? FULL : QUICK;
  const opts: NovaArgs = { ...base, preset: full ? 'full' : 'quick', clientModes: ['oslo'] };
  let out: string | undefined;
  let publish = false;
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
      case '--mode':
        opts.clientModes = parseModes(argv[++i]);
        break;
      case '--publish':
        publish = true;
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
        out = path.resolve(dir);
        break;
      }
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  const custom = argv.some((a) => ['--seconds', '--hosts', '--api', '--instances'].includes(a));
  if (custom) opts.preset = `${opts.preset}, adjusted`;
  if (publish && out !== undefined) throw new Error('--publish and --out both say where to write; give one');
  const results = path.join(packageRoot(), 'bench', 'results');
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  opts.outDir = out ?? (publish ? results : path.join(results, 'runs', `nova-${stamp}`));
  return opts;
}

async function main(): Promise<number> {
  let opts: NovaArgs;
  try {
    opts = parseNovaArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench:nova: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
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
  const result = await runNovaBench({
    ...opts,
    command: ['npm run bench:nova', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  for (const report of result.reports) {
    process.stdout.write(`\n=== Nova periodic-task benchmark, client mode ${report.config.clientMode} ===\n`);
    for (const line of formatNovaSummary(report)) process.stdout.write(`${line}\n`);
    for (const note of report.notes) process.stdout.write(`note: ${note}\n`);
  }
  for (const failure of result.failures) process.stdout.write(`FAILED across modes: ${failure}\n`);
  if (result.files) process.stdout.write(`\nreport: ${result.files.markdown}\nchart:  ${result.files.svg}\n`);
  return result.ok ? 0 : 1;
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
