/**
 * Large results stream through pgsplit in bounded memory. pgsplit runs as a child process
 * (`node bin/pgsplit.js`, the built dist/) so its resident memory can be read from /proc/PID/status while
 * a slow client pulls a multi-gigabyte result through it: the client stops reading for 3 s at the start,
 * then pauses for 200 ms after every 50 MB. Backpressure must reach the server (the backend waits in
 * ClientWrite) instead of pgsplit buffering the result.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster } from './fixtures/proxy-fixture.js';

t.setTimeout(600_000);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/pgsplit.js');
const DIST_MAIN = path.join(ROOT, 'dist/src/cli/main.js');
const RSS_LIMIT_MB = 150;
const ROW_WIDTH = 1000;
/** DataRow length field for one text column of ROW_WIDTH bytes: itself (4) + column count (2) + value length (4) + value. */
const DATAROW_LEN = 4 + 2 + 4 + ROW_WIDTH;
const MB = 1024 * 1024;

// -------------------------------------------------------------------------------------------------------
// pgsplit as a child process, and its memory
// -------------------------------------------------------------------------------------------------------

interface Child {
  proc: ChildProcess;
  pid: number;
  port: number;
  /** Last lines pgsplit wrote to stderr (JSON logs), for diagnostics. */
  log: string[];
}

/**
 * tap puts its TypeScript loader and process-info hooks in NODE_OPTIONS (plus _TAPJS_* variables, and
 * NODE_V8_COVERAGE when measuring coverage), and its process-info hook re-adds them to the environment of
 * every process this test spawns, whatever env is passed. Loaded into pgsplit they add some 20 MiB to its
 * RSS that is not pgsplit's memory, so pgsplit is started through env(1) with them unset; env execs node
 * in place, so the child's PID is pgsplit's (checked below).
 */
const TAP_VARIABLES = ['NODE_OPTIONS', 'NODE_V8_COVERAGE', ...Object.keys(process.env).filter((k) => /^_?TAP/i.test(k))];

async function startPgsplit(tt: typeof t, args: string[]): Promise<Child> {
  const unset = [...new Set([...TAP_VARIABLES, '_TAPJS_PROCESSINFO_CWD_', '_TAPJS_PROCESSINFO_EXCLUDE_', '_TAPJS_PROCESSINFO_COVERAGE_',
    '_TAPJS_PROCESSINFO_COV_FILES_', '_TAPJS_PROCESSINFO_COV_EXCLUDE_FILES_', '_TAPJS_PROCESSINFO_COV_EXCLUDE_', '_TAPJS_PROCESSINFO_ROOT_',
    '_TAPJS_PROCESSINFO_PARENT_'])].flatMap((k) => ['-u', k]);
  const proc = spawn('/usr/bin/env', [...unset, process.execPath, BIN, '--listen', '127.0.0.1:0', '--log-level', 'info', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd: ROOT,
  });
  const log: string[] = [];
  tt.teardown(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  const port = await new Promise<number>((resolve, reject) => {
    let partial = '';
    const timer = setTimeout(() => reject(new Error(`pgsplit did not report listening within 15 s; stderr:\n${log.join('\n')}`)), 15_000);
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        log.push(line);
        if (log.length > 50) log.shift();
        try {
          const j = JSON.parse(line) as { msg?: string; listen?: string };
          if (j.msg === 'pgsplit listening' && typeof j.listen === 'string') {
            clearTimeout(timer);
            resolve(Number(j.listen.slice(j.listen.lastIndexOf(':') + 1)));
          }
        } catch {
          // not a JSON log line
        }
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`pgsplit exited (code ${code}, signal ${signal}) before listening; stderr:\n${log.join('\n')}`));
    });
  });
  const pid = proc.pid as number;
  const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').map((kv) => kv.slice(0, kv.indexOf('=')));
  tt.equal(cmdline[0], process.execPath, `PID ${pid} is node running pgsplit (${cmdline.slice(0, 2).join(' ')})`);
  tt.notOk(environ.includes('NODE_OPTIONS') || environ.includes('NODE_V8_COVERAGE'), 'pgsplit runs without NODE_OPTIONS and NODE_V8_COVERAGE (no tap hooks or coverage in it)');
  return { proc, pid, port, log };
}

