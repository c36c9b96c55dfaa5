import { QueueKeys } from 'bullmq';

/**
 * What Tagflow reads of BullMQ's own Redis layout, all in one place: BullMQ's public API
 * has no call for these in one round trip across many queues (the head priority of each
 * tag set's queue, how many jobs wait at or above a priority, where a job is and since
 * when it was fetched, the token a fetched job is locked with). Read from BullMQ
 * LAYOUT_READ_FROM; `bullmq-layout.spec.ts` fails when another version is installed, and
 * test/queue.e2e-spec.ts checks each reading against BullMQ's own answers in Redis.
 */
export const LAYOUT_READ_FROM = '6.7.0';

/**
 * BullMQ's priority for a task's (1 = first, 201 = last). Every job is given one, the
 * default 0 too (101): BullMQ takes a job without a priority before any job with one, so a
 * task above 0 could not overtake the plain ones otherwise. At equal priority, oldest first.
 */
export function bullPriority(priority: number): number {
  return 101 - Math.max(-100, Math.min(100, Math.trunc(priority)));
}

/** BullMQ orders its prioritized set by priority * 2^32 + a counter (insertion order within a priority). */
const SCORE_STEP = 0x100000000;

/** The task priority of a job's score in the prioritized set (the inverse of bullPriority). */
export function priorityOfScore(score: number): number {
  return 101 - Math.floor(score / SCORE_STEP);
}

/** The exclusive upper bound of the scores of jobs whose task priority is at least `priority`. */
export function scoreBelow(priority: number): string {
  return `(${(bullPriority(priority) + 1) * SCORE_STEP}`;
}

/** The keys of one queue, as BullMQ names them under `prefix`. */
export class QueueLayout {
  private readonly keys: QueueKeys;

  constructor(
    private readonly prefix: string,
    private readonly queue: string,
  ) {
    this.keys = new QueueKeys(prefix);
  }

  /** The sorted set of jobs waiting with a priority (every Tagflow job has one). */
  get prioritized(): string {
    return this.keys.toKey(this.queue, 'prioritized');
  }

  /** The list of jobs waiting without a priority (a job BullMQ moved back from elsewhere may land here). */
  get wait(): string {
    return this.keys.toKey(this.queue, 'wait');
  }

  /** The sorted set of delayed jobs (a retry's backoff), due or not: BullMQ moves a due one only when a job is fetched. */
  get delayed(): string {
    return this.keys.toKey(this.queue, 'delayed');
  }

  /** A job's hash. */
  job(jobId: string): string {
    return this.keys.toKey(this.queue, jobId);
  }

  /** The key holding a fetched job's lock token. */
  lock(jobId: string): string {
    return `${this.job(jobId)}:lock`;
  }
}

/** The field of a job's hash that says when it was fetched (ms); absent while it waits. */
export const FETCHED_AT_FIELD = 'processedOn';
