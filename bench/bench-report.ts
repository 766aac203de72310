/**
 * Writes a benchmark run as Markdown (bench/results/README.md by default) with SVG charts beside it:
 * the headline (each speed goal and whether this run meets it, headline.ts), then throughput by client
 * count, latency percentiles at one client, proxy CPU per transaction, memory, write-then-read.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { BenchCell, BenchReport } from './bench-suite.js';
import { groupedBarChart } from './svg-chart.js';
import { headline, headlineMarkdown } from './headline.js';
import { writeThenReadSections } from './write-then-read-run.js';

const LOAD_NAMES: Record<string, string> = { '-S': 'select-only (-S)', '-N': 'writes (-N)' };

/** A figure with thousands separators and `digits` decimals; — for none. */
export function num(v: number | undefined, digits = 0): string {
  return v === undefined || !Number.isFinite(v) ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function ratio(c: BenchCell, a: string, b: string): number | undefined {
  const x = c.targets[a]?.tps;
  const y = c.targets[b]?.tps;
  return x !== undefined && y !== undefined && y > 0 ? x / y : undefined;
}

/** The two comparisons the project promises, for a cell (undefined when a peer is missing). */
export function promisedRatios(c: BenchCell): { untaggedVsPgbouncer?: number; taggedVsPgpool?: number } {
  return { untaggedVsPgbouncer: ratio(c, 'pgsplit-untagged', 'pgbouncer'), taggedVsPgpool: ratio(c, 'pgsplit-tagged', 'pgpool') };
}

/** The Markdown text of a report (file names of the charts are relative to it). */
export function reportMarkdown(r: BenchReport, charts: readonly string[]): string {
  const L: string[] = [];
  L.push('# pgsplit benchmark results', '');
  L.push(`Run ${r.date} in ${r.settings.mode} mode: ${r.settings.rounds} interleaved rounds of ${r.settings.seconds} s per cell, medians shown; pgbench scale ${r.settings.scale}.`, '');
  L.push(`Machine: ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memoryGiB.toFixed(1)} GiB, Linux ${r.machine.kernel}. ` +
    'Everything (PostgreSQL primary and two streaming replicas, the proxies, pgbench) shares these CPUs.', '');
  L.push(`Versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join('; ')}.`, '');
  if (r.peersLeftOut.length > 0) L.push(`Peers left out: ${r.peersLeftOut.join('; ')}.`, '');
  L.push('Targets: `direct` = the primary itself; `pgbouncer` = PgBouncer, transaction pooling, to the primary; `pgpool` = pgpool-II, ' +
    'streaming replication mode with load balancing over the primary and both replicas; `node-relay` = a bare Node.js relay that only ' +
    'forwards bytes (bench/node-relay.ts: the floor for any Node proxy here); `pgsplit-untagged` = pgsplit, everything to the ' +
    'primary; `pgsplit-tagged` = pgsplit with `PGOPTIONS=-c pgsplit.route=replica`, reads to the replicas.', '');
  L.push(...headlineMarkdown(headline(r)));
  const key = r.cells.find((c) => c.load === '-S' && c.mode === 'simple' && c.clients === 16);
  if (key) {
    const p = promisedRatios(key);
    L.push('## The promised comparisons (pgbench -S -M simple, 16 clients)', '');
    L.push(`- pgsplit untagged / PgBouncer: **${num(p.untaggedVsPgbouncer, 2)}** (goal ≥ 0.8)`);
    L.push(`- pgsplit tagged / pgpool-II: **${num(p.taggedVsPgpool, 2)}** (goal ≥ 1.5)`);
    L.push(`- for reference, the bare Node relay / PgBouncer: ${num(ratio(key, 'node-relay', 'pgbouncer'), 2)}; pgsplit untagged / bare Node relay: ${num(ratio(key, 'pgsplit-untagged', 'node-relay'), 2)}`, '');
  }
  L.push('## Throughput (transactions per second; ratio to direct)', '');
  L.push(`| load | mode | clients | ${r.targets.join(' | ')} | untagged/pgbouncer | tagged/pgpool |`);
  L.push(`|---|---|---:|${r.targets.map(() => '---:').join('|')}|---:|---:|`);
  for (const c of r.cells) {
    const d = c.targets.direct?.tps ?? NaN;
    const cells = r.targets.map((t) => {
      const f = c.targets[t];
      return f ? `${num(f.tps)} (${num(f.tps / d, 2)})` : 'n/a';
    });
    const p = promisedRatios(c);
    L.push(`| ${c.load} | ${c.mode} | ${c.clients} | ${cells.join(' | ')} | ${num(p.untaggedVsPgbouncer, 2)} | ${num(p.taggedVsPgpool, 2)} |`);
  }
  L.push('');
  const oneClient = r.cells.filter((c) => c.clients === 1);
  if (oneClient.length > 0) {
    L.push('## Latency at 1 client (milliseconds, p50 / p99)', '');
    L.push(`| load | mode | ${r.targets.join(' | ')} |`, `|---|---|${r.targets.map(() => '---:').join('|')}|`);
    for (const c of oneClient) {
      L.push(`| ${c.load} | ${c.mode} | ${r.targets.map((t) => { const f = c.targets[t]; return f ? `${num(f.p50, 3)} / ${num(f.p99, 3)}` : 'n/a'; }).join(' | ')} |`);
    }
    L.push('');
  }
  const proxies = r.targets.filter((t) => t !== 'direct');
  L.push('## CPU time of the proxy per transaction (microseconds, user + system)', '');
  L.push('For pgpool-II: its parent and its pre-forked children together.', '');
  L.push(`| load | mode | clients | ${proxies.join(' | ')} |`, `|---|---|---:|${proxies.map(() => '---:').join('|')}|`);
  for (const c of r.cells) L.push(`| ${c.load} | ${c.mode} | ${c.clients} | ${proxies.map((t) => num(c.targets[t]?.cpuUsPerTx, 1)).join(' | ')} |`);
  L.push('');
  if (r.idle.pgsplit.length > 0) {
    L.push('## Memory with idle clients (resident set of the proxy process)', '');
    L.push('| proxy | idle clients | kind | RSS before (settled) | RSS at once | RSS settled | per client settled |', '|---|---:|---|---:|---:|---:|---:|');
    for (const [name, rows] of [['pgsplit', r.idle.pgsplit], ['pgbouncer', r.idle.pgbouncer]] as const) {
      for (const m of rows) {
        L.push(`| ${name} | ${m.clients.toLocaleString('en-US')} | ${m.queried ? 'after one query' : 'startup only'} | ${num(m.baseline, 1)} MiB | ` +
          `${num(m.rssAfterConnect, 1)} MiB | ${num(m.rss, 1)} MiB | ${num(m.perClientKiB, 1)} KiB |`);
      }
    }
    L.push('', '"Settled": read after the proxy was left alone for a while (the baseline too); "at once": 2 s after the last client connected.');
    L.push('', 'pgsplit runs with its default pool (transaction pooling, pool.size 20) and PgBouncer with a pool of 20: an idle client holds no server connection in either.', '');
  }
  if (r.slowClient) {
    const s = r.slowClient;
    L.push('## A slow client reading a huge result', '');
    L.push(`One client read ${num(s.bytes / 2 ** 30, 2)} GiB of rows through pgsplit slowly (a 2 s pause, then 200 ms after every 64 MiB): ` +
      `${num(s.seconds, 1)} s, ${num(s.mibPerSecond, 0)} MiB/s on average${s.error ? `; error: ${s.error}` : ''}.`, '');
    L.push(`- pgsplit resident memory: ${num(s.rssBefore, 1)} MiB before, ${num(s.rssPeak, 1)} MiB at most during the read (backpressure holds the server back; nothing is buffered whole).`);
    L.push(`- 8 other clients (pgbench -S) through the same pgsplit: ${num(s.tpsAlone)} tps alone, ${num(s.tpsDuring)} tps while the slow client read.`, '');
  }
  if (r.writeThenRead) L.push(...writeThenReadSections(r.writeThenRead));
  if (r.classifier.length > 0) {
    L.push('## Statement classification (bench/classify.ts, quick mode)', '');
    L.push('| workload | mode | statements/s |', '|---|---|---:|');
    for (const c of r.classifier) L.push(`| ${c.workload} | ${c.mode.trim()} | ${num(c.opsPerSec)} |`);
    L.push('');
  }
  if (charts.length > 0) {
    L.push('## Charts', '');
    for (const c of charts) L.push(`![${c}](${c})`, '');
  }
  return `${L.join('\n')}\n`;
}

/** Writes README.md and the SVG charts into `dir`; returns the paths written. */
export async function writeReport(r: BenchReport, dir: string): Promise<string[]> {
  await fsp.mkdir(dir, { recursive: true });
  const written: string[] = [];
  const charts: string[] = [];
  const clients = [...new Set(r.cells.map((c) => c.clients))].sort((a, b) => a - b);
  for (const load of [...new Set(r.cells.map((c) => c.load))]) {
    const cells = clients.map((n) => r.cells.find((c) => c.load === load && c.mode === 'simple' && c.clients === n));
    if (cells.every((c) => c === undefined)) continue;
    const file = `throughput${load}.svg`;
    await fsp.writeFile(path.join(dir, file), groupedBarChart({
      title: `pgbench ${LOAD_NAMES[load] ?? load}, -M simple: transactions per second`,
      yLabel: 'tps',
      groups: clients.map((n) => `${n} client${n === 1 ? '' : 's'}`),
      series: r.targets.map((t) => ({ name: t, values: cells.map((c) => c?.targets[t]?.tps) })),
    }));
    charts.push(file);
  }
  const lat = r.cells.filter((c) => c.clients === 1 && c.mode === 'simple');
  if (lat.length > 0) {
    const file = 'latency-1-client.svg';
    await fsp.writeFile(path.join(dir, file), groupedBarChart({
      title: 'Latency at 1 client, -M simple (ms)',
      yLabel: 'milliseconds',
      groups: lat.flatMap((c) => [`${c.load} p50`, `${c.load} p99`]),
      series: r.targets.map((t) => ({ name: t, values: lat.flatMap((c) => [c.targets[t]?.p50, c.targets[t]?.p99]) })),
    }));
    charts.push(file);
  }
  const md = path.join(dir, 'README.md');
  await fsp.writeFile(md, reportMarkdown(r, charts));
  await fsp.writeFile(path.join(dir, 'results.json'), `${JSON.stringify(r, null, 2)}\n`);
  written.push(md, ...charts.map((c) => path.join(dir, c)));
  return written;
}
