import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process logger: JSON lines on stderr so stdout stays free for command output (explain, demo).
 * Child loggers carry a connection id; query parameters and passwords are never passed to a logger.
 */
export function createLogger(level: string = process.env.PGSPLIT_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { app: 'pgsplit' }, redact: ['password', '*.password'] }, pino.destination(2));
}

/** A logger that drops everything, for tests and embedded use. */
export const silentLogger: Logger = pino({ level: 'silent' });
