/**
 * The benchmark harness still works end to end (a tiny run: one 1 s round of pgbench -S, simple and
 * extended, at 1 and 16 clients against every target, 50 idle clients, a 16 MiB slow read, the
 * classifier figures, a short write-then-read) and writes its report, opening with a complete headline;
 * so does `npm run bench:pool` at its smallest (4 clients, 1 s per case, 20 idle clients).
 * Nothing here asserts a speed: benchmarks are not tests (bench/ holds the speed goals); the headline is
 * checked for its shape and that every figure is a number, never for whether a goal holds.
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { runBench } from '../bench/bench-suite.js';
import { poolSupport, runPoolBench } from '../bench/pool-bench.js';
import { headline } from '../bench/headline.js';

t.test('npm run bench -- --smoke writes a report with every target measured', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-bench-smoke-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const lines: string[] = [];
  const r = await runBench({ mode: 'smoke', outDir: out, log: (l) => lines.push(l) });
  t.comment(lines.join('\n'));

  t.same(r.cells.map((c) => `${c.load} ${c.mode} ${c.clients}`), ['-S simple 1', '-S simple 16', '-S extended 1', '-S extended 16'],
    'the cells the headline reads: -S simple and extended at 1 and 16 clients');
  const expected = ['direct', 'node-relay', 'pgsplit-untagged', 'pgsplit-tagged'];
  const peers = ['pgbouncer', 'pgpool'].filter((p) => existsSync(`/usr/sbin/${p}`));
  expected.push(...peers);
  for (const cell of r.cells) {
    for (const name of expected) {
      const f = cell.targets[name];
      const at = `${name} (${cell.mode}, ${cell.clients} clients)`;
      t.ok(f && f.tps > 0, `${at} ran transactions`);
      if (cell.clients === 1) t.ok(f && f.p50 !== undefined && f.p99 !== undefined && f.p50 > 0 && f.p99 >= f.p50, `${at} has latency percentiles`);
      if (name !== 'direct') t.ok(f && f.cpuUsPerTx !== undefined && f.cpuUsPerTx > 0, `${at}: proxy CPU per transaction measured`);
    }
  }
  t.same(r.peersLeftOut.length, 2 - peers.length, 'a missing peer is reported as left out');

  t.same(r.idle.pgsplit.map((m) => [m.clients, m.queried]), [[50, false], [50, true]], 'idle-client memory measured, startup only and after one query');
  t.ok((r.idle.pgsplit[0]?.rss ?? 0) > 0);
  t.ok(r.slowClient !== null && r.slowClient.bytes >= 16 << 20, 'the slow client read the whole result');
  t.equal(r.slowClient?.error, undefined, 'without an error');
  t.ok(r.classifier.length > 0, 'classifier figures included');
  const w = r.writeThenRead;
  t.ok(w !== null, 'the write-then-read part ran');
  const loopMs = w ? [w.loop.directMedianMs, w.loop.relayMedianMs, w.loop.untaggedMedianMs, w.loop.taggedMedianMs] : [];
  t.ok(loopMs.length === 4 && loopMs.every((ms) => Number.isFinite(ms) && ms > 0), `direct, relay, untagged and tagged loops timed (${loopMs.map((x) => x.toFixed(0)).join(', ')} ms)`);
  t.ok(w && Number.isFinite(w.loop.ratio) && Number.isFinite(w.loop.ratioToRelay), 'tagged / direct and tagged / relay computed');
  t.ok(w && (w.loop.replicaDirectMedianMs ?? 0) > 0 && Number.isFinite(w.loop.ratioToReplicaDirect) && (w.loop.replicaDirectRetries ?? -1) >= 0,
    `the replica-direct floor timed (${w?.loop.replicaDirectMedianMs?.toFixed(0)} ms, ${w?.loop.replicaDirectRetries} early reads per INSERT)`);
  t.ok(w && w.loop.taggedReads === 20 && w.lag.replicas.length === 2 && w.lag.maxLag50.reads > 0, 'reads counted, lag sampled on both replicas');

  // The headline: every goal with a number, a goal and a verdict; the figures without a goal with a number.
  const h = headline(r);
  const goals = h.rows.filter((x) => x.goal !== undefined);
  t.equal(goals.length, 13, 'CPU (4), latency (4), write-then-read (3), lag (2) goals');
  t.equal(h.rows.length, 19, 'and tagged / relay, the replica-direct floor and four idle-memory readings without a goal');
  for (const x of h.rows) {
    t.ok(typeof x.measured === 'number' && Number.isFinite(x.measured), `${x.what}: measured (${x.measured})`);
    t.ok(x.goal ? ['holds', 'does not hold'].includes(x.verdict) : x.verdict === 'no goal', `${x.what}: ${x.verdict}`);
  }
  t.same(h.cpu.map((c) => c.mode), ['simple', 'extended']);
  for (const c of h.cpu) {
    const ratios = [c.untaggedToRelay, c.taggedToRelay, ...(peers.includes('pgbouncer') ? [c.untaggedToPgbouncer, c.taggedToPgbouncer] : [])];
    t.ok(ratios.every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0), `${c.mode}: CPU ratios to the relay${peers.includes('pgbouncer') ? ' and PgBouncer' : ''}`);
  }
  for (const l of h.latency) {
    const vs = [l.relay?.p50, l.relay?.p99, l.untagged?.p50, l.untagged?.p99, l.tagged?.p50, l.tagged?.p99, l.untaggedP50DiffUs, l.untaggedP99DiffUs, l.taggedP50DiffUs, l.taggedP99DiffUs];
    t.ok(vs.every((v) => typeof v === 'number' && Number.isFinite(v)), `${l.mode}: p50/p99 of relay and pgsplit, and the differences`);
  }

  const md = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
  t.equal(md.match(/^## .*/m)?.[0], '## Headline', 'the report opens with the headline');
  const section = md.slice(md.indexOf('## Headline'), md.indexOf('\n## ', md.indexOf('## Headline') + 1));
  // The goal table: from its header to the first blank line.
  const after = section.slice(section.indexOf('| figure | measured | goal | verdict |')).split('\n');
  const goalLines = after.slice(2, after.indexOf(''));
  t.equal(goalLines.length, h.rows.length, 'a table row per headline figure');
  for (const [i, l] of goalLines.entries()) {
    const [what, measured, goal, verdict] = l.slice(2, -2).split(' | ');
    t.equal(what, h.rows[i]?.what, `row ${i + 1} is ${h.rows[i]?.what}`);
    t.match(measured, /^[+−]?[\d,.]+( ?(×|µs|ms|%|KiB))?$/, `${what}: measured shown as a number`);
    t.match(`${goal} ${verdict}`, h.rows[i]?.goal ? /^[≤≥=] [+\d.]+.* \*\*(holds|does not hold)\*\*$/ : /^— no goal$/, `${what}: goal and verdict`);
  }
  t.match(section, /\| simple \| [\d.]+ \| /, 'CPU per transaction of relay and pgsplit at 16 clients');
  t.match(md, /## Write-then-read loop/);
  t.match(md, /## Throughput/);
  t.match(md, /## Latency at 1 client/);
  t.match(md, /## Memory with idle clients/);
  t.match(fs.readFileSync(path.join(out, 'throughput-S.svg'), 'utf8'), /^<svg [^>]*>[\s\S]*<rect[\s\S]*<\/svg>$/);
  t.ok(fs.existsSync(path.join(out, 'latency-1-client.svg')));
});

t.test('npm run bench:pool at its smallest measures every case and writes pool.md and pool.json', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pgsplit-bench-pool-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const lines: string[] = [];
  const poolSize = 2;
  const r = await runPoolBench({
    clients: [4], seconds: 1, scale: 1, poolSize, modes: ['simple', 'extended', 'prepared'], targets: ['pgbouncer', 'pgsplit-untagged', 'pgsplit-tagged'],
    tagBy: 'options', warmSeconds: 0, idleClients: 20, idleOnly: false, idleSettle: 1, outDir: out, log: (l) => lines.push(l),
  });
  t.comment(lines.join('\n'));
  const pooled = poolSupport(poolSize).accepted;
  t.equal(r.pgsplitPool.configured, pooled, 'the report says whether pgsplit had a pool');
  const bouncer = existsSync('/usr/sbin/pgbouncer');
  t.equal(r.cases.length, bouncer ? 9 : 6, 'every target in every mode');
  for (const c of r.cases) {
    const nodes = Object.fromEntries(c.backends.map((b) => [b.node, b]));
    t.ok((nodes.primary?.samples ?? 0) > 0 && (nodes.replica1?.samples ?? 0) > 0, `${c.target} ${c.mode}: both servers sampled`);
    if (c.target === 'pgbouncer') {
      // PgBouncer 1.18 loses named prepared statements in transaction mode: that case may fail, and is shown.
      if (c.mode !== 'prepared') t.ok(c.transactions > 0 && c.aborted === 0, `pgbouncer ${c.mode} ran`);
      t.ok((nodes.primary?.sessions ?? 0) >= 1 && (nodes.primary?.sessions ?? 99) <= poolSize, `pgbouncer held 1..${poolSize} primary backends`);
      continue;
    }
    t.ok(c.transactions > 0 && c.failed === 0 && c.aborted === 0 && c.exitCode === 0, `${c.target} ${c.mode}: ran without failures`);
    const used = c.target === 'pgsplit-tagged' ? nodes.replica1 : nodes.primary;
    const bound = pooled ? poolSize : 4;
    t.ok((used?.sessions ?? 0) >= 1 && (used?.sessions ?? 99) <= bound, `${c.target} ${c.mode}: 1..${bound} backends on the server it reads from (${used?.sessions})`);
    t.ok(c.cpuSeconds > 0 && c.maxRssMiB > 0, 'proxy CPU and memory measured');
  }
  t.same(r.idle?.pgsplit.map((m) => [m.clients, m.queried]), [[20, false], [20, true]], 'idle clients measured, startup only and after one query');
  t.ok((r.idle?.pgsplit[0]?.rss ?? 0) > 0 && r.idle?.pgsplit[0]?.serverBackends !== undefined);
  const md = fs.readFileSync(path.join(out, 'pool.md'), 'utf8');
  t.match(md, /\| target \| mode \| clients \| tps \| failed tx/);
  t.match(md, /## Idle clients/);
  t.match(md, pooled ? /pgsplit ran with pool: \{ size: 2 \}/ : /pgsplit ran WITHOUT a pool/);
  t.same((JSON.parse(fs.readFileSync(path.join(out, 'pool.json'), 'utf8')) as { cases: unknown[] }).cases.length, r.cases.length);
});
