/**
 * What pgsplit costs at scale, besides throughput: memory with many idle clients, and memory and
 * throughput while one slow client reads a result far larger than memory.
 */
import type net from 'node:net';
import { connectIdle, readSlowly } from './wire-client.js';
import { memoryMiB } from './process-usage.js';
import { runPgbench } from './pgbench-run.js';

export interface IdleMemory {
  clients: number;
  /** Resident memory of the proxy with that many idle clients connected, MiB. */
  rss: number;
  /** Its resident memory before any client connected, MiB. */
  baseline: number;
  /** (rss - baseline) / clients, KiB. */
  perClientKiB: number;
  /** Server backends the proxy held meanwhile, when the caller could count them. */
  serverBackends?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Connects `counts` idle clients in turn (each count from zero, 50 connecting at a time), waits for the
 * proxy to settle, and reads its resident memory. The clients complete startup and then send nothing.
 * `countBackends`, when given, is asked then how many server backends the proxy holds.
 */
export async function idleMemory(port: number, pid: number, counts: readonly number[], countBackends?: () => Promise<number>): Promise<IdleMemory[]> {
  const out: IdleMemory[] = [];
  await sleep(1000);
  // Measured once: a process does not hand freed memory back at once, so a later count's "before"
  // would include the previous count's clients.
  const baseline = memoryMiB(pid).rss;
  for (const n of counts) {
    await sleep(1000);
    const sockets: net.Socket[] = [];
    try {
      while (sockets.length < n) {
        const batch = Math.min(50, n - sockets.length);
        sockets.push(...await Promise.all(Array.from({ length: batch }, () => connectIdle(port))));
      }
      await sleep(2000);
      const rss = memoryMiB(pid).rss;
      const m: IdleMemory = { clients: n, rss, baseline, perClientKiB: ((rss - baseline) * 1024) / n };
      if (countBackends) m.serverBackends = await countBackends();
      out.push(m);
    } finally {
      for (const s of sockets) s.destroy();
    }
  }
  await sleep(1000);
  return out;
}

export interface SlowClientResult {
  /** Bytes the slow client read (the whole result), and how long it took. */
  bytes: number;
  seconds: number;
  /** Its average read rate, MiB/s (pauses included). */
  mibPerSecond: number;
  /** Proxy resident memory before, and at most while sampled during the read, MiB. */
  rssBefore: number;
  rssPeak: number;
  /** pgbench -S tps of other clients through the proxy, alone and while the slow client reads. */
  tpsAlone: number;
  tpsDuring: number;
  error?: string;
}

/**
 * One client asks for `bytes` of rows and reads them slowly (a 2 s pause first, then 200 ms after every
 * 64 MiB); meanwhile 8 pgbench clients run select-only through the same proxy. The proxy's memory is
 * sampled every 100 ms.
 */
export async function slowClient(opts: { port: number; pid: number; bytes: number; bin: string; env: NodeJS.ProcessEnv; pgbenchSeconds: number }): Promise<SlowClientResult> {
  const rowBytes = 1000;
  const rows = Math.ceil(opts.bytes / (rowBytes + 11)); // DataRow header + column length
  const rssBefore = memoryMiB(opts.pid).rss;
  const bench = { bin: opts.bin, port: opts.port, load: '-S', mode: 'simple' as const, clients: 8, seconds: opts.pgbenchSeconds, env: opts.env };
  const alone = await runPgbench(bench);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, memoryMiB(opts.pid).rss);
  }, 100);
  try {
    const s = await connectIdle(opts.port);
    const reading = readSlowly(s, `SELECT repeat('x', ${rowBytes}) FROM generate_series(1, ${rows})`, { initialPauseMs: 2000, pauseEveryBytes: 64 << 20, pauseMs: 200 });
    const during = await runPgbench(bench);
    const r = await reading;
    s.destroy();
    rssPeak = Math.max(rssPeak, memoryMiB(opts.pid).rss);
    return {
      bytes: r.bytes, seconds: r.seconds, mibPerSecond: r.bytes / 1048576 / r.seconds, rssBefore, rssPeak,
      tpsAlone: alone.tps, tpsDuring: during.tps, ...(r.error !== undefined ? { error: r.error } : {}),
    };
  } finally {
    clearInterval(sampler);
  }
}
