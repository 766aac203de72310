/**
 * The benchmark harness still works end to end (a tiny run: one 1 s round of pgbench -S at 1 client
 * against every target, 50 idle clients, a 16 MiB slow read, the classifier figures) and writes its
 * report. Nothing here asserts a speed: benchmarks are not tests (bench/ holds the speed goals).
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { runBench } from '../bench/bench-suite.js';

t.test('npm run bench -- --smoke writes a report with every target measured', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-bench-smoke-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const lines: string[] = [];
  const r = await runBench({ mode: 'smoke', outDir: out, log: (l) => lines.push(l) });
  t.comment(lines.join('\n'));

  t.equal(r.cells.length, 1, 'one cell: -S simple, 1 client');
  const cell = r.cells[0]!;
  const expected = ['direct', 'node-relay', 'pgsplit-untagged', 'pgsplit-tagged'];
  const peers = ['pgbouncer', 'pgpool'].filter((p) => existsSync(`/usr/sbin/${p}`));
  expected.push(...peers);
  for (const name of expected) {
    const f = cell.targets[name];
    t.ok(f && f.tps > 0, `${name} ran transactions`);
    t.ok(f && f.p50 !== undefined && f.p99 !== undefined && f.p50 > 0 && f.p99 >= f.p50, `${name} has latency percentiles`);
    if (name !== 'direct') t.ok(f && f.cpuUsPerTx !== undefined && f.cpuUsPerTx > 0, `${name}: proxy CPU per transaction measured`);
  }
  t.same(r.peersLeftOut.length, 2 - peers.length, 'a missing peer is reported as left out');

  t.equal(r.idle.pgsplit.length, 1, 'idle-client memory measured');
  t.equal(r.idle.pgsplit[0]?.clients, 50);
  t.ok((r.idle.pgsplit[0]?.rss ?? 0) > 0);
  t.ok(r.slowClient !== null && r.slowClient.bytes >= 16 << 20, 'the slow client read the whole result');
  t.equal(r.slowClient?.error, undefined, 'without an error');
  t.ok(r.classifier.length > 0, 'classifier figures included');

  const md = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
  t.match(md, /## Throughput/);
  t.match(md, /## Latency at 1 client/);
  t.match(md, /## Memory with idle clients/);
  t.match(fs.readFileSync(path.join(out, 'throughput-S.svg'), 'utf8'), /^<svg [^>]*>[\s\S]*<rect[\s\S]*<\/svg>$/);
  t.ok(fs.existsSync(path.join(out, 'latency-1-client.svg')));
});
