import t from 'tap';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startProxy, type ProxyFixture } from './fixtures/proxy-fixture.js';
import type { LocalNode } from '../src/cluster/local-cluster.js';

t.setTimeout(300_000);

const PSQL = fs.existsSync('/usr/lib/postgresql/15/bin/psql') ? '/usr/lib/postgresql/15/bin/psql' : 'psql';
const TAG = '-c pgsplit.route=replica';

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface Running {
  child: ReturnType<typeof spawn>;
  done: Promise<RunResult>;
}

/** Starts a program (no shell) and collects its output; `input` is written to its stdin. */
function start(file: string, args: string[], opts: { env: NodeJS.ProcessEnv; input?: string; cwd?: string; timeoutMs?: number }): Running {
  const began = Date.now();
  const child = spawn(file, args, { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => undefined);
  child.stdin.end(opts.input ?? '');
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const done = new Promise<RunResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(file)} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - began });
    });
  });
  return { child, done };
}

function psql(env: NodeJS.ProcessEnv, args: string[], opts: { input?: string; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return start(PSQL, ['-X', ...args], { env, ...opts }).done;
}

/** Env for psql straight to a cluster node, bypassing pgsplit. */
function directEnv(node: LocalNode): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(node.port), PGUSER: 'postgres', PGDATABASE: 'postgres', PGCONNECT_TIMEOUT: '10', PGOPTIONS: '' };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function routedTo(fx: ProxyFixture): Record<string, number> {
  return Object.fromEntries(fx.proxy.stats.routedByNode);
}

function delta(before: Record<string, number>, after: Record<string, number>, names: string[]): number {
  return names.reduce((n, k) => n + (after[k] ?? 0) - (before[k] ?? 0), 0);
}

const fx = await startProxy(t);
const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pgsplit-psql-'));
t.teardown(() => fsp.rm(tmp, { recursive: true, force: true }));
// psql itself reads and writes the \copy / \lo files, so they live in a temp dir of this process.
const untagged = fx.env({ PGOPTIONS: '' });
const tagged = fx.env({ PGOPTIONS: TAG });
const replicaNames = fx.proxy.nodes.replicas.map((r) => r.endpoint.name);

t.test('routing proof with psql', async (t) => {
  const u = await psql(untagged, ['-A', '-t', '-c', 'SELECT pg_is_in_recovery()']);
  t.equal(u.code, 0, `untagged psql exits 0 (${u.stderr})`);
  t.equal(u.stdout.trim(), 'f', 'untagged psql reads the primary');
  const g = await psql(tagged, ['-A', '-t', '-c', 'SELECT pg_is_in_recovery()']);
  t.equal(g.code, 0, `tagged psql exits 0 (${g.stderr})`);
  t.equal(g.stdout.trim(), 't', 'tagged psql (PGOPTIONS) reads a replica');
  const s = await psql(untagged, ['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-f', '-'], {
    input: "SET pgsplit.route = 'replica';\nSHOW pgsplit.route;\nSELECT pg_is_in_recovery();\n",
  });
  t.equal(s.code, 0, `psql with SET pgsplit.route exits 0 (${s.stderr})`);
  t.same(s.stdout.trim().split('\n'), ['replica', 't'], 'SET pgsplit.route in psql tags the session');
});

