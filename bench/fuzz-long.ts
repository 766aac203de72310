/**
 * `npm run fuzz:long`: the protocol fuzzer of test/protocol-fuzzer.test.ts, for minutes instead of
 * seconds. Starts its own primary + streaming replica and two pgsplit proxies in this process (one in
 * development mode, one authenticating md5 and SCRAM users), keeps two well-behaved clients running
 * checked queries, runs the shared generators (test/fixtures/protocol-fuzz.ts) until the time is up,
 * and prints cases, crashes, hangs, other rule breaks, leaked sessions and peak RSS. Exit 0 when
 * nothing was found, 1 when something was, 2 on bad arguments.
 *
 *   npm run build && node dist/bench/fuzz-long.js --seconds 300
 *   options: --seed N, --concurrency N (default 32), --cases N (a count instead of a time),
 *            --only I,J (just these cases of the seed, with what pgsplit answered),
 *            --log-level LEVEL (pgsplit's log on stderr; default silent)
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { LocalCluster, stopAllClustersSync, stopClustersOnSignal } from '../src/cluster/local-cluster.js';
import { resolveConfig } from '../src/config/load-config.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { createLogger, silentLogger } from '../src/log/logger.js';
import {
  AUTH_PASSWORD, CLIENT_BACKENDS_SQL, FUZZ_LIMITS, MD5_USER, MiB, RssSampler, WellBehavedClient, authUsers, formatReport,
  prepareFuzzDatabase, reproduction, runFuzz, type FuzzReport,
} from '../test/fixtures/protocol-fuzz.js';

const USAGE = 'usage: node dist/bench/fuzz-long.js [--seconds N] [--seed N] [--concurrency N] [--cases N] [--only I,J] [--log-level LEVEL]';

interface Options {
  seconds: number;
  seed: number;
  concurrency: number;
  cases: number | undefined;
  only: number[] | undefined;
  logLevel: string;
  help: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    seconds: 300, seed: crypto.randomInt(0, 2 ** 31), concurrency: 32, cases: undefined, only: undefined, logLevel: 'silent', help: false,
  };
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs a whole number >= ${min}, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    switch (a) {
      case '--seconds': o.seconds = int(a, argv[++i], 1); break;
      case '--seed': o.seed = int(a, argv[++i], 0) >>> 0; break;
      case '--concurrency': o.concurrency = int(a, argv[++i], 1); break;
      case '--cases': o.cases = int(a, argv[++i], 1); break;
      case '--only': o.only = (argv[++i] ?? '').split(',').map((x) => int('--only', x.trim(), 0)); break;
      case '--log-level': o.logLevel = argv[++i] ?? 'info'; break;
      case '--help': case '-h': o.help = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return o;
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function waitFor<T>(read: () => Promise<T> | T, ok: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`fuzz:long: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (opts.help) {
    say(USAGE);
    return 0;
  }
  // The proxies run in this process and go with it; the servers are separate processes.
  stopClustersOnSignal('fuzz:long');

  // The proxy runs in this process: anything it throws outside a promise chain lands here. Counted as a
  // crash and reported, and the run goes on so that the count is complete.
  const crashes: string[] = [];
  process.on('uncaughtException', (e) => crashes.push(`uncaughtException: ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) => crashes.push(`unhandledRejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`));

  say(`fuzz:long: seed ${opts.seed}, ${opts.cases !== undefined ? `${opts.cases} cases` : opts.only ? `cases ${opts.only.join(',')}` : `${opts.seconds} s`}, ${opts.concurrency} connections at a time`);
  say('starting a primary and a streaming replica');
  const cluster = await LocalCluster.start({ replicas: 1 });
  const proxies: ProxyServer[] = [];
  const clients: pg.Client[] = [];
  try {
    await prepareFuzzDatabase(cluster.primary);
    await cluster.waitForReplication(15_000);
    const log = opts.logLevel === 'silent' ? silentLogger : createLogger(opts.logLevel);
    const base = { listen: '127.0.0.1:0', primary: cluster.primary.url(), replicas: cluster.replicas.map((r) => r.url()), limits: FUZZ_LIMITS };
    const main = new ProxyServer(resolveConfig(base), log);
    proxies.push(main);
    const auth = new ProxyServer(resolveConfig({ ...base, users: authUsers(), auth: { method: 'md5' } }), log);
    proxies.push(auth);
    const mainPort = (await main.listen()).port;
    const authPort = (await auth.listen()).port;
    say(`pgsplit (development mode) on 127.0.0.1:${mainPort}, pgsplit (md5/SCRAM users) on 127.0.0.1:${authPort}`);

    const connect = async (options?: string): Promise<pg.Client> => {
      const c = new pg.Client({ host: '127.0.0.1', port: mainPort, user: 'postgres', database: 'postgres', options });
      c.on('error', () => undefined);
      await c.connect();
      clients.push(c);
      return c;
    };
    const good = [
      new WellBehavedClient('untagged (primary)', await connect()).start(),
      new WellBehavedClient('tagged (replica)', await connect('-c pgsplit.route=replica')).start(),
    ];
    const rss = new RssSampler(200);
    const verbose = opts.only !== undefined;
    const report: FuzzReport = await runFuzz({
      seed: opts.seed,
      cases: opts.cases,
      durationMs: opts.cases === undefined && opts.only === undefined ? opts.seconds * 1000 : undefined,
      only: opts.only,
      concurrency: opts.concurrency,
      targets: { main: mainPort, auth: authPort },
      onViolation: (c, v) => say(`VIOLATION ${v.kind} in case ${c.index} (${c.stage}/${c.generator}): ${v.detail}\n  ${reproduction(opts.seed, c)}`),
      onCase: verbose ? (c, r) => say(`case ${c.index}: ${c.stage}/${c.generator}: ${r.outcome} in ${r.ms} ms; pgsplit sent: ${r.log.join(' ')}\n  ${reproduction(opts.seed, c)}`) : undefined,
      progressMs: 30_000,
      onProgress: (r) => say(`[${Math.round(r.ms / 1000)} s] ${r.cases} cases, ${Math.round(r.cases / Math.max(1, r.ms / 1000))}/s, violations ${r.violations.length}, ` +
        `crashes ${crashes.length}, sessions ${main.sessionCount}, RSS ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB (peak ${(rss.peak / MiB).toFixed(0)})`),
    });
    rss.stop();
    for (const g of good) await g.stop();

    // Afterwards: still listening, still serving, nothing left behind.
    const listening = proxies.every((p) => p.state === 'listening');
    let served = false;
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: authPort, user: MD5_USER, password: AUTH_PASSWORD, database: 'postgres' });
      c.on('error', () => undefined);
      await c.connect();
      served = (await c.query<{ n: number }>('SELECT 6 * 7 AS n')).rows[0]?.n === 42;
      await c.end();
    } catch (e) {
      say(`a new client after the run failed: ${(e as Error).message}`);
    }
    const sessions = await waitFor(() => main.sessionCount, (n) => n <= good.length, 10_000);
    const authSessions = await waitFor(() => auth.sessionCount, (n) => n === 0, 10_000);
    const backends = await waitFor(async () => (await cluster.primary.query<{ n: number }>(CLIENT_BACKENDS_SQL))[0]?.n ?? -1, (n) => n >= 0 && n <= 8, 15_000);

    say('');
    say('=== protocol fuzzing, long run ===');
    say(`seed ${opts.seed} (node dist/bench/fuzz-long.js --seed ${opts.seed} ... to repeat)`);
    for (const line of formatReport(report)) say(line);
    const hangs = report.violationCount.get('hang') ?? 0;
    const notReleased = report.violationCount.get('not-released') ?? 0;
    const others = report.violations.length - hangs - notReleased;
    const goodErrors = good.flatMap((g) => g.errors.map((e) => `${g.label}: ${e}`));
    say(`crashes: ${crashes.length}`);
    say(`hangs: ${hangs}`);
    say(`connections not released after the fuzzer closed: ${notReleased}`);
    say(`other rule breaks: ${others}`);
    say(`well-behaved clients: ${good.map((g) => `${g.label} ${g.iterations} queries`).join(', ')}; errors: ${goodErrors.length}`);
    say(`peak RSS: ${(rss.peak / MiB).toFixed(0)} MiB (${(rss.baseline / MiB).toFixed(0)} MiB at the start, +${(rss.growth / MiB).toFixed(0)} MiB)`);
    say(`after the run: proxies listening ${listening}, new client served ${served}, sessions ${sessions} (well-behaved ${good.length}), auth proxy sessions ${authSessions}, primary client backends ${backends}`);
    for (const c of crashes.slice(0, 5)) say(`CRASH ${c}`);
    for (const e of goodErrors.slice(0, 10)) say(`WELL-BEHAVED CLIENT ERROR ${e}`);
    const ok = crashes.length === 0 && report.violations.length === 0 && goodErrors.length === 0 && listening && served &&
      sessions === good.length && authSessions === 0 && backends >= 0 && backends <= 8;
    say(ok ? 'result: nothing found' : 'result: FOUND PROBLEMS (see above)');
    return ok ? 0 : 1;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    for (const p of proxies) await p.close().catch(() => undefined);
    await cluster.stop();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`fuzz:long: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    stopAllClustersSync();
    process.exitCode = 1;
  },
);
