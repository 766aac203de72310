/**
 * Readers of the config's scalar values: sizes ('64MB'), durations ('10s'), connection counts and
 * lists of strings, each with its range and an error message that says what to write instead.
 */
import { show, describe, type ConfigContext } from './config-context.js';

const MIN_MESSAGE_SIZE = 1024;
const MAX_MESSAGE_SIZE = 1024 * 1024 * 1024;
const MAX_CLIENT_CONNECTIONS = 1_000_000;
const MAX_DURATION_MS = 24 * 60 * 60 * 1000;

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
};

/** Parse a size: a number of bytes, or '512kB' / '64MB' / '1GB' (binary multiples). NaN when not a size. */
export function parseSize(v: unknown): number {
  if (typeof v === 'number') return Number.isInteger(v) ? v : NaN;
  if (typeof v !== 'string') return NaN;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(v);
  if (m === null) return NaN;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return NaN;
  return Math.floor(Number(m[1]) * unit);
}

const DURATION_UNITS: Record<string, number> = {
  '': 1, ms: 1, s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000, h: 3_600_000, hour: 3_600_000, hours: 3_600_000,
};

/** Parse a duration: a number of milliseconds, or '500ms' / '10s' / '1min' / '1h'. NaN when not a duration. */
export function parseDuration(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.round(v) : NaN;
  if (typeof v !== 'string') return NaN;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(v);
  if (m === null) return NaN;
  const unit = DURATION_UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return NaN;
  return Math.round(Number(m[1]) * unit);
}

export function sizeFromRaw(v: unknown, key: string, dflt: number, ctx: ConfigContext): number {
  if (v === undefined || v === null) return dflt;
  const n = parseSize(v);
  if (Number.isNaN(n)) {
    ctx.fail(key, `${show(v)} is not a size; write a number of bytes or a number with a unit: 512kB, 64MB, 1GB`);
  }
  if (n < MIN_MESSAGE_SIZE || n > MAX_MESSAGE_SIZE) {
    ctx.fail(key, `${show(v)} is out of range; write a size from 1kB to 1GB, e.g. 64MB`);
  }
  return n;
}

/** A whole number of connections from `min` to MAX_CLIENT_CONNECTIONS. */
export function countFromRaw(v: unknown, key: string, dflt: number, min: number, ctx: ConfigContext, example: string): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_CLIENT_CONNECTIONS) {
    ctx.fail(key, `${show(v)} is not a connection count; write a whole number from ${min} to ${MAX_CLIENT_CONNECTIONS}, e.g. ${key.split('.').pop() ?? key}: ${example}`);
  }
  return v;
}

/** A duration where 0 turns the feature off (as 0 does for PostgreSQL's timeouts). */
export function durationOrOffFromRaw(v: unknown, key: string, dflt: number, ctx: ConfigContext, example: string): number {
  return v === 0 || v === '0' ? 0 : durationFromRaw(v, key, dflt, ctx, example);
}

export function durationFromRaw(v: unknown, key: string, dflt: number, ctx: ConfigContext, example: string): number {
  if (v === undefined || v === null) return dflt;
  const n = parseDuration(v);
  if (Number.isNaN(n)) {
    ctx.fail(key, `${show(v)} is not a duration; write milliseconds or a number with a unit: 500ms, ${example}, 1min`);
  }
  if (n < 1 || n > MAX_DURATION_MS) {
    ctx.fail(key, `${show(v)} is out of range; write a duration from 1ms to 24h, e.g. ${example}`);
  }
  return n;
}

export function stringList(v: unknown, key: string, ctx: ConfigContext, example: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) ctx.fail(key, `must be a list, not ${describe(v)}; write ${key.split('.').pop() ?? key}: [${example}]`);
  return v.map((item: unknown, i) => {
    if (typeof item !== 'string' || item === '') {
      ctx.fail(`${key}[${i}]`, `must be a non-empty string, not ${describe(item)}; write a pattern such as ${example}`);
    }
    return item;
  });
}
