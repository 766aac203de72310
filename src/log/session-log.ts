import type { Logger } from './logger.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What a session and its parts log through: a pino Logger fits, and so does SessionLog. */
export type LogSink = Record<LogLevel, (obj: object, msg: string) => void>;

/**
 * A session's logger: lines carry the session's id, as a pino child logger's would, but the child is
 * made only when a line is first written at an enabled level. A pino child costs some 200 bytes, kept
 * by every idle client that never logs anything (at the default level, almost all of them). The
 * level is the process logger's at each call, so a reload's `log.level` reaches running sessions too.
 */
export class SessionLog implements LogSink {
  private child: Logger | null = null;

  constructor(private readonly parent: Logger, private readonly session: number) {}

  private get logger(): Logger {
    return (this.child ??= this.parent.child({ session: this.session }));
  }

  debug(obj: object, msg: string): void {
    if (this.parent.isLevelEnabled('debug')) this.logger.debug(obj, msg);
  }

  info(obj: object, msg: string): void {
    if (this.parent.isLevelEnabled('info')) this.logger.info(obj, msg);
  }

  warn(obj: object, msg: string): void {
    if (this.parent.isLevelEnabled('warn')) this.logger.warn(obj, msg);
  }

  error(obj: object, msg: string): void {
    if (this.parent.isLevelEnabled('error')) this.logger.error(obj, msg);
  }
}
