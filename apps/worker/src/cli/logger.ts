const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;
export type LogLevel = keyof typeof LEVELS;

export interface Logger {
  (level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
}

/** JSON lines on stdout. Callers never pass the token. */
export function jsonLogger(level: LogLevel): Logger {
  return (l, msg, fields = {}) => {
    if (LEVELS[l] > LEVELS[level]) return;
    process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields }) + '\n');
  };
}
