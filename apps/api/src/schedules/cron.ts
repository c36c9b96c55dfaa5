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

/** Why an expression and zone cannot make a schedule (for a 400), or null. */
export function cronProblem(expression: string, timezone: string): { field: 'cron' | 'timezone'; message: string } | null {
  try {
    Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    return { field: 'timezone', message: `timezone "${timezone.slice(0, 64)}" is not an IANA time zone (e.g. Europe/Berlin, UTC)` };
  }
  try {
    if (new CronSchedule(expression, timezone).next(Date.now()) === null) return { field: 'cron', message: 'cron never fires again' };
  } catch (e) {
    return { field: 'cron', message: `cron is not a cron expression: ${(e as Error).message}` };
  }
  return null;
}
