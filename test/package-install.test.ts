/**
 * The published package works on its own: `npm pack` in a clean copy of the sources (no dist/, so the
 * prepack build must make it), `npm install -g` of the tarball into an empty prefix, then the installed
 * `pgsplit` prints its version, checks a config file, and proxies a query to a real cluster.
 *
 * Packing happens in a temporary copy, never in the working tree: prepack removes dist/, which other
 * tests running at the same time use. The install is tried with --offline first (the dependencies'
 * tarballs are in npm's cache after `npm ci`); when the cache lacks the registry metadata, it is
 * retried with --prefer-offline, which asks the npm registry for that metadata only.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { LocalCluster } from '../src/cluster/local-cluster.js';

t.setTimeout(240_000);

const execFileP = promisify(execFile);
const repo = path.resolve('.');
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };

async function npm(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return execFileP('npm', args, { cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false' } });
}

/** An environment for the installed command: nothing that would let it find the repository's modules. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_PATH' || k === 'NODE_OPTIONS' || k.startsWith('PGSPLIT_') || k.startsWith('npm_') || k.startsWith('TAP')) continue;
    env[k] = v;
  }
  env.PGSPLIT_LOG_FORMAT = 'json';
  return env;
}

t.test('npm pack, install the tarball into an empty prefix, run pgsplit from it', async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-pack-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

  // A clean checkout: sources and lockfile only, the dev dependencies (the compiler) linked in.
  const src = path.join(work, 'src-copy');
  fs.mkdirSync(src);
  for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'bin', 'src']) {
    fs.cpSync(path.join(repo, entry), path.join(src, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(src, 'node_modules'), 'dir');
  t.notOk(fs.existsSync(path.join(src, 'dist')), 'the copy has no dist/ before packing');

  const packed = await npm(['pack', '--json', '--pack-destination', work], src);
  const info = (JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>)[0]!;
  const files = info.files.map((f) => f.path).sort();
  t.ok(files.includes('dist/src/cli/main.js'), 'the tarball holds the compiled entry point');
  t.ok(files.includes('bin/pgsplit.js'), 'the tarball holds bin/pgsplit.js');
  const stray = files.filter((f) => !(f.startsWith('dist/src/') && f.endsWith('.js')) && !f.startsWith('bin/') && f !== 'package.json' && f !== 'README.md');
  t.same(stray, [], 'nothing but compiled JavaScript, bin/, package.json and README.md (no TypeScript, tests or bench)');

  const prefix = path.join(work, 'prefix');
  const tgz = path.join(work, info.filename);
  const installArgs = ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tgz];
  try {
    await npm([...installArgs, '--offline'], work);
  } catch (e) {
    if (!/ENOTCACHED/.test(String((e as { stderr?: string }).stderr ?? e))) throw e;
    t.comment('npm cache lacks registry metadata for a dependency; installing with --prefer-offline (uses the npm registry)');
    await npm([...installArgs, '--prefer-offline'], work);
  }
  const installed = path.join(prefix, 'lib', 'node_modules', 'pgsplit');
  const deps = fs.readdirSync(path.join(installed, 'node_modules'));
  for (const d of Object.keys(pkg.dependencies)) t.ok(deps.includes(d), `runtime dependency ${d} installed`);
  for (const dev of ['typescript', 'tap', 'libpg-query', 'fast-check']) t.notOk(deps.includes(dev), `dev dependency ${dev} not installed`);

  const bin = path.join(prefix, 'bin', 'pgsplit');
  const env = cleanEnv();
  const version = await execFileP(bin, ['--version'], { cwd: work, env, encoding: 'utf8' });
  t.equal(version.stdout.trim(), `pgsplit ${pkg.version}`, 'pgsplit --version from the installed package');

  const cluster = await LocalCluster.start({ replicas: 1, users: [{ name: 'app', password: 'app-secret', method: 'scram-sha-256' }] });
  t.teardown(() => cluster.stop());
  const configFile = path.join(work, 'pgsplit.yaml');
  fs.writeFileSync(configFile, [
    'listen: "127.0.0.1:0"',
    `primary: ${cluster.primary.url({ user: 'app', password: 'app-secret' })}`,
    'replicas:',
    `  - ${cluster.replicas[0]!.url({ user: 'app', password: 'app-secret' })}`,
    'users: [{name: app, password: client-secret}]',
    'routing: {application_names: ["report*"]}',
    '',
  ].join('\n'));
  const checked = await execFileP(bin, ['check-config', configFile], { cwd: work, env, encoding: 'utf8' });
  t.match(checked.stdout, /: ok \(primary primary, 1 replica\(s\), 1 user\(s\)\)/, 'pgsplit check-config accepts the file');

  // listen port 0: the proxy logs the address it bound.
  const proc = spawn(bin, ['--config', configFile], { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const o = JSON.parse(line) as { msg?: unknown; listen?: unknown };
          if (o.msg === 'pgsplit listening' && typeof o.listen === 'string') resolve(Number(/:(\d+)$/.exec(o.listen)?.[1]));
        } catch {
          // a partial line; wait for the rest
        }
      }
    });
    proc.once('exit', (code) => reject(new Error(`pgsplit exited with ${code} before listening:\n${stderr}`)));
  });
  const connect = async (applicationName: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: 'client-secret', database: 'postgres', application_name: applicationName });
    await c.connect();
    return c;
  };
  const plain = await connect('web');
  const tagged = await connect('report-nightly');
  try {
    const p = await plain.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    t.equal(p.rows[0]?.r, false, 'an untagged read through the installed pgsplit runs on the primary');
    const r = await tagged.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    t.equal(r.rows[0]?.r, true, 'a tagged read through the installed pgsplit runs on the replica');
  } finally {
    await plain.end();
    await tagged.end();
  }
  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: the installed pgsplit exits 0');
});