/** VmRSS and VmHWM (peak RSS so far) of a process, in MiB. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

class RssSampler {
  readonly samples: Array<{ at: number; rss: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();

  constructor(private readonly pid: number, everyMs = 100) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    try {
      this.samples.push({ at: Date.now() - this.started, rss: memoryOf(this.pid).rss });
    } catch {
      // the process is gone; the test notices elsewhere
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  get peak(): { at: number; rss: number } {
    return this.samples.reduce((a, b) => (b.rss > a.rss ? b : a), { at: 0, rss: 0 });
  }

  /** RSS at a few percentiles, for the report. */
  percentiles(): string {
    const sorted = this.samples.map((s) => s.rss).sort((a, b) => a - b);
    const p = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN).toFixed(1);
    return `p50 ${p(0.5)} MiB, p90 ${p(0.9)} MiB, p99 ${p(0.99)} MiB, max ${p(1)} MiB over ${sorted.length} samples`;
  }
}

// -------------------------------------------------------------------------------------------------------
// A raw client that parses the stream as it arrives and keeps nothing of the rows
// -------------------------------------------------------------------------------------------------------

interface Msg {
  type: string;
  /** Length field (includes itself). */
  len: number;
  /** The body, or only its first bytes for a large DataRow. */
  head: Buffer;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
}

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

function errorText(payload: Buffer): string {
  return payload.toString('utf8').split('\0').filter((f) => f.length > 0).map((f) => `${f[0]}=${f.slice(1)}`).join(' ');
}

class StreamingClient {
  readonly socket: net.Socket;
  bytes = 0;
  private hdr = Buffer.alloc(5);
  private hdrGot = 0;
  private remaining = 0;
  private type = 0;
  private len = 0;
  private capture: Buffer = Buffer.alloc(0);
  private capGot = 0;
  onMessage: (m: Msg) => void = () => undefined;
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.push(chunk));
    socket.on('close', () => {
      this.closed = true;
      this.onMessage({ type: 'closed', len: 0, head: Buffer.alloc(0) });
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number, params: Record<string, string>): Promise<StreamingClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const c = new StreamingClient(socket);
    const body = Buffer.concat([int32(196608), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0])]);
    socket.write(Buffer.concat([int32(body.length + 4), body]));
    const startup = await c.collectUntilReady();
    const err = startup.find((m) => m.type === 'E');
    if (err) throw new Error(`startup refused: ${errorText(err.head)}`);
    return c;
  }

  private push(chunk: Buffer): void {
    this.bytes += chunk.length;
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      if (this.hdrGot < 5) {
        const k = Math.min(5 - this.hdrGot, n - off);
        chunk.copy(this.hdr, this.hdrGot, off, off + k);
        this.hdrGot += k;
        off += k;
        if (this.hdrGot === 5) {
          this.type = this.hdr[0] as number;
          this.len = this.hdr.readInt32BE(1);
          this.remaining = this.len - 4;
          // A DataRow keeps only its first 14 bytes (column count, value length, 8 bytes of value).
          const keep = this.type === 0x44 && this.remaining > 64 ? 14 : this.remaining;
          this.capture = Buffer.allocUnsafe(keep);
          this.capGot = 0;
          if (this.remaining === 0) this.finish();
        }
        continue;
      }
      const k = Math.min(this.remaining, n - off);
      if (this.capGot < this.capture.length) {
        const c = Math.min(this.capture.length - this.capGot, k);
        chunk.copy(this.capture, this.capGot, off, off + c);
        this.capGot += c;
      }
      off += k;
      this.remaining -= k;
      if (this.remaining === 0) this.finish();
    }
  }

  private finish(): void {
    this.hdrGot = 0;
    this.onMessage({ type: String.fromCharCode(this.type), len: this.len, head: this.capture });
  }

  collectUntilReady(timeoutMs = 30_000): Promise<Msg[]> {
    return new Promise((resolve, reject) => {
      const out: Msg[] = [];
      const timer = setTimeout(() => reject(new Error(`no ReadyForQuery within ${timeoutMs} ms`)), timeoutMs);
      this.onMessage = (m) => {
        if (m.type === 'closed') {
          clearTimeout(timer);
          reject(new Error(`connection closed; got ${out.map((x) => x.type).join('')}`));
          return;
        }
        out.push(m);
        if (m.type === 'Z') {
          clearTimeout(timer);
          this.onMessage = () => undefined;
          resolve(out);
        }
      };
    });
  }

  async smallQuery(sql: string): Promise<string[]> {
    this.socket.write(Buffer.concat([Buffer.from('Q'), int32(4 + Buffer.byteLength(sql) + 1), cstr(sql)]));
    const msgs = await this.collectUntilReady();
    const err = msgs.find((m) => m.type === 'E');
    if (err) throw new Error(errorText(err.head));
    return msgs.filter((m) => m.type === 'D').map((m) => {
      const len = m.head.readInt32BE(2);
      return len < 0 ? 'NULL' : m.head.toString('utf8', 6, 6 + len);
    });
  }

  end(): void {
    this.socket.end(Buffer.from([0x58, 0, 0, 0, 4]));
  }
}

