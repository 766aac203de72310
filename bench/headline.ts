/**
 * The headline of a benchmark report: each of the project's speed goals with the figure this run
 * measured, the goal, and whether it holds. The goals are stated against the bare Node relay
 * (node-relay.ts: the floor for any Node proxy on the machine) and against what a user feels; every
 * figure comes from the same run (medians of its interleaved rounds), never from an earlier one.
 */
import type { BenchCell, BenchReport, TargetFigures } from './bench-suite.js';
import { num } from './bench-report.js';

export type Verdict = 'holds' | 'does not hold' | 'not measured' | 'no goal';

export interface HeadlineRow {
  /** What is measured. */
  what: string;
  /** The figure, in `unit`; undefined when this run did not measure it. */
  measured: number | undefined;
  unit: '×' | 'µs' | 'ms' | '%' | 'KiB' | 'reads';
  /** The goal: measured `op` value; none for figures reported without a goal. */
  goal?: { op: '≤' | '≥' | '='; value: number };
  verdict: Verdict;
  /** The figures it is computed from, in words. */
  detail: string;
}

/** CPU per transaction of each target at pgbench -S, 16 clients, µs, and pgsplit's ratios to the relay and PgBouncer. */
export interface HeadlineCpu {
  mode: 'simple' | 'extended';
  relay?: number;
  pgbouncer?: number;
  untagged?: number;
  tagged?: number;
  untaggedToRelay?: number;
  taggedToRelay?: number;
  untaggedToPgbouncer?: number;
  taggedToPgbouncer?: number;
}

/** Latency at 1 client (pgbench -S), ms, and pgsplit's difference to the relay, µs. */
export interface HeadlineLatency {
  mode: 'simple' | 'extended';
  relay?: { p50?: number; p99?: number };
  untagged?: { p50?: number; p99?: number };
  tagged?: { p50?: number; p99?: number };
  untaggedP50DiffUs?: number;
  untaggedP99DiffUs?: number;
  taggedP50DiffUs?: number;
  taggedP99DiffUs?: number;
}

export interface Headline {
  rows: HeadlineRow[];
  cpu: HeadlineCpu[];
  latency: HeadlineLatency[];
}

/** pgbench clients of the CPU goals. */
export const CPU_CLIENTS = 16;
const MODES = ['simple', 'extended'] as const;

const div = (a: number | undefined, b: number | undefined): number | undefined =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : undefined;
const minus = (a: number | undefined, b: number | undefined): number | undefined =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) ? a - b : undefined;

function row(what: string, measured: number | undefined, unit: HeadlineRow['unit'], goal: HeadlineRow['goal'], detail: string): HeadlineRow {
  const m = measured !== undefined && Number.isFinite(measured) ? measured : undefined;
  let verdict: Verdict = 'no goal';
  if (m === undefined) verdict = 'not measured';
  else if (goal) {
    const holds = goal.op === '≤' ? m <= goal.value : goal.op === '≥' ? m >= goal.value : m === goal.value;
    verdict = holds ? 'holds' : 'does not hold';
  }
  const r: HeadlineRow = { what, measured: m, unit, verdict, detail };
  if (goal) r.goal = goal;
  return r;
}

function cell(r: BenchReport, mode: string, clients: number): BenchCell | undefined {
  return r.cells.find((c) => c.load === '-S' && c.mode === mode && c.clients === clients);
}

const fig = (c: BenchCell | undefined, target: string): TargetFigures | undefined => c?.targets[target] ?? undefined;

