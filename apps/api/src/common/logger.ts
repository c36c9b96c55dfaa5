import type { LoggerService } from '@nestjs/common';

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;
type Level = keyof typeof LEVELS;

/** One JSON object per line on stdout: time, level, context, message and fields. */
export class JsonLogger implements LoggerService {
  constructor(private readonly level: Level = 'info') {}

  log(message: unknown, context?: string): void {
    this.write('info', message, context);
  }
  error(message: unknown, traceOrContext?: string, context?: string): void {
    this.write('error', message, context ?? traceOrContext);
  }
  warn(message: unknown, context?: string): void {
    this.write('warn', message, context);
  }
  debug(message: unknown, context?: string): void {
    this.write('debug', message, context);
  }
  verbose(message: unknown, context?: string): void {
    this.write('debug', message, context);
  }

  /** Structured entry: `logger.event('info', 'dispatch', 'lease expired', { task_id })`. */
  event(level: Level, context: string, msg: string, fields: Record<string, unknown> = {}): void {
    if (LEVELS[level] > LEVELS[this.level]) return;
    process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level, context, msg, ...fields }) + '\n');
  }

  private write(level: Level, message: unknown, context?: string): void {
    const msg =
      message instanceof Error ? message.message : typeof message === 'string' ? message : JSON.stringify(message);
    const fields = message instanceof Error && message.stack ? { stack: message.stack } : {};
    this.event(level, context ?? 'app', msg, fields);
  }
}
