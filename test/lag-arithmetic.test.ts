/**
 * The lag arithmetic of the replica monitor: WAL positions (pg_lsn) and lag in time from the primary's
 * position history (src/monitor/lag-tracker.ts), without servers: positions and times are given.
 */
import t from 'tap';
import { formatLsn, lsnBytesBehind, parseLsn, recordEndAt } from '../src/monitor/lsn.js';
import { LagTracker } from '../src/monitor/lag-tracker.js';

t.test('pg_lsn text and bytes', (t) => {
  const cases: Array<[string, bigint]> = [
    ['0/0', 0n],
    ['0/16B3748', 0x16b3748n],
    ['0/FFFFFFFF', 0xffffffffn],
    ['1/0', 0x100000000n],
    ['16/B374D848', (0x16n << 32n) | 0xb374d848n],
    ['FFFFFFFF/FFFFFFFF', (1n << 64n) - 1n],
  ];
  for (const [text, value] of cases) {
    t.equal(parseLsn(text), value, `parse ${text}`);
    t.equal(formatLsn(value), text, `format ${text}`);
  }
  t.equal(parseLsn('0/16b3748'), 0x16b3748n, 'lowercase hex');
  t.equal(parseLsn(' 0/1 '), 1n, 'surrounding space');
  for (const bad of ['', '0', '0/', '/1', '0/1/2', 'x/1', '0/123456789', '-1/0', '0x1/0']) t.equal(parseLsn(bad), null, `not an LSN: ${JSON.stringify(bad)}`);
  // Across the 32-bit half (a WAL segment boundary at 4 GiB): the difference is exact.
  t.equal(lsnBytesBehind(parseLsn('1/0')!, parseLsn('0/FFFFFFFF')!), 1, 'one byte across X/FFFFFFFF -> X+1/0');
  t.equal(lsnBytesBehind(parseLsn('1/1000')!, parseLsn('0/FFFFF000')!), 0x2000, '8 KiB across the boundary');
  t.equal(lsnBytesBehind(parseLsn('0/1000')!, parseLsn('0/2000')!), 0, 'not behind: 0');
  t.equal(lsnBytesBehind(parseLsn('0/3000000')!, parseLsn('0/1000000')!), 32 * 1024 * 1024, 'two 16 MiB segments');
  t.end();
});

t.test('time lag: caught up, behind, unknown', (t) => {
  const lag = new LagTracker();
  t.equal(lag.timeLag(0n, 0), null, 'no primary sample yet: unknown');
  t.equal(lag.bytesBehind(0n), null);
  // The primary writes steadily: 1000 bytes every 100 ms.
  for (let k = 0; k <= 50; k++) lag.recordPrimary(BigInt(1000 * k), 100 * k);
  const now = 5000;
  t.equal(lag.timeLag(50_000n, now), 0, 'replayed the latest position: current');
  t.equal(lag.timeLag(60_000n, now), 0, 'ahead of the latest sample (sampled later): current');
  t.equal(lag.timeLag(49_000n, now), 100, 'one sample behind: 100 ms');
  t.equal(lag.timeLag(49_500n, now), 50, 'between samples: placed in proportion to the bytes');
  t.equal(lag.timeLag(49_900n, now), 10, 'nine tenths of the way to the latest sample');
  t.equal(lag.timeLag(30_000n, now), 2000, '20 samples behind: 2 s');
  t.equal(lag.timeLag(0n, now), 5000, 'at the first recorded position');
  t.equal(lag.bytesBehind(30_000n), 20_000);
  t.equal(lag.timeLag(30_000n, now + 700), 2700, 'grows with time while the replica stands still');
  const old = new LagTracker();
  old.recordPrimary(5000n, 0);
  t.equal(old.timeLag(4999n, 10), null, 'older than the history: unknown');
  t.end();
});

t.test('time lag on an idle primary stays 0 for a current replica', (t) => {
  const lag = new LagTracker();
  lag.recordPrimary(0x3000060n, 0);
  // An hour of samples with no new WAL.
  for (let at = 100; at <= 3_600_000; at += 100) lag.recordPrimary(0x3000060n, at);
  t.equal(lag.timeLag(0x3000060n, 3_600_050), 0, 'replica at the primary position: 0 after an idle hour');
  t.equal(lag.primarySampledAt, 3_600_000);
  // The primary wakes up: a replica still at the old position is as old as the last idle sample.
  lag.recordPrimary(0x3000100n, 3_600_100);
  t.equal(lag.timeLag(0x3000060n, 3_600_150), 150, 'after the idle hour, lag counts from the last time the primary was seen there');
  t.end();
});