/** The headline of a report. */
export function headline(r: BenchReport): Headline {
  const rows: HeadlineRow[] = [];
  const cpu: HeadlineCpu[] = [];
  const latency: HeadlineLatency[] = [];
  for (const mode of MODES) {
    const c = cell(r, mode, CPU_CLIENTS);
    const relay = fig(c, 'node-relay')?.cpuUsPerTx;
    const pgbouncer = fig(c, 'pgbouncer')?.cpuUsPerTx;
    const untagged = fig(c, 'pgsplit-untagged')?.cpuUsPerTx;
    const tagged = fig(c, 'pgsplit-tagged')?.cpuUsPerTx;
    const h: HeadlineCpu = {
      mode, relay, pgbouncer, untagged, tagged,
      untaggedToRelay: div(untagged, relay), taggedToRelay: div(tagged, relay),
      untaggedToPgbouncer: div(untagged, pgbouncer), taggedToPgbouncer: div(tagged, pgbouncer),
    };
    cpu.push(h);
    for (const [tag, us, ratio, toBouncer, limit] of [
      ['untagged', untagged, h.untaggedToRelay, h.untaggedToPgbouncer, 1.15],
      ['tagged', tagged, h.taggedToRelay, h.taggedToPgbouncer, 1.25],
    ] as const) {
      rows.push(row(`CPU per transaction, -S -M ${mode}, ${CPU_CLIENTS} clients: pgsplit ${tag} ÷ bare relay`, ratio, '×', { op: '≤', value: limit },
        `${num(us, 1)} µs vs ${num(relay, 1)} µs; ÷ PgBouncer (${num(pgbouncer, 1)} µs): ${num(toBouncer, 2)}×`));
    }
  }
  for (const mode of MODES) {
    const c = cell(r, mode, 1);
    const at = (t: string): { p50?: number; p99?: number } | undefined => {
      const f = fig(c, t);
      return f ? { p50: f.p50, p99: f.p99 } : undefined;
    };
    const relay = at('node-relay');
    const untagged = at('pgsplit-untagged');
    const tagged = at('pgsplit-tagged');
    const us = (a: number | undefined, b: number | undefined): number | undefined => {
      const d = minus(a, b);
      return d === undefined ? undefined : d * 1000;
    };
    const h: HeadlineLatency = {
      mode, relay, untagged, tagged,
      untaggedP50DiffUs: us(untagged?.p50, relay?.p50), untaggedP99DiffUs: us(untagged?.p99, relay?.p99),
      taggedP50DiffUs: us(tagged?.p50, relay?.p50), taggedP99DiffUs: us(tagged?.p99, relay?.p99),
    };
    latency.push(h);
    for (const [tag, f, d50, d99] of [['untagged', untagged, h.untaggedP50DiffUs, h.untaggedP99DiffUs], ['tagged', tagged, h.taggedP50DiffUs, h.taggedP99DiffUs]] as const) {
      rows.push(row(`Latency p50 at 1 client, -S -M ${mode}: pgsplit ${tag} − bare relay`, d50, 'µs', { op: '≤', value: 15 },
        `p50 ${num(f?.p50, 3)} vs ${num(relay?.p50, 3)} ms; p99 ${num(f?.p99, 3)} vs ${num(relay?.p99, 3)} ms (${signed(d99)} µs)`));
    }
  }
  const w = r.writeThenRead?.loop;
  const wtrDetail = w
    ? `${w.iterations} INSERT + SELECT: direct ${num(w.directMedianMs)} ms, bare relay ${num(w.relayMedianMs)} ms, untagged ${num(w.untaggedMedianMs)} ms, tagged ${num(w.taggedMedianMs)} ms`
    : 'not run (--no-write-then-read or --throughput-only)';
  rows.push(row('Write-then-read loop: tagged ÷ direct', w?.ratio, '×', { op: '≤', value: 1.3 }, wtrDetail));
  rows.push(row('Write-then-read loop: tagged ÷ bare relay (the hop itself excluded)', w?.ratioToRelay, '×', undefined,
    w ? `bare relay ÷ direct: ${num(w.relayMedianMs / w.directMedianMs, 2)}×` : wtrDetail));
  rows.push(row('Write-then-read loop: reading one\'s write on a replica without pgsplit ÷ direct (this machine\'s floor)',
    w?.replicaDirectMedianMs !== undefined ? w.replicaDirectMedianMs / w.directMedianMs : undefined, '×', undefined,
    w?.replicaDirectMedianMs !== undefined ? `replica-direct ${num(w.replicaDirectMedianMs)} ms, ${num(w.replicaDirectRetries, 2)} early reads per INSERT; tagged ÷ replica-direct ${num(w.ratioToReplicaDirect, 2)}×` : wtrDetail));
  rows.push(row('Write-then-read loop: tagged reads on replicas', w ? 100 * w.replicaShare : undefined, '%', { op: '≥', value: 90 },
    w ? `${num(w.taggedOnReplica)} of ${num(w.taggedReads)}` : wtrDetail));
  rows.push(row('Write-then-read loop: reads missing their own write', w?.missedOwnWrite, 'reads', { op: '=', value: 0 },
    w ? `of ${num(w.taggedReads * 4)} reads on all four connections` : wtrDetail));
  const lag = r.writeThenRead?.lag;
  const worst = lag && lag.replicas.length > 0 ? Math.max(...lag.replicas.map((x) => x.errorP95)) : undefined;
  rows.push(row('Lag estimate error against a heartbeat, p95 (worst replica)', worst, 'ms', { op: '≤', value: 20 },
    lag ? `${lag.replicas.map((x) => `${x.replica} ${num(x.errorP95, 1)} ms (${num(x.samples)} samples)`).join(', ')}; heartbeat every ${lag.heartbeatMs} ms` : wtrDetail));
  rows.push(row('Tagged reads on replicas under routing.max_lag 50 ms', lag ? 100 * lag.maxLag50.replicaShare : undefined, '%', { op: '≥', value: 90 },
    lag ? `${num(lag.maxLag50.onReplica)} of ${num(lag.maxLag50.reads)} during steady writes` : wtrDetail));
  const most = Math.max(0, ...r.idle.pgsplit.map((m) => m.clients));
  for (const queried of [false, true]) {
    const m = r.idle.pgsplit.find((x) => x.clients === most && x.queried === queried);
    const b = r.idle.pgbouncer.find((x) => x.clients === most && x.queried === queried);
    const kind = queried ? 'after one query' : 'startup only';
    const base = m ? `${num(most)} idle clients, ${kind}` : 'not run (--throughput-only)';
    rows.push(row(`Memory per idle client (${kind}), settled`, m?.perClientKiB, 'KiB', undefined,
      m ? `${base}: ${num(m.rss, 1)} MiB over a ${num(m.baseline, 1)} MiB baseline; PgBouncer ${num(b?.perClientKiB, 1)} KiB` : base));
    rows.push(row(`Memory per idle client (${kind}), 2 s after they arrived`, m?.perClientAfterConnectKiB, 'KiB', undefined,
      m ? `${base}: ${num(m.rssAfterConnect, 1)} MiB; PgBouncer ${num(b?.perClientAfterConnectKiB, 1)} KiB` : base));
  }
  return { rows, cpu, latency };
}

