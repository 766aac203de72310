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
  /** Whether each client ran one query (`SELECT 1`) before going idle, or only completed startup. */
  queried: boolean;
  /** Resident memory of the proxy once settled with that many idle clients connected, MiB. */
  rss: number;
  /** Its resident memory 2 s after the last client connected, before it settled, MiB. */
  rssAfterConnect: number;
  /** Its resident memory, settled, before any client connected, MiB. */
  baseline: number;
  /** (rss - baseline) / clients, KiB. */
  perClientKiB: number;
  /** (rssAfterConnect - baseline) / clients, KiB. */
  perClientAfterConnectKiB: number;
  /** Server backends the proxy held meanwhile, when the caller could count them. */
  serverBackends?: number;
}

export interface IdleMemoryOptions {
  /** Each client runs `SELECT 1` before going idle (the state of a driver pool's idle connections). */
  query?: boolean;
  /**
   * Seconds the proxy is left alone before each reading (default 60). A Node process grows V8's young
   * generation while thousands of clients arrive at once and hands it back when it goes idle (V8's memory
   * reducer, some 30 s later): a reading taken at once measures that burst, not what the idle clients hold.
   */
  settleSeconds?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `SELECT 1` on a connected client and waits for its ReadyForQuery. */
function queryOnce(s: net.Socket): Promise<void> {
  const sql = 'SELECT 1';
  const msg = Buffer.alloc(6 + sql.length);
  msg[0] = 0x51; // Query
  msg.writeInt32BE(5 + sql.length, 1);
  msg.write(sql, 5, 'latin1');
  const ready = Buffer.from([0x5a, 0, 0, 0, 5]);
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.includes(ready)) {
        s.removeListener('data', onData);
        s.removeListener('close', onClose);
        resolve();
      }
    };
    const onClose = (): void => reject(new Error('closed before answering SELECT 1'));
    s.on('data', onData);
    s.once('close', onClose);
    s.write(msg);
  });
}

/**
 * Connects `counts` idle clients in turn (each count from zero, 50 connecting at a time), reads the
 * proxy's resident memory 2 s later and again once it has settled (see IdleMemoryOptions). The clients
 * complete startup (and with `query`, one query) and then send nothing. `countBackends`, when given, is
 * asked then how many server backends the proxy holds.
 */
export async function idleMemory(port: number, pid: number, counts: readonly number[], countBackends?: () => Promise<number>, opts: IdleMemoryOptions = {}): Promise<IdleMemory[]> {
  const out: IdleMemory[] = [];
  const settleMs = (opts.settleSeconds ?? 60) * 1000;
  const queried = opts.query === true;
  await sleep(settleMs);
  // Measured once: a process does not hand freed memory back at once, so a later count's "before"
  // would include the previous count's clients.
  const baseline = memoryMiB(pid).rss;
  for (const n of counts) {
    await sleep(1000);
    const sockets: net.Socket[] = [];
    try {
      while (sockets.length < n) {
        const batch = Math.min(50, n - sockets.length);
        sockets.push(...await Promise.all(Array.from({ length: batch }, async () => {
          const s = await connectIdle(port);
          if (queried) await queryOnce(s);
          return s;
        })));
      }
      await sleep(2000);
      const rssAfterConnect = memoryMiB(pid).rss;
      await sleep(settleMs);
      const rss = memoryMiB(pid).rss;
      const m: IdleMemory = {
        clients: n, queried, rss, rssAfterConnect, baseline,
        perClientKiB: ((rss - baseline) * 1024) / n,
        perClientAfterConnectKiB: ((rssAfterConnect - baseline) * 1024) / n,
      };
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
