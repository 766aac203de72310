/**
 * One pgbench run against one target: transactions per second, and when asked the per-transaction
 * latencies (pgbench's -l log) as percentiles.
 */
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface PgbenchResult {
  tps: number;
  transactions: number;
  /** Latency percentiles in milliseconds, when `latency` was asked for. */
  p50?: number;
  p99?: number;
}

export interface PgbenchRun {
  bin: string;
  port: number;
  /** `-S` (select-only) or `-N` (simple update, no branch/teller contention). */
  load: string;
  mode: 'simple' | 'extended' | 'prepared';
  clients: number;
  seconds: number;
  env: NodeJS.ProcessEnv;
  /** Log every transaction's latency (adds pgbench's own logging cost to every target alike). */
  latency?: boolean;
}

/**
 * What one pgbench run reported, failures included: `failed` is pgbench's own count of failed
 * transactions (serialization and deadlock failures it gave up on), `aborted` the clients it stopped
 * after an error (an error that is not retried ends the client: "client N script 0 aborted ..."), with
 * the distinct error messages. tps and transactions cover what ran before an abort (pgbench still
 * prints them, marked incomplete); both are 0 when pgbench printed none (e.g. a refused connection).
 */
export interface PgbenchOutcome extends PgbenchResult {
  failed: number;
  aborted: number;
  exitCode: number;
  /** Distinct error lines from stderr (at most 5), client numbers left out. */
  errors: string[];
  stdout: string;
}

/** The pgbench command line of a run; `logDir` adds the per-transaction log. */
function pgbenchArgs(r: PgbenchRun, logDir: string | null): string[] {
  return ['-h', '127.0.0.1', '-p', String(r.port), '-U', 'postgres', r.load, '-M', r.mode, '-c', String(r.clients),
    '-j', String(Math.min(r.clients, 2)), '-T', String(r.seconds), ...(logDir ? ['-l', `--log-prefix=${path.join(logDir, 'tx')}`] : []), 'postgres'];
}

/** Reads pgbench's summary and error lines. */
export function parsePgbenchOutput(stdout: string, stderr: string, exitCode: number): PgbenchOutcome {
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
  const n = /number of transactions actually processed: (\d+)/.exec(stdout);
  const failed = /number of failed transactions: (\d+)/.exec(stdout);
  const abortLines = stderr.split('\n').filter((l) => /client \d+ (script \d+ )?aborted/.test(l));
  const errors = new Set<string>();
  for (const l of stderr.split('\n')) {
    if (!/error|fatal/i.test(l) || /Run was aborted/.test(l)) continue;
    // pgbench's threads write stderr at once, so their prefixes can interleave ("pgbench:pgbench: error:
    // error: ERROR: ..."): keep the server's message when there is one, else the line without prefixes.
    const server = /(?:ERROR|FATAL):\s+(.*)$/.exec(l);
    errors.add(server ? server[0].replace(/:\s+/, ': ') : l.replace(/^(?:pgbench:\s*)+(?:error:\s*)*/, '').replace(/client \d+/g, 'client N').trim());
    if (errors.size >= 5) break;
  }
  return {
    tps: tps ? Number(tps[1]) : 0,
    transactions: n ? Number(n[1]) : 0,
    failed: failed ? Number(failed[1]) : 0,
    aborted: abortLines.length,
    exitCode,
    errors: [...errors],
    stdout,
  };
}

/** Runs pgbench and reports what it printed; never throws for a failed run (see PgbenchOutcome). */
export async function pgbenchOutcome(r: PgbenchRun, logDir: string | null = null): Promise<PgbenchOutcome> {
  try {
    const { stdout, stderr } = await execFileAsync(path.join(r.bin, 'pgbench'), pgbenchArgs(r, logDir), { env: r.env, maxBuffer: 1 << 26, cwd: logDir ?? os.tmpdir() });
    return parsePgbenchOutput(stdout, stderr, 0);
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; code?: number | string };
    if (x.stdout === undefined) throw e; // pgbench did not run at all
    return parsePgbenchOutput(x.stdout, x.stderr ?? '', typeof x.code === 'number' ? x.code : 1);
  }
}

/** Runs pgbench; throws when it fails or reports failed transactions. */
export async function runPgbench(r: PgbenchRun): Promise<PgbenchResult> {
  const dir = r.latency ? await fsp.mkdtemp(path.join(os.tmpdir(), 'pgsplit-bench-log-')) : null;
  try {
    const o = await pgbenchOutcome(r, dir);
    if (o.exitCode !== 0 || o.failed > 0 || o.aborted > 0) throw new Error(`pgbench failed (exit ${o.exitCode}, ${o.failed} failed transactions, ${o.aborted} clients aborted): ${o.errors.join('; ')}\n${o.stdout}`);
    if (o.transactions === 0) throw new Error(`no tps in pgbench output:\n${o.stdout}`);
    const result: PgbenchResult = { tps: o.tps, transactions: o.transactions };
    if (dir) {
      const lat: number[] = [];
      for (const f of await fsp.readdir(dir)) {
        // Each line: client_id transaction_no time(us) script_no time_epoch time_us
        for (const line of (await fsp.readFile(path.join(dir, f), 'utf8')).split('\n')) {
          const us = Number(line.split(' ')[2]);
          if (line.length > 0 && Number.isFinite(us)) lat.push(us);
        }
      }
      lat.sort((a, b) => a - b);
      const pct = (p: number): number => (lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] ?? 0) / 1000;
      result.p50 = pct(50);
      result.p99 = pct(99);
    }
    return result;
  } finally {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** The middle value (upper median for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] as number);
}
