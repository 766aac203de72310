import { pino, type Logger } from 'pino';

export type { Logger };

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * One pino JSON line as a person reads it on a terminal: `12:34:56.789 WARN  message key=value ...`.
 * Written here rather than with pino-pretty: a dozen lines, and no worker thread or extra dependency.
 */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { time, level, msg, app: _app, pid: _pid, hostname: _host, ...rest } = o;
  const t = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const lv = (LEVEL_NAMES[level as number] ?? String(level)).padEnd(5);
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  return `${t} ${lv} ${String(msg ?? '')}${fields ? `  ${fields}` : ''}\n`;
}

/**
 * The process logger, on stderr so stdout stays free for command output (explain, demo). JSON lines by
 * default; human-readable when stderr is a terminal (PGSPLIT_LOG_FORMAT=json or pretty overrides).
 * Sessions log through child loggers carrying their connection id; query texts, query parameters and
 * passwords are never passed to a logger (and password fields are redacted should one slip in).
 */
export function createLogger(level: string = process.env.PGSPLIT_LOG_LEVEL ?? 'info'): Logger {
  const format = process.env.PGSPLIT_LOG_FORMAT || (process.stderr.isTTY ? 'pretty' : 'json');
  const options = { level, base: { app: 'pgsplit' }, redact: ['password', '*.password'] };
  if (format === 'pretty') return pino(options, { write: (line: string) => process.stderr.write(prettyLine(line)) });
  return pino(options, pino.destination(2));
}

/** A logger that drops everything, for tests and embedded use. */
export const silentLogger: Logger = pino({ level: 'silent' });