function signed(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '—' : `${v >= 0 ? '+' : '−'}${num(Math.abs(v), 0)}`;
}

function measuredText(h: HeadlineRow): string {
  if (h.measured === undefined) return '—';
  switch (h.unit) {
    case '×': return `${num(h.measured, 2)}×`;
    case 'µs': return `${signed(h.measured)} µs`;
    case 'ms': return `${num(h.measured, 1)} ms`;
    case '%': return `${num(h.measured, 1)} %`;
    case 'KiB': return `${num(h.measured, 1)} KiB`;
    case 'reads': return num(h.measured);
  }
}

function goalText(h: HeadlineRow): string {
  if (!h.goal) return '—';
  const v = h.unit === 'µs' ? `+${h.goal.value} µs` : h.unit === '×' ? `${h.goal.value}×` : h.unit === '%' ? `${h.goal.value} %` : h.unit === 'ms' ? `${h.goal.value} ms` : String(h.goal.value);
  return `${h.goal.op} ${v}`;
}

/** The "Headline" section of the report, as Markdown lines. */
export function headlineMarkdown(h: Headline): string[] {
  const L: string[] = ['## Headline', ''];
  L.push('Each goal, the figure this run measured (medians of its interleaved rounds) and whether the goal holds. ' +
    'The bare relay (`node-relay`) only forwards bytes: the floor for any Node proxy on this machine.', '');
  L.push('| figure | measured | goal | verdict | from |', '|---|---:|---:|---|---|');
  for (const r of h.rows) L.push(`| ${r.what} | ${measuredText(r)} | ${goalText(r)} | ${r.verdict === 'holds' || r.verdict === 'does not hold' ? `**${r.verdict}**` : r.verdict} | ${r.detail} |`);
  L.push('');
  L.push(`CPU time of the proxy per transaction, pgbench -S, ${CPU_CLIENTS} clients (µs; pgsplit's ratio to the relay and to PgBouncer):`, '');
  L.push('| mode | bare relay | PgBouncer | pgsplit untagged | pgsplit tagged |', '|---|---:|---:|---:|---:|');
  for (const c of h.cpu) {
    L.push(`| ${c.mode} | ${num(c.relay, 1)} | ${num(c.pgbouncer, 1)} | ${num(c.untagged, 1)} (${num(c.untaggedToRelay, 2)}× relay, ${num(c.untaggedToPgbouncer, 2)}× PgBouncer) | ` +
      `${num(c.tagged, 1)} (${num(c.taggedToRelay, 2)}× relay, ${num(c.taggedToPgbouncer, 2)}× PgBouncer) |`);
  }
  L.push('', 'Latency at 1 client, pgbench -S (ms, p50 / p99; pgsplit minus the relay in µs):', '');
  L.push('| mode | bare relay | pgsplit untagged | pgsplit tagged |', '|---|---:|---:|---:|');
  const pair = (x: { p50?: number; p99?: number } | undefined): string => `${num(x?.p50, 3)} / ${num(x?.p99, 3)}`;
  for (const l of h.latency) {
    L.push(`| ${l.mode} | ${pair(l.relay)} | ${pair(l.untagged)} (${signed(l.untaggedP50DiffUs)} / ${signed(l.untaggedP99DiffUs)} µs) | ` +
      `${pair(l.tagged)} (${signed(l.taggedP50DiffUs)} / ${signed(l.taggedP99DiffUs)} µs) |`);
  }
  L.push('');
  return L;
}
