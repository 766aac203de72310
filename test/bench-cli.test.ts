/**
 * The benchmark command line (bench/run.ts): --help prints the usage without starting anything; a run's
 * report goes to a folder of its own unless --publish; SIGINT or SIGTERM in the middle of a run stops
 * every process it started and removes every folder it made. No speed is measured here.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseBenchArgs } from '../bench/bench-suite.js';
import { parsePoolBenchArgs, warningKey } from '../bench/pool-bench.js';

t.setTimeout(180_000);

const execFileP = promisify(execFile);
const runJs = path.resolve('dist/bench/run.js');
const poolJs = path.resolve('dist/bench/pool-bench.js');

/** Every live process: pid, parent, command line. */
function processes(): Array<{ pid: number; ppid: number; cmd: string }> {
  const out: Array<{ pid: number; ppid: number; cmd: string }> = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' || fields[0] === 'X') continue;
      out.push({ pid: Number(e), ppid: Number(fields[1]), cmd: fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** `root` and its descendants, plus every process whose command line names `dir` (servers pg_ctl detached). */
function processesOfRun(root: number, dir: string): Array<{ pid: number; cmd: string }> {
  const all = processes();
  const found = new Map<number, string>();
  const queue = [root];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    for (const c of all) if (c.ppid === p && !found.has(c.pid)) { found.set(c.pid, c.cmd); queue.push(c.pid); }
  }
  for (const c of all) if (c.cmd.includes(dir)) found.set(c.pid, c.cmd);
  return [...found].map(([pid, cmd]) => ({ pid, cmd }));
}

t.test('--help prints the usage and exits without starting anything', async (t) => {
  const r = await execFileP(process.execPath, [runJs, '--help'], { encoding: 'utf8', timeout: 20_000 });
  t.match(r.stdout, /^usage: node dist\/bench\/run\.js/);
  t.match(r.stdout, /--publish/);
  t.notMatch(r.stdout, /cluster/, 'no cluster started');
  const bad = await execFileP(process.execPath, [runJs, '--smoek'], { encoding: 'utf8', timeout: 20_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
  t.equal(bad?.code, 2, 'an unknown argument exits 2');
  t.match(bad?.stderr, /bench: unknown argument "--smoek"\nusage:/);
});

t.test('reports go to bench/results/runs/<time>/ unless --publish or --out', async (t) => {
  const now = new Date('2026-12-06T20:05:03.123Z');
  const a = parseBenchArgs(['--smoke'], now);
  t.ok(!a.help && a.options.outDir === path.resolve('bench/results/runs/2026-12-06T20-05-03Z'), 'a run of its own');
  const p = parseBenchArgs(['--full', '--publish'], now);
  t.ok(!p.help && p.options.outDir === path.resolve('bench/results') && p.options.mode === 'full', '--publish: the committed summary');
  const o = parseBenchArgs(['--out', 'x/y', '--only', '-S:simple:16'], now);
  t.ok(!o.help && o.options.outDir === path.resolve('x/y') && o.options.throughputOnly === true);
  t.throws(() => parseBenchArgs(['--publish', '--out', 'x']), /--publish writes to bench\/results\/; drop --out/);
  t.throws(() => parseBenchArgs(['--idle', 'lots']), /--idle "lots": write whole numbers/);
  const r = parseBenchArgs(['--rounds', '5', '--publish'], now);
  t.ok(!r.help && r.options.rounds === 5 && r.options.mode === 'quick', '--rounds: more rounds of the quick matrix');
  t.throws(() => parseBenchArgs(['--rounds', '0']), /--rounds "0": write a whole number of rounds/);
  t.match(fs.readFileSync('.gitignore', 'utf8'), /^bench\/results\/runs\/$/m, 'run folders are not committed');
});

t.test('bench:pool: --help prints the usage; bad arguments exit 2; runs write to a folder of their own', async (t) => {
  const r = await execFileP(process.execPath, [poolJs, '--help'], { encoding: 'utf8', timeout: 20_000 });
  t.match(r.stdout, /^usage: node dist\/bench\/pool-bench\.js/);
  for (const flag of ['--clients', '--seconds', '--pool-size', '--modes', '--targets', '--idle-clients', '--publish', '--out']) t.match(r.stdout, flag);
  t.notMatch(r.stdout, /cluster/, 'no cluster started');
  const bad = await execFileP(process.execPath, [poolJs, '--clients', 'many'], { encoding: 'utf8', timeout: 20_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
  t.equal(bad?.code, 2, 'a bad value exits 2');
  t.match(bad?.stderr, /bench:pool: --clients "many": write a whole number of at least 1\nusage:/);

  const now = new Date('2026-12-06T20:05:03.123Z');
  const d = parsePoolBenchArgs([], now);
  t.ok(!d.help && d.options.outDir === path.resolve('bench/results/runs/pool-2026-12-06T20-05-03Z'), 'a run of its own');
  t.ok(!d.help && d.options.clients.length === 1 && d.options.clients[0] === 1000 && d.options.seconds === 30 && d.options.poolSize === 20 && d.options.idleClients === 5000,
    'defaults: 1,000 clients, 30 s, pool 20, 5,000 idle clients');
  const p = parsePoolBenchArgs(['--publish', '--clients', '16,1000', '--modes', 'prepared', '--targets', 'pgsplit-tagged'], now);
  t.ok(!p.help && p.options.outDir === path.resolve('bench/results'), '--publish: bench/results/');
  t.same(!p.help && [p.options.clients, p.options.modes, p.options.targets], [[16, 1000], ['prepared'], ['pgsplit-tagged']]);
  t.throws(() => parsePoolBenchArgs(['--publish', '--out', 'x']), /--publish writes to bench\/results\/; drop --out/);
  t.throws(() => parsePoolBenchArgs(['--modes', 'simpel']), /--modes "simpel": unknown "simpel"; use simple, extended, prepared/);
  t.throws(() => parsePoolBenchArgs(['--idle-only', '--idle-clients', '0']), /measures nothing/);
  // pgsplit's warnings are counted per case by message and server.
  t.equal(warningKey('{"level":40,"time":1,"app":"pgsplit","node":"replica1","reason":"x","msg":"server out of rotation"}'), 'server out of rotation (replica1)');
  t.equal(warningKey('{"level":50,"msg":"listener failed"}'), 'listener failed');
  t.equal(warningKey('{"level":30,"msg":"info only"}'), null, 'below warning level');
  t.equal(warningKey('not json'), null);
});

const poolArgs = ['--clients', '2', '--seconds', '30', '--scale', '1', '--idle-clients', '0'];
for (const [name, js, args, signal, after, code] of [
  ['bench', runJs, ['--smoke'], 'SIGINT', /^peer/m, 130],
  ['bench', runJs, ['--smoke'], 'SIGTERM', /^cluster: /m, 143],
  // bench:pool, as its PgBouncer runs start.
  ['bench:pool', poolJs, poolArgs, 'SIGINT', /^peer: /m, 130],
] as const) {
  t.test(`${name}: ${signal} during a run stops every process it started and removes every folder it made`, async (t) => {
    const tmp = fs.mkdtempSync('/tmp/pbs-');
    t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const out = path.join(tmp, 'report');
    const tmpdir = path.join(tmp, 't');
    fs.mkdirSync(tmpdir);
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(tmpdir, 0o755);
    const child = spawn(process.execPath, [js, ...args, '--out', out], { env: { ...process.env, TMPDIR: tmpdir }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (after.test(stdout)) resolve();
      });
      child.once('exit', (c) => reject(new Error(`bench exited ${c} before ${after}:\n${stdout}\n${stderr}`)));
    });
    const started = processesOfRun(child.pid!, tmpdir);
    t.ok(started.some((p) => /postgres/.test(p.cmd) && p.cmd.includes(tmpdir)), 'servers of the run were running');
    t.ok(fs.readdirSync(tmpdir).length > 0, 'the run had made folders');
    child.kill(signal);
    t.equal(await exited, code, `exit ${code} after ${signal}`);
    t.match(stderr, new RegExp(`${name}: ${signal}: stopping the servers`));
    // pg_ctl stop -m immediate returns once the postmaster is gone; its children follow at once.
    const deadline = Date.now() + 10_000;
    let left = started.filter((p) => fs.existsSync(`/proc/${p.pid}`) && processes().some((q) => q.pid === p.pid));
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      left = left.filter((p) => processes().some((q) => q.pid === p.pid));
    }
    t.same(left.map((p) => p.cmd), [], 'no process the run started is left');
    t.same(processesOfRun(child.pid!, tmpdir).map((p) => p.cmd), [], 'no process uses its folders');
    t.same(fs.readdirSync(tmpdir), [], 'every folder it made is gone');
    t.notOk(fs.existsSync(path.join(out, 'README.md')) || fs.existsSync(path.join(out, 'pool.md')), 'no report written for an interrupted run');
  });
}