t.test('catalog commands: \\d and \\dt', async (t) => {
  const ddl = await psql(untagged, ['-v', 'ON_ERROR_STOP=1', '-f', '-'], {
    input: [
      'CREATE TABLE gadgets (id bigint PRIMARY KEY, name text NOT NULL, weight numeric(8,2), created timestamptz DEFAULT now());',
      'CREATE INDEX gadgets_name_idx ON gadgets (name);',
      'CREATE UNIQUE INDEX gadgets_name_weight_uq ON gadgets (name, weight);',
      '',
    ].join('\n'),
  });
  t.equal(ddl.code, 0, `DDL through pgsplit succeeds (${ddl.stderr})`);
  const onPrimary = await fx.cluster.primary.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_indexes WHERE tablename = 'gadgets'");
  t.equal(onPrimary[0]?.n, '3', 'the table and its indexes exist on the primary');

  const d = await psql(untagged, ['-c', '\\d gadgets']);
  t.equal(d.code, 0, `\\d exits 0 (${d.stderr})`);
  for (const want of ['Table "public.gadgets"', 'id', 'bigint', 'name', 'text', 'weight', 'numeric(8,2)', 'created', 'timestamp with time zone', 'now()',
    '"gadgets_pkey" PRIMARY KEY, btree (id)', '"gadgets_name_idx" btree (name)', '"gadgets_name_weight_uq" UNIQUE, btree (name, weight)']) {
    t.ok(d.stdout.includes(want), `\\d gadgets shows ${want}`);
  }
  const dDirect = await psql(directEnv(fx.cluster.primary), ['-c', '\\d gadgets']);
  t.equal(dDirect.code, 0);
  t.equal(d.stdout, dDirect.stdout, '\\d gadgets through pgsplit equals \\d gadgets on the primary');

  const dt = await psql(untagged, ['-c', '\\dt']);
  t.equal(dt.code, 0, `\\dt exits 0 (${dt.stderr})`);
  t.match(dt.stdout, /public\s*\|\s*gadgets\s*\|\s*table\s*\|\s*postgres/, '\\dt lists gadgets');
  const dtDirect = await psql(directEnv(fx.cluster.primary), ['-c', '\\dt']);
  t.equal(dt.stdout, dtDirect.stdout, '\\dt through pgsplit equals \\dt on the primary');

  const di = await psql(untagged, ['-c', '\\di gadgets*']);
  const diDirect = await psql(directEnv(fx.cluster.primary), ['-c', '\\di gadgets*']);
  t.ok(di.stdout.includes('gadgets_name_idx'), '\\di lists the index');
  t.equal(di.stdout, diDirect.stdout, '\\di through pgsplit equals \\di on the primary');

  // Tagged: the catalog queries are reads, so a replica answers them; after replication they must agree.
  await fx.cluster.waitForReplication();
  const before = routedTo(fx);
  const dTagged = await psql(tagged, ['-c', '\\d gadgets']);
  const dtTagged = await psql(tagged, ['-c', '\\dt']);
  const after = routedTo(fx);
  t.equal(dTagged.code, 0, `tagged \\d exits 0 (${dTagged.stderr})`);
  t.equal(dTagged.stdout, dDirect.stdout, 'tagged \\d gadgets equals the primary\'s');
  t.equal(dtTagged.stdout, dtDirect.stdout, 'tagged \\dt equals the primary\'s');
  t.ok(delta(before, after, replicaNames) > 0, 'tagged catalog queries were answered by a replica');
});

t.test('multi-statement query strings', async (t) => {
  const both = await psql(untagged, ['-A', '-t', '-c', 'SELECT 1; SELECT 2']);
  t.equal(both.code, 0, `exits 0 (${both.stderr})`);
  const direct = await psql(directEnv(fx.cluster.primary), ['-A', '-t', '-c', 'SELECT 1; SELECT 2']);
  t.equal(both.stdout, direct.stdout, 'SELECT 1; SELECT 2 prints what the primary prints');
  t.same(both.stdout.trim().split('\n'), ['1', '2'], 'PG15 psql prints both results');

  await fx.cluster.primary.query('CREATE TABLE multi (id serial PRIMARY KEY, v text)');
  await fx.cluster.waitForReplication();
  const mixed = await psql(tagged, ['-q', '-A', '-t', '-c',
    "INSERT INTO multi (v) VALUES ('a'), ('b'), ('c'); SELECT count(*) FROM multi; SELECT pg_is_in_recovery()"]);
  t.equal(mixed.code, 0, `tagged write+read string exits 0 (${mixed.stderr})`);
  t.same(mixed.stdout.trim().split('\n'), ['3', 'f'], 'the mixed string ran on the primary and saw its own rows');
  const rows = await fx.cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM multi');
  t.equal(rows[0]?.n, '3', 'the rows are on the primary');

  const readsOnly = await psql(tagged, ['-A', '-t', '-c', 'SELECT 1; SELECT pg_is_in_recovery()']);
  t.same(readsOnly.stdout.trim().split('\n'), ['1', 't'], 'a tagged read-only multi-statement string runs on a replica');
});