// -------------------------------------------------------------------------------------------------------

interface StreamResult {
  rows: number;
  badRows: number;
  firstBad: string | undefined;
  tag: string | undefined;
  error: string | undefined;
  bytes: number;
  wallMs: number;
  pausedMs: number;
  pauses: number;
  firstByteMs: number;
  backendWaitDuringPause: string | null | undefined;
  rssDuringPause: number[];
}

/**
 * Sends the query, reads nothing for `initialPauseMs`, then reads with a `pauseMs` pause after every
 * `pauseEveryBytes`, counting DataRows and checking each one's shape.
 */
function streamBigQuery(
  c: StreamingClient,
  sql: string,
  opts: { initialPauseMs: number; pauseEveryBytes: number; pauseMs: number; pid?: number; duringPause?: () => Promise<string | null | undefined> },
): Promise<StreamResult> {
  const expectHead = Buffer.concat([Buffer.from([0, 1]), int32(ROW_WIDTH), Buffer.from('xxxxxxxx')]);
  return new Promise((resolve, reject) => {
    const r: StreamResult = {
      rows: 0, badRows: 0, firstBad: undefined, tag: undefined, error: undefined, bytes: 0, wallMs: 0, pausedMs: 0, pauses: 0,
      firstByteMs: -1, backendWaitDuringPause: undefined, rssDuringPause: [],
    };
    const startBytes = c.bytes;
    const start = Date.now();
    let sincePause = 0;
    c.onMessage = (m) => {
      if (m.type === 'D') {
        if (m.len === DATAROW_LEN && m.head.equals(expectHead)) r.rows++;
        else {
          r.badRows++;
          r.firstBad ??= `len ${m.len} head ${m.head.toString('hex')}`;
        }
        return;
      }
      if (m.type === 'C') r.tag = m.head.toString('utf8', 0, m.head.length - 1);
      else if (m.type === 'E') r.error = errorText(m.head);
      else if (m.type === 'closed') {
        c.socket.removeListener('data', onData);
        reject(new Error(`connection closed after ${r.rows} rows (${r.error ?? 'no error message'})`));
      } else if (m.type === 'Z') {
        r.wallMs = Date.now() - start;
        r.bytes = c.bytes - startBytes;
        c.socket.removeListener('data', onData);
        resolve(r);
      }
    };
    const onData = (chunk: Buffer) => {
      if (r.firstByteMs < 0) r.firstByteMs = Date.now() - start;
      sincePause += chunk.length;
      if (sincePause >= opts.pauseEveryBytes) {
        sincePause = 0;
        r.pauses++;
        r.pausedMs += opts.pauseMs;
        c.socket.pause();
        setTimeout(() => c.socket.resume(), opts.pauseMs);
      }
    };
    c.socket.on('data', onData);
    // Pause before the first byte can arrive, then send.
    c.socket.pause();
    c.socket.write(Buffer.concat([Buffer.from('Q'), int32(4 + Buffer.byteLength(sql) + 1), cstr(sql)]));
    r.pausedMs += opts.initialPauseMs;
    const pid = opts.pid;
    const rssTimer = setInterval(() => {
      try {
        if (pid !== undefined) r.rssDuringPause.push(memoryOf(pid).rss);
      } catch {
        // gone
      }
    }, 250);
    const duringPause = opts.duringPause;
    if (duringPause) {
      setTimeout(() => {
        duringPause().then((w) => {
          r.backendWaitDuringPause = w;
        }, (e: Error) => {
          r.backendWaitDuringPause = `query failed: ${e.message}`;
        });
      }, Math.max(0, opts.initialPauseMs - 700));
    }
    setTimeout(() => {
      clearInterval(rssTimer);
      c.socket.resume();
    }, opts.initialPauseMs);
  });
}

