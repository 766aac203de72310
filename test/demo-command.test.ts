/**
 * `pgsplit demo` end to end, as a user runs it: the real binary in a child process, a real cluster,
 * the Nova-like workload through the proxy. Checks the report (traffic reached the primary and a
 * replica, the routing proof, the psql hint) and that nothing of the cluster is left behind, both after
 * a --duration run and after SIGTERM.
 *
 * Needs dist/ (npm test builds it first: tsc -p tsconfig.json && tap).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import t from 'tap';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = path.join(root, 'bin', 'pgsplit.js');

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts `pgsplit demo ARGS`. `onOutput` sees stdout as it grows. The child is killed (SIGTERM, then
 * SIGKILL) if it outlives `timeoutMs`, so a hung demo fails the test instead of hanging it.
 */
function startDemo(args: string[], opts: { timeoutMs: number; onOutput?: (stdout: string, child: ReturnType<typeof spawn>) => void }): Promise<DemoRun> {
  const child = spawn(process.execPath, [bin, 'demo', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
    opts.onOutput?.(stdout, child);
  });
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const term = setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs);
  const kill = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs + 30_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Live (non-zombie) processes whose command line mentions `dir`: a postmaster runs as `postgres -D DIR/...`. */
function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (!cmdline.includes(dir)) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== 'Z' && state !== 'X') found.push(`${entry}: ${cmdline}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** The routed-statements lines of the report: node name -> routed statements. */
function routedByNode(stdout: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of stdout.matchAll(/^ {2}(primary|replica\d+) +(\d+) statements$/gm)) out.set(m[1] as string, Number(m[2]));
  return out;
}

function dataDirOf(stdout: string): string | undefined {
  return /^starting a primary and \d+ replicas? in (\S+)$/m.exec(stdout)?.[1];
}

t.test('demo --duration 8 routes Nova traffic to the primary and replicas, then removes everything', async (t) => {
  t.setTimeout(120_000);
  const started = Date.now();
  const run = await startDemo(['--duration', '8', '--listen', '127.0.0.1:0'], { timeoutMs: 90_000 });
  const seconds = (Date.now() - started) / 1000;
  t.comment(`demo took ${seconds.toFixed(1)} s`);
  const diag = { stdout: run.stdout, stderr: run.stderr.slice(0, 4000) };
  t.equal(run.code, 0, 'exit code 0', diag);

  const dir = dataDirOf(run.stdout);
  t.ok(dir, 'the output names the cluster directory', diag);

  const listening = /^pgsplit listening on 127\.0\.0\.1:(\d+)$/m.exec(run.stdout);
  t.ok(listening, 'says where pgsplit listens', diag);
  const port = Number(listening?.[1]);
  t.ok(port > 0, 'port 0 was resolved to a real port');
  t.match(run.stdout, `  psql "host=127.0.0.1 port=${port} user=postgres dbname=postgres"`, 'psql hint');
  t.match(run.stdout, `  PGOPTIONS='-c pgsplit.route=replica' psql "host=127.0.0.1 port=${port} user=postgres dbname=postgres"`, 'tagged psql hint');

  const routed = routedByNode(run.stdout);
  t.ok((routed.get('primary') ?? 0) > 0, 'units were routed to the primary', { routed: Object.fromEntries(routed) });
  const replicaUnits = [...routed].filter(([name]) => name.startsWith('replica')).map(([, n]) => n);
  t.equal(replicaUnits.length, 2, 'the report lists both replicas', diag);
  t.ok(replicaUnits.some((n) => n > 0), 'units were routed to at least one replica', { routed: Object.fromEntries(routed) });
  t.match(run.stdout, /^ {2}tagged-read +[1-9]\d* {2}a read-only statement of a tagged session: a replica$/m, 'routed by reason lists tagged reads, with what the reason means');
  const report = run.stdout.slice(run.stdout.indexOf('=== pgsplit demo report'));
  t.match(report, /^A routed statement is what pgsplit sends to one server in one go: a query string/m, 'the report says what a routed statement is');
  t.notMatch(report, /\bunits?\b/, 'and never says "units"');
  const reasonLines = report.slice(report.indexOf('routed statements, by reason'), report.indexOf('workload (')).split('\n').slice(1).filter((l) => l.trim() !== '');
  t.ok(reasonLines.length > 0 && reasonLines.every((l) => /^ {2}[a-z0-9-]+ +\d+ {2}\S.*$/.test(l)), 'every reason is explained on its own line', { reasonLines });
  t.match(run.stdout, `  psql "host=127.0.0.1 port=${port} user=postgres dbname=pgsplit"`, 'says where the admin console is');
  t.match(run.stdout, /^ {2}curl http:\/\/127\.0\.0\.1:\d+\/metrics$/m, 'and the metrics URL');

  t.match(run.stdout, /tagged session +SELECT pg_is_in_recovery\(\) -> true .* OK$/m, 'a tagged session reads from a replica');
  t.match(run.stdout, /untagged session +SELECT pg_is_in_recovery\(\) -> false .* OK$/m, 'an untagged session reads from the primary');
  t.match(run.stdout, /tagged nova-compute sessions \(\d+ hosts\): [1-9]\d* reads for replicas, [1-9]\d* hinted reads for the primary, [1-9]\d* writes, 0 errors/, 'compute counts');
  t.match(run.stdout, /untagged nova-api sessions \(\d+\): [1-9]\d* requests, .* 0 errors, 0 read-your-writes misses/, 'API counts');

  if (dir) {
    t.notOk(fs.existsSync(dir), `${dir} is removed`);
    t.same(processesUsing(dir), [], 'no server process of the demo is left');
  }
});

t.test('SIGTERM stops a demo that runs until interrupted, with a report and without leftovers', async (t) => {
  t.setTimeout(120_000);
  let signalled = false;
  let live: Promise<{ syncCommit: string; consoleNodes: number; metrics: string }> | undefined;
  const run = await startDemo(['--listen', '127.0.0.1:0', '--replicas', '1'], {
    timeoutMs: 90_000,
    onOutput: (stdout, child) => {
      if (signalled || !/^running the Nova-like workload until Ctrl-C/m.test(stdout)) return;
      signalled = true;
      // While it runs: the primary's setting, the admin console and the metrics URL the demo printed.
      const port = Number(/^pgsplit listening on 127\.0\.0\.1:(\d+)$/m.exec(stdout)?.[1]);
      const metricsUrl = /^ {2}curl (http:\S+)$/m.exec(stdout)?.[1] ?? '';
      live = (async () => {
        const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
        await c.connect();
        const syncCommit = String((await c.query('SHOW synchronous_commit')).rows[0]?.synchronous_commit);
        await c.end();
        const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'pgsplit' });
        await admin.connect();
        const consoleNodes = (await admin.query('SHOW NODES')).rowCount ?? 0;
        await admin.end();
        const metrics = await (await fetch(metricsUrl)).text();
        return { syncCommit, consoleNodes, metrics };
      })().finally(() => setTimeout(() => child.kill('SIGTERM'), 500));
    },
  });
  const seen = await live;
  t.equal(seen?.syncCommit, 'on', 'the demo primary runs with synchronous_commit = on');
  t.equal(seen?.consoleNodes, 2, 'the admin console the demo names answers SHOW NODES (primary and one replica)');
  t.match(seen?.metrics, /^pgsplit_statements_routed_total\{/m, 'the metrics URL the demo names serves the metrics');
  const diag = { stdout: run.stdout, stderr: run.stderr.slice(0, 4000) };
  t.ok(signalled, 'the workload started', diag);
  t.equal(run.code, 0, 'exit code 0 after SIGTERM', diag);
  t.match(run.stdout, /^SIGTERM received: stopping/m, 'says it is stopping');
  t.match(run.stdout, /^=== pgsplit demo report/m, 'prints the final report');
  t.match(run.stdout, /tagged session +SELECT pg_is_in_recovery\(\) -> true .* OK$/m, 'routing check passes with one replica');
  const dir = dataDirOf(run.stdout);
  t.ok(dir, 'the output names the cluster directory', diag);
  if (dir) {
    t.notOk(fs.existsSync(dir), `${dir} is removed`);
    t.same(processesUsing(dir), [], 'no server process of the demo is left');
  }
});
