import { Cron } from 'croner';

/**
 * Cron expressions (five fields, or six with seconds first; croner's syntax) in an IANA
 * time zone. Ticks are epoch milliseconds.
 */
export class CronSchedule {
  private readonly cron: Cron;

  /** Throws with croner's reason when the expression or the zone is not valid. */
  constructor(expression: string, timezone: string) {
    // Paused and without a callback: croner starts no timer; only its arithmetic is used.
    this.cron = new Cron(expression, { timezone, paused: true });
    this.cron.nextRun(); // a bad zone is found only when a date is converted
  }

  /** The first tick after `after`, or null when there is none. */
  next(after: number): number | null {
    return this.cron.nextRun(new Date(after))?.getTime() ?? null;
  }

  /** The last tick at or before `at`, or null. */
  latest(at: number): number | null {
    return this.cron.previousRuns(1, new Date(at + 1))[0]?.getTime() ?? null;
  }
}

/** Why an expression and zone cannot make a schedule (for a 400), or null. `minIntervalS`: the shortest gap allowed between two ticks. */
export function cronProblem(
  expression: string,
  timezone: string,
  minIntervalS = 1,
): { field: 'cron' | 'timezone'; message: string } | null {
  try {
    Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    return {
      field: 'timezone',
      message: `timezone "${timezone.slice(0, 64)}" is not an IANA time zone (e.g. Europe/Berlin, UTC)`,
    };
  }
  try {
    const cron = new CronSchedule(expression, timezone);
    // The next ticks, over a year at most: the shortest gap between two of them.
    const ticks: number[] = [];
    for (let at = Date.now(), i = 0; i < 64; i++) {
      const next = cron.next(at);
      if (next === null) break;
      ticks.push(next);
      at = next;
    }
    if (ticks.length === 0) return { field: 'cron', message: 'cron never fires again' };
    const gap = Math.min(...ticks.slice(1).map((t, i) => t - ticks[i]));
    if (gap < minIntervalS * 1000)
      return {
        field: 'cron',
        message: `cron fires every ${gap / 1000} s; the shortest interval allowed is ${minIntervalS} s (SCHEDULE_MIN_INTERVAL_S)`,
      };
  } catch (e) {
    return { field: 'cron', message: `cron is not a cron expression: ${(e as Error).message}` };
  }
  return null;
}