t.test('\\copy in and out', async (t) => {
  await fx.cluster.primary.query('CREATE TABLE copytest (id int PRIMARY KEY, label text, amount numeric(10,2), note text)');
  const lines: string[] = [];
  for (let i = 1; i <= 5000; i++) {
    const note = i % 7 === 0 ? '"has, a comma"' : i % 11 === 0 ? '' : `note ${i}`;
    lines.push(`${i},label-${i},${(i * 1.25).toFixed(2)},${note}`);
  }
  const src = path.join(tmp, 'in.csv');
  await fsp.writeFile(src, lines.join('\n') + '\n');

  const cin = await psql(untagged, ['-c', `\\copy copytest FROM '${src}' csv`]);
  t.equal(cin.code, 0, `\\copy FROM exits 0 (${cin.stderr})`);
  t.equal(cin.stdout.trim(), 'COPY 5000', 'psql reports COPY 5000');
  const n = await fx.cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM copytest');
  t.equal(n[0]?.n, '5000', 'all rows are on the primary');

  // Normalise the source: csv output quotes only what needs quoting, and writes NULL for the empty fields.
  const expected = await psql(directEnv(fx.cluster.primary), ['-c', '\\copy (SELECT * FROM copytest ORDER BY id) TO STDOUT csv']);
  t.equal(expected.code, 0);
  t.equal(expected.stdout.split('\n').filter(Boolean).length, 5000);
  t.equal(expected.stdout, lines.join('\n') + '\n', 'csv round trip on the primary reproduces the source');

  await fx.cluster.waitForReplication();
  for (const [label, env] of [['untagged', untagged], ['tagged', tagged]] as const) {
    const out = path.join(tmp, `out-${label}.csv`);
    const tableOut = await psql(env, ['-c', `\\copy copytest TO '${out}' csv`]);
    t.equal(tableOut.code, 0, `${label} \\copy TO file exits 0 (${tableOut.stderr})`);
    t.equal(tableOut.stdout.trim(), 'COPY 5000', `${label}: psql reports COPY 5000`);
    const got = (await fsp.readFile(out, 'utf8')).split('\n').filter(Boolean).sort();
    t.same(got, [...lines].sort(), `${label} \\copy TO file has the source's rows`);

    const before = routedTo(fx);
    const q = await psql(env, ['-c', '\\copy (SELECT * FROM copytest ORDER BY id) TO STDOUT csv']);
    const after = routedTo(fx);
    t.equal(q.code, 0, `${label} \\copy (SELECT) TO STDOUT exits 0 (${q.stderr})`);
    t.equal(q.stdout, lines.join('\n') + '\n', `${label} \\copy (SELECT ...) TO STDOUT equals the source`);
    const onReplica = delta(before, after, replicaNames);
    t.comment(`${label} COPY (SELECT) TO STDOUT ran on ${onReplica > 0 ? 'a replica' : 'the primary'}`);
    if (label === 'untagged') t.equal(onReplica, 0, 'untagged COPY TO never touches a replica');
  }

  // COPY FROM in a tagged session is a write: it must land on the primary.
  await fx.cluster.primary.query('TRUNCATE copytest');
  const tin = await psql(tagged, ['-c', `\\copy copytest FROM '${src}' csv`]);
  t.equal(tin.code, 0, `tagged \\copy FROM exits 0 (${tin.stderr})`);
  const n2 = await fx.cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM copytest');
  t.equal(n2[0]?.n, '5000', 'tagged \\copy FROM wrote all rows to the primary');

  // A COPY FROM that fails (bad value in the middle, duplicate key at the end) leaves the session usable.
  const bad = path.join(tmp, 'bad.csv');
  await fx.cluster.waitForReplication();
  await fsp.writeFile(bad, ['9001,a,1.00,x', '9002,b,not-a-number,y', '9003,c,3.00,z'].join('\n') + '\n');
  for (const [label, env] of [['untagged', untagged], ['tagged', tagged]] as const) {
    const r = await psql(env, ['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=0', '-f', '-'], {
      input: `\\set VERBOSITY verbose\n\\copy copytest FROM '${bad}' csv\nSELECT 'after-bad-copy';\n\\copy copytest FROM '${src}' csv\nSELECT 'after-dup-copy', count(*) FROM copytest;\n`,
    });
    t.equal(r.code, 0, `${label}: psql exits 0 with ON_ERROR_STOP=0`);
    t.match(r.stderr, /ERROR:\s+22P02: invalid input syntax for type numeric: "not-a-number"/, `${label}: bad value reported with 22P02`);
    t.match(r.stderr, /ERROR:\s+23505: duplicate key value violates unique constraint "copytest_pkey"/, `${label}: duplicate key reported with 23505`);
    t.same(r.stdout.trim().split('\n'), ['after-bad-copy', 'after-dup-copy|5000'], `${label}: statements after failed COPYs run and nothing was added`);
  }
});

