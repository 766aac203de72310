import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startProxy } from './fixtures/proxy-fixture.js';

t.setTimeout(180_000);

function findPgbench(): string {
  try {
    const bindir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    const p = path.join(bindir, 'pgbench');
    if (fs.existsSync(p)) return p;
  } catch {
    // fall through
  }
  return fs.existsSync('/usr/lib/postgresql/15/bin/pgbench') ? '/usr/lib/postgresql/15/bin/pgbench' : 'pgbench';
}

const PGBENCH = findPgbench();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function pgbench(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  const began = Date.now();
  return new Promise((resolve) => {
    execFile(PGBENCH, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      // On a non-zero exit execFile's error carries the exit code; a timeout or spawn failure does not.
      const exit = (err as { code?: unknown } | null)?.code;
      const code = err ? (typeof exit === 'number' ? exit : -1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - began });
    });
  });
}

interface Summary {
  processed: number | null;
  failed: number | null;
  tps: number | null;
}

function parse(out: string): Summary {
  const num = (re: RegExp): number | null => {
    const m = re.exec(out);
    return m ? Number(m[1]) : null;
  };
  return {
    processed: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/),
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
  };
}

const fx = await startProxy(t);
const primaryName = fx.proxy.nodes.primary.endpoint.name;
const replicaNames = fx.proxy.nodes.replicas.map((r) => r.endpoint.name);
const untagged = fx.env({ PGOPTIONS: '' });
const tagged = fx.env({ PGOPTIONS: '-c pgsplit.route=replica' });

function snapshot(): Record<string, number> {
  return Object.fromEntries(fx.proxy.stats.routedByNode);
}
function delta(before: Record<string, number>, after: Record<string, number>, names: string[]): number {
  return names.reduce((n, k) => n + (after[k] ?? 0) - (before[k] ?? 0), 0);
}
async function historyRows(): Promise<number> {
  const rows = await fx.cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM pgbench_history');
  return Number(rows[0]?.n ?? NaN);
}

t.test('pgbench -i -s 1 through pgsplit', async (t) => {
  const r = await pgbench(untagged, ['-i', '-s', '1'], 90_000);
  t.equal(r.code, 0, `pgbench -i exits 0\n${r.stderr}`);
  t.match(r.stderr, /done in/, 'pgbench -i reports done');
  const rows = await fx.cluster.primary.query<{ n: string }>('SELECT count(*)::text AS n FROM pgbench_accounts');
  t.equal(rows[0]?.n, '100000', 'pgbench_accounts has 100000 rows on the primary');
  await fx.cluster.waitForReplication(30_000);
  for (const replica of fx.cluster.replicas) {
    const rr = await replica.query<{ n: string }>('SELECT count(*)::text AS n FROM pgbench_accounts');
    t.equal(rr[0]?.n, '100000', `${replica.name} has the data`);
  }
});

const tpsTable: string[] = [];

for (const mode of ['simple', 'extended', 'prepared'] as const) {
  for (const script of ['-S', '-N'] as const) {
    for (const tag of ['untagged', 'tagged'] as const) {
      t.test(`pgbench ${script} -M ${mode} ${tag}`, async (t) => {
        const env = tag === 'tagged' ? tagged : untagged;
        const historyBefore = script === '-N' ? await historyRows() : 0;
        const before = snapshot();
        const r = await pgbench(env, [script, '-M', mode, '-T', '3', '-c', '4', '-j', '2', '-n']);
        const after = snapshot();
        const s = parse(r.stdout);
        const onReplicas = delta(before, after, replicaNames);
        const onPrimary = delta(before, after, [primaryName]);
        t.comment(`${script} -M ${mode} ${tag}: tps=${s.tps} processed=${s.processed} failed=${s.failed} units primary=${onPrimary} replicas=${onReplicas} (${r.ms} ms)`);
        tpsTable.push(`${script} -M ${mode.padEnd(8)} ${tag.padEnd(8)} tps=${s.tps}`);
        t.equal(r.code, 0, `pgbench exits 0${r.code !== 0 ? `\n${r.stderr.slice(-2000)}` : ''}`);
        t.equal(s.failed, 0, 'number of failed transactions: 0');
        t.ok((s.processed ?? 0) > 0, `transactions processed > 0 (${s.processed})`);
        t.ok((s.tps ?? 0) > 0, `tps > 0 (${s.tps})`);
        if (tag === 'untagged') {
          t.equal(onReplicas, 0, 'untagged: replicas received no units');
          t.ok(onPrimary > 0, 'untagged: the primary received the units');
        } else if (script === '-S') {
          t.ok(onReplicas > 0, `tagged -S: replicas received units (${onReplicas})`);
          t.equal(onPrimary, 0, 'tagged -S: the primary received no units (every statement is a read)');
        } else {
          t.ok(onPrimary > 0, `tagged -N: the primary received units (${onPrimary})`);
        }
        if (script === '-N') {
          const grown = (await historyRows()) - historyBefore;
          t.ok(grown > 0, `pgbench_history on the primary grew (by ${grown})`);
          t.equal(grown, s.processed, 'one history row per processed transaction');
        }
      });
    }
  }
}

t.test('tps summary', async (t) => {
  for (const line of tpsTable) t.comment(line);
  t.pass('printed');
});