t.test('time lag of a replica held back by a fixed delay', (t) => {
  // The replica applies WAL 2 s after the primary wrote it; samples every 100 ms.
  const lag = new LagTracker();
  const delay = 2000;
  const interval = 100;
  const primaryAt = (time: number): bigint => BigInt(Math.floor(time / 7) * 64); // WAL grows all the time
  for (let time = 0; time <= 20_000; time += interval) {
    lag.recordPrimary(primaryAt(time), time);
    if (time >= 5000) {
      const measured = lag.timeLag(primaryAt(time - delay), time)!;
      t.ok(Math.abs(measured - delay) <= 7, `at ${time} ms: ${measured} ms, the delay to within the 7 ms grain of the WAL (one sample gap at most)`);
    }
  }
  t.end();
});

t.test('the history is bounded, and thins out with age instead of forgetting', (t) => {
  const lag = new LagTracker({ maxSamples: 100 });
  for (let k = 0; k < 10_000; k++) lag.recordPrimary(BigInt(k), k);
  t.ok(lag.size <= 100, `${lag.size} entries kept of 10 000 positions`);
  t.equal(lag.primaryLsn, 9999n);
  t.equal(lag.timeLag(9990n, 10_000), 10_000 - 9990, 'recent positions as finely as they were sampled');
  t.equal(lag.timeLag(0n, 10_000), 10_000, 'the oldest position is kept');
  for (const k of [1000, 5000, 9000]) {
    const l = lag.timeLag(BigInt(k), 10_000)!;
    t.ok(l !== null && Math.abs(l - (10_000 - k)) <= 1, `a position ${10_000 - k} ms old: ${l} ms (the primary wrote steadily, so thinning loses nothing)`);
  }
  const bursty = new LagTracker({ maxSamples: 100 });
  // Writes in bursts: 10 positions in a millisecond, then 9 idle milliseconds (still seen at the last one).
  for (let ms = 0; ms < 10_000; ms++) {
    if (ms % 10 === 0) for (let b = 0; b < 10; b++) bursty.recordPrimary(BigInt(ms + b), ms + b / 10);
    else bursty.recordPrimary(BigInt(ms - (ms % 10) + 9), ms);
  }
  const old = bursty.timeLag(2005n, 10_000)!;
  t.ok(old >= 7000 && old <= 8100, `an old position in a thinned part: ${old} ms (true 8000, known to a coarser grain)`);
  t.equal(lag.timeLag(9999n, 10_005), 0);
  // A stale answer (lower position) changes nothing.
  lag.recordPrimary(5n, 10_010);
  t.equal(lag.primaryLsn, 9999n);
  t.end();
});

t.test('insert positions past a page header become record ends', (t) => {
  const seg = 16n * 1024n * 1024n;
  t.equal(recordEndAt(parseLsn('0/3000028')!, seg), parseLsn('0/3000000')!, 'segment start + 40 (long header): the record ended at the boundary');
  t.equal(recordEndAt(parseLsn('0/3002018')!, seg), parseLsn('0/3002000')!, 'page start + 24 (short header)');
  t.equal(recordEndAt(parseLsn('0/3002028')!, seg), parseLsn('0/3002028')!, 'offset 40 of an ordinary page: a real record end');
  t.equal(recordEndAt(parseLsn('0/3000060')!, seg), parseLsn('0/3000060')!, 'mid-page: unchanged');
  t.equal(recordEndAt(parseLsn('1/28')!, seg), parseLsn('1/0')!, 'across the 32-bit half');
  t.equal(recordEndAt(parseLsn('0/1000028')!, 64n * 1024n * 1024n), parseLsn('0/1000028')!, '64 MiB segments: 16 MiB is not a segment start');
  t.end();
});

t.test('closely spaced positions share an entry: the history spans time, not requests', (t) => {
  const lag = new LagTracker({ maxSamples: 100, minSpacingMs: 50 });
  // A position every millisecond for 60 s (read-your-writes asks often).
  for (let at = 0; at <= 60_000; at++) lag.recordPrimary(BigInt(at * 10), at);
  t.equal(lag.primaryLsn, 600_000n);
  // Kept: at least maxSamples / 2 entries of minSpacingMs each, 2.5 s.
  const l = lag.timeLag(BigInt(58_000 * 10), 60_000);
  t.ok(l !== null && Math.abs(l - 2000) <= 50, `2 s behind after 60 000 positions in a 100-entry history: ${l} ms (within one spacing)`);
  const plain = new LagTracker({ maxSamples: 100 });
  for (let at = 0; at <= 60_000; at++) plain.recordPrimary(BigInt(at * 10), at);
  t.ok(plain.size <= 100, 'without spacing too, the history stays bounded');
  t.equal(lag.timeLag(600_000n, 60_000), 0);
  t.end();
});
