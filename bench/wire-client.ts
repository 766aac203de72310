/**
 * The smallest PostgreSQL client the resource benchmarks need: a socket that completes startup (trust
 * authentication) and can then sit idle or read a query's answer at a pace it chooses. Lighter than
 * node-postgres, so thousands fit in the benchmark process without measuring the client instead.
 */
import net from 'node:net';
import { serialize } from '../src/codec/frontend-messages.js';
import { FrameReader } from '../src/codec/frame-reader.js';
import { Backend } from '../src/codec/message-types.js';
import { readErrorFields } from '../src/codec/message-fields.js';

/** Connects and waits for ReadyForQuery; rejects on an ErrorResponse or a close. */
export function connectIdle(port: number, params: Record<string, string> = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const reader = new FrameReader({ maxMessageSize: 1 << 30 });
    const onData = (chunk: Buffer): void => {
      for (const f of reader.push(chunk)) {
        if (f.type === Backend.ErrorResponse) {
          s.destroy();
          reject(new Error(readErrorFields(f.payload).M ?? 'startup refused'));
          return;
        }
        if (f.type === Backend.ReadyForQuery) {
          s.removeListener('data', onData);
          resolve(s);
          return;
        }
      }
    };
    s.on('connect', () => s.write(serialize.startup({ user: 'postgres', database: 'postgres', ...params })));
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed during startup')));
  });
}

export interface SlowReadResult {
  bytes: number;
  rows: number;
  seconds: number;
  /** Set when the server answered with an error instead of the rows. */
  error?: string;
}

/**
 * Sends `sql` on an idle connection and reads the answer slowly: nothing for `initialPauseMs`, then a
 * pause of `pauseMs` after every `pauseEveryBytes`. The proxy must hold the server back meanwhile
 * (backpressure), not buffer the result.
 */
export function readSlowly(s: net.Socket, sql: string, opts: { initialPauseMs: number; pauseEveryBytes: number; pauseMs: number }): Promise<SlowReadResult> {
  return new Promise((resolve) => {
    const reader = new FrameReader({ maxMessageSize: 1 << 30 });
    const started = performance.now();
    const r: SlowReadResult = { bytes: 0, rows: 0, seconds: 0 };
    let sincePause = 0;
    const pauseFor = (ms: number): void => {
      s.pause();
      setTimeout(() => s.resume(), ms);
    };
    s.on('data', (chunk: Buffer) => {
      r.bytes += chunk.length;
      sincePause += chunk.length;
      for (let t = (reader.feed(chunk), reader.next()); t >= 0; t = reader.next()) {
        if (t === Backend.DataRow) r.rows++;
        else if (t === Backend.ErrorResponse) r.error = readErrorFields(reader.frame(t).payload).M;
        else if (t === Backend.ReadyForQuery) {
          r.seconds = (performance.now() - started) / 1000;
          s.removeAllListeners('data');
          resolve(r);
          return;
        }
      }
      if (sincePause >= opts.pauseEveryBytes) {
        sincePause = 0;
        pauseFor(opts.pauseMs);
      }
    });
    s.write(serialize.query(sql));
    pauseFor(opts.initialPauseMs);
  });
}
