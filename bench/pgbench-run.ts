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

/** Runs pgbench; throws when it fails or reports failed transactions. */
export async function runPgbench(r: PgbenchRun): Promise<PgbenchResult> {
  const dir = r.latency ? await fsp.mkdtemp(path.join(os.tmpdir(), 'pgsplit-bench-log-')) : null;
  try {
    const args = ['-h', '127.0.0.1', '-p', String(r.port), '-U', 'postgres', r.load, '-M', r.mode, '-c', String(r.clients),
      '-j', String(Math.min(r.clients, 2)), '-T', String(r.seconds), ...(dir ? ['-l', `--log-prefix=${path.join(dir, 'tx')}`] : []), 'postgres'];
    const { stdout } = await execFileAsync(path.join(r.bin, 'pgbench'), args, { env: r.env, maxBuffer: 1 << 24, cwd: dir ?? os.tmpdir() });
    const failed = /number of failed transactions: (\d+)/.exec(stdout);
    if (failed && failed[1] !== '0') throw new Error(`pgbench reported failed transactions:\n${stdout}`);
    const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
    const n = /number of transactions actually processed: (\d+)/.exec(stdout);
    if (!m || !n) throw new Error(`no tps in pgbench output:\n${stdout}`);
    const result: PgbenchResult = { tps: Number(m[1]), transactions: Number(n[1]) };
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