// -------------------------------------------------------------------------------------------------------

if (!fs.existsSync(DIST_MAIN)) {
  t.fail(`${DIST_MAIN} is missing: build first with npx tsc -p tsconfig.json (npm test does this)`);
} else {
  const srcMtime = fs.statSync(path.join(ROOT, 'src/session/session.ts')).mtimeMs;
  const distMtime = fs.statSync(path.join(ROOT, 'dist/src/session/session.js')).mtimeMs;
  if (distMtime < srcMtime) t.comment('warning: dist/ is older than src/; rebuild with npx tsc -p tsconfig.json to measure the current code');

  const cluster = await startCluster(t, { replicas: 1 });
  const replica = cluster.replicas[0];
  if (!replica) throw new Error('cluster without a replica');
  const child = await startPgsplit(t, ['--primary', cluster.primary.url(), '--replica', replica.url()]);
  t.comment(`pgsplit child process pid ${child.pid} on 127.0.0.1:${child.port}`);
  const startMem = memoryOf(child.pid);

  const runs: Array<{ label: string; rows: number; params: Record<string, string>; node: typeof replica; recovery: string }> = [
    { label: 'untagged (primary)', rows: 2_200_000, params: {}, node: cluster.primary, recovery: 'false' },
    { label: 'tagged (replica)', rows: 1_100_000, params: { options: '-c pgsplit.route=replica' }, node: replica, recovery: 'true' },
  ];

  let baseline = NaN;
  for (const run of runs) {
    t.test(`${run.label}: ${run.rows.toLocaleString('en-US')} rows of ${ROW_WIDTH} bytes through pgsplit, read slowly`, async (t) => {
      const c = await StreamingClient.connect(child.port, { user: 'postgres', database: 'postgres', application_name: 'pgsplit-streaming-test', ...run.params });
      t.same(await c.smallQuery('SELECT pg_is_in_recovery()::text'), [run.recovery], `the session runs on ${run.node.name}`);
      t.same(await c.smallQuery('SELECT count(*)::text FROM generate_series(1, 1000)'), ['1000'], 'a small query works');

      // Baseline: pgsplit with this session open and idle.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const base = [0, 1, 2, 3, 4].map(() => memoryOf(child.pid).rss).sort((a, b) => a - b)[2] ?? NaN;
      if (Number.isNaN(baseline)) baseline = base;

      const marker = `streaming_${run.rows}`;
      const sql = `SELECT repeat('x', ${ROW_WIDTH}) AS ${marker} FROM generate_series(1, ${run.rows})`;
      const sampler = new RssSampler(child.pid, 100);
      const result = await streamBigQuery(c, sql, {
        initialPauseMs: 3000,
        pauseEveryBytes: 50 * MB,
        pauseMs: 200,
        pid: child.pid,
        duringPause: async () => {
          const rows = await run.node.query<{ wait_event: string | null }>(
            "SELECT wait_event FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()",
            [`%AS ${marker}%`],
          );
          return rows.map((r) => r.wait_event ?? 'none').join(',') || null;
        },
      });
      sampler.stop();
      const after = memoryOf(child.pid);
      const peak = sampler.peak;
      const activeMs = Math.max(1, result.wallMs - result.pausedMs);

      t.equal(result.error, undefined, 'no ErrorResponse');
      t.equal(result.badRows, 0, `every DataRow has the expected shape${result.firstBad ? ` (first bad: ${result.firstBad})` : ''}`);
      t.equal(result.rows, run.rows, `all ${run.rows} DataRows arrived`);
      t.equal(result.tag, `SELECT ${run.rows}`, `CommandComplete says SELECT ${run.rows}`);
      t.equal(result.backendWaitDuringPause, 'ClientWrite', 'while the client is not reading, the server backend waits in ClientWrite (backpressure reaches the server)');
      t.ok(peak.rss < RSS_LIMIT_MB, `sampled peak RSS ${peak.rss.toFixed(1)} MiB < ${RSS_LIMIT_MB} MiB`);
      t.ok(after.hwm < RSS_LIMIT_MB, `kernel high-water mark VmHWM ${after.hwm.toFixed(1)} MiB < ${RSS_LIMIT_MB} MiB`);
      const pauseMax = Math.max(...result.rssDuringPause);
      t.ok(pauseMax - base < 50, `RSS during the initial 3 s pause stays near the baseline (max ${pauseMax.toFixed(1)} MiB)`);

      t.comment(`pgsplit RSS: at start ${startMem.rss.toFixed(1)} MiB; baseline with an idle session ${base.toFixed(1)} MiB; ` +
        `sampled peak ${peak.rss.toFixed(1)} MiB at +${(peak.at / 1000).toFixed(1)} s; VmHWM ${after.hwm.toFixed(1)} MiB; after ${after.rss.toFixed(1)} MiB`);
      t.comment(`RSS distribution while streaming: ${sampler.percentiles()}`);
      t.comment(`RSS during the initial pause: ${result.rssDuringPause.map((x) => x.toFixed(1)).join(' ')} MiB`);
      t.comment(`streamed ${(result.bytes / MB).toFixed(0)} MiB (${result.rows} rows) in ${(result.wallMs / 1000).toFixed(1)} s wall, ` +
        `${result.pauses} pauses + 3 s initial = ${(result.pausedMs / 1000).toFixed(1)} s paused; ` +
        `throughput excluding pauses ${((result.bytes / MB) / (activeMs / 1000)).toFixed(0)} MiB/s; first byte read at +${result.firstByteMs} ms`);

      // The session is still usable afterwards.
      t.same(await c.smallQuery('SELECT 1::text'), ['1'], 'the session works after the big result');
      c.end();
    });
  }

  t.test('throughput at full speed: direct to the primary vs through pgsplit', async (t) => {
    const rows = 1_100_000;
    const sql = `SELECT repeat('x', ${ROW_WIDTH}) FROM generate_series(1, ${rows})`;
    const fast = { initialPauseMs: 0, pauseEveryBytes: Number.POSITIVE_INFINITY, pauseMs: 0 };
    const figures: string[] = [];
    for (const [label, port] of [['direct', cluster.primary.port], ['pgsplit', child.port], ['direct', cluster.primary.port], ['pgsplit', child.port]] as const) {
      const c = await StreamingClient.connect(port, { user: 'postgres', database: 'postgres' });
      const r = await streamBigQuery(c, sql, fast);
      t.equal(r.rows, rows, `${label}: all rows`);
      figures.push(`${label} ${((r.bytes / MB) / (r.wallMs / 1000)).toFixed(0)} MiB/s (${(r.wallMs / 1000).toFixed(1)} s)`);
      c.end();
    }
    t.comment(`full-speed ${rows} rows (${((rows * (DATAROW_LEN + 1)) / MB).toFixed(0)} MiB): ${figures.join('; ')}`);
    t.comment(`pgsplit RSS after the full-speed runs: ${memoryOf(child.pid).rss.toFixed(1)} MiB, VmHWM ${memoryOf(child.pid).hwm.toFixed(1)} MiB`);
    t.ok(memoryOf(child.pid).hwm < RSS_LIMIT_MB, `VmHWM stays under ${RSS_LIMIT_MB} MiB at full speed too`);
  });

  t.test('pgsplit is still running and answers', async (t) => {
    t.equal(child.proc.exitCode, null, 'the child process has not exited');
    const c = await StreamingClient.connect(child.port, { user: 'postgres', database: 'postgres' });
    t.same(await c.smallQuery('SELECT 42::text'), ['42']);
    c.end();
    t.comment(`pgsplit baseline RSS ${baseline.toFixed(1)} MiB, VmHWM over the whole test ${memoryOf(child.pid).hwm.toFixed(1)} MiB`);
  });
}