t.test('errors leave the session usable', async (t) => {
  const script = [
    '\\set VERBOSITY verbose',
    'SELECT 1/0;',
    "SELECT 'after-div' AS marker;",
    'SELEC oops;',
    "SELECT 'after-syntax' AS marker;",
    'SELECT * FROM no_such_table_xyz;',
    "SELECT 'after-missing' AS marker;",
    'BEGIN;',
    'SELECT 1/0;',
    "SELECT 'in-aborted-tx';",
    'ROLLBACK;',
    "SELECT 'after-rollback' AS marker;",
    '',
  ].join('\n');
  for (const [label, env] of [['untagged', untagged], ['tagged', tagged]] as const) {
    const r = await psql(env, ['-A', '-t', '-v', 'ON_ERROR_STOP=0', '-f', '-'], { input: script });
    t.equal(r.code, 0, `${label}: psql exits 0 with ON_ERROR_STOP=0`);
    t.match(r.stderr, /ERROR:\s+22012: division by zero/, `${label}: division by zero with SQLSTATE 22012`);
    t.match(r.stderr, /ERROR:\s+42601: syntax error at or near "SELEC"/, `${label}: syntax error with SQLSTATE 42601`);
    t.match(r.stderr, /ERROR:\s+42P01: relation "no_such_table_xyz" does not exist/, `${label}: unknown table with SQLSTATE 42P01`);
    t.match(r.stderr, /ERROR:\s+25P02: current transaction is aborted/, `${label}: statement in the aborted transaction is refused`);
    t.equal((r.stderr.match(/ERROR:\s+22012/g) ?? []).length, 2, `${label}: both divisions by zero are reported`);
    t.same(r.stdout.trim().split('\n').filter((l) => l !== 'BEGIN' && l !== 'ROLLBACK'),
      ['after-div', 'after-syntax', 'after-missing', 'after-rollback'], `${label}: every good SELECT after an error printed`);
    t.notOk(r.stdout.includes('in-aborted-tx'), `${label}: nothing ran in the aborted transaction`);
  }

  // The same as one -c string per statement group: BEGIN; SELECT 1/0; ROLLBACK; SELECT 'after' via several -c.
  const multi = await psql(tagged, ['-A', '-t', '-v', 'ON_ERROR_STOP=0', '-c', 'BEGIN', '-c', 'SELECT 1/0', '-c', 'ROLLBACK', '-c', "SELECT 'after'"]);
  t.equal(multi.code, 0, 'several -c with a failing one exits 0');
  t.match(multi.stderr, /division by zero/);
  t.match(multi.stdout, /^after$/m, "SELECT 'after' printed after ROLLBACK");
});

async function activeSleeps(node: LocalNode): Promise<number> {
  const rows = await node.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(60)%' AND pid <> pg_backend_pid()");
  return Number(rows[0]?.n ?? 0);
}

t.test('Ctrl-C cancels pg_sleep', async (t) => {
  for (const [label, env] of [['untagged', untagged], ['tagged', tagged]] as const) {
    const run = start(PSQL, ['-X', '-c', 'SELECT pg_sleep(60)'], { env, timeoutMs: 30_000 });
    await sleep(1500);
    // On a loaded machine psql may take longer to connect: wait (up to 10 s more) until the sleep is running.
    let where: Array<readonly [string, number]> = [];
    for (let i = 0; i < 100; i++) {
      where = await Promise.all(fx.cluster.nodes.map(async (n) => [n.name, await activeSleeps(n)] as const));
      if (where.some(([, c]) => c > 0)) break;
      await sleep(100);
    }
    t.comment(`${label}: pg_sleep running on ${JSON.stringify(Object.fromEntries(where))}`);
    const primarySleeps = where.find(([n]) => n === fx.cluster.primary.name)?.[1] ?? 0;
    const replicaSleeps = where.filter(([n]) => n !== fx.cluster.primary.name).reduce((s, [, c]) => s + c, 0);
    if (label === 'untagged') t.same([primarySleeps, replicaSleeps], [1, 0], 'untagged pg_sleep runs on the primary');
    else t.same([primarySleeps, replicaSleeps], [0, 1], 'tagged pg_sleep runs on a replica');
    const sent = Date.now();
    run.child.kill('SIGINT');
    const r = await run.done;
    const took = Date.now() - sent;
    t.comment(`${label}: psql exited ${took} ms after SIGINT`);
    t.ok(took < 5000, `${label}: psql exits within 5 s of SIGINT (took ${took} ms)`);
    t.equal(r.code, 1, `${label}: psql exits 1 (statement failed)`);
    t.match(r.stderr, /canceling statement due to user request/, `${label}: stderr reports the cancel`);
    let left = -1;
    for (let i = 0; i < 20; i++) {
      left = (await Promise.all(fx.cluster.nodes.map(activeSleeps))).reduce((a, b) => a + b, 0);
      if (left === 0) break;
      await sleep(100);
    }
    t.equal(left, 0, `${label}: no pg_sleep still runs on any node`);
  }
});

t.test('\\lo_import / \\lo_export (FunctionCall)', async (t) => {
  const src = path.join(tmp, 'blob.bin');
  const data = crypto.randomBytes(300_000);
  await fsp.writeFile(src, data);
  for (const [label, env] of [['untagged', untagged], ['tagged', tagged]] as const) {
    const out = path.join(tmp, `blob-${label}.out`);
    const r = await psql(env, ['-v', 'ON_ERROR_STOP=1', '-f', '-'], {
      input: `\\lo_import '${src}'\n\\lo_export :LASTOID '${out}'\nSELECT 'oid=' || :LASTOID;\n\\lo_unlink :LASTOID\n`,
      timeoutMs: 30_000,
    });
    t.equal(r.code, 0, `${label}: lo_import/lo_export script exits 0 (${r.stderr})`);
    t.match(r.stdout, /lo_import \d+/, `${label}: psql reports lo_import`);
    t.match(r.stdout, /lo_unlink \d+/, `${label}: psql reports lo_unlink`);
    const got = await fsp.readFile(out).catch(() => Buffer.alloc(0));
    t.equal(got.length, data.length, `${label}: exported file has the imported size`);
    t.ok(got.equals(data), `${label}: exported bytes equal the imported bytes`);
  }
  const left = await fx.cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_largeobject_metadata');
  t.equal(left[0]?.n, '0', 'lo_unlink removed the large objects on the primary');
});
