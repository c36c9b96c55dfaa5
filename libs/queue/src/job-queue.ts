import { Job, Queue, QueueKeys, RedisQueueBackend, Worker, type BackendFactory } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import { bullPriority, FETCHED_AT_FIELD, priorityOfScore, QueueLayout, scoreBelow } from './bullmq-layout.js';
import type { RedisConnections } from './redis.js';
import type { TagsetRegistry } from './tagset-registry.js';

/**
 * The only code in Tagflow that talks to BullMQ.
 *
 * Each distinct tag set gets its own BullMQ queue, so a poll only ever looks at queues
 * whose tasks it may take. A queue is fetched from manually (a Worker without a
 * processor): the job's lock token is the task's lease token, a heartbeat extends the
 * lock, and completing or failing the task removes the job. All queues share one Redis
 * connection through sibling backends, so ten thousand tag sets cost ten thousand small
 * objects, not ten thousand connections.
 */

export interface EnqueueItem {
  taskId: string;
  attempt: number;
  tagsetId: string;
  tags: readonly string[];
  /** Wait this long before the job may be fetched (retry delay). */
  delayMs: number;
  /** The task's priority, -100..100: higher first. */
  priority: number;
}

export interface TakenJob {
  taskId: string;
  attempt: number;
  jobId: string;
  token: string;
}

/** Work queued on a tag set, to announce. */
export interface Queued {
  tagset: string;
  tags: string[];
  count: number;
}

export type JobWhereabouts = { state: 'missing' } | { state: 'queued' } | { state: 'active'; activeSince: number };

const JOB_OPTIONS = { removeOnComplete: true, removeOnFail: true, attempts: 1 };

interface JobData {
  taskId: string;
  attempt: number;
}

interface TagsetQueue {
  queue: Queue<JobData>;
  worker: Worker<JobData>;
}

/** A task attempt's job id: enqueueing the same attempt twice is a no-op. */
export function jobIdFor(taskId: string, attempt: number): string {
  return `${taskId}-${attempt}`;
}

export class JobQueue {
  private root!: Queue;
  private readonly queues = new Map<string, TagsetQueue>();
  /** When this replica last used each tag set's queue (enqueue, fetch, lock, finish). */
  private readonly lastUsed = new Map<string, number>();

  constructor(
    private readonly redis: RedisConnections,
    private readonly registry: TagsetRegistry,
  ) {}

  start(): void {
    this.root = new Queue('root', { connection: this.redis.command, prefix: this.redis.config.prefix });
    this.root.on('error', () => undefined);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].flatMap((q) => [q.worker.close(), q.queue.close()]));
    await this.root?.close().catch(() => undefined);
  }

  /**
   * Puts tasks on their queues. Idempotent: a job id is the task id and attempt, and
   * BullMQ ignores an add whose id exists. Returns, per tag set, what was queued (to announce).
   */
  async enqueue(items: readonly EnqueueItem[]): Promise<Queued[]> {
    if (items.length === 0) return [];
    const byTagset = new Map<string, EnqueueItem[]>();
    for (const item of items) {
      const list = byTagset.get(item.tagsetId);
      if (list) list.push(item);
      else byTagset.set(item.tagsetId, [item]);
    }
    // Tag sets are independent: queue them in parallel (a batch can span hundreds).
    return Promise.all(
      [...byTagset].map(async ([tagset, list]) => {
        const tags = [...list[0].tags];
        await this.registry.register(tagset, tags);
        await this.queueFor(tagset).queue.addBulk(
          list.map((item) => ({
            name: 'task',
            data: { taskId: item.taskId, attempt: item.attempt },
            opts: {
              ...JOB_OPTIONS,
              jobId: jobIdFor(item.taskId, item.attempt),
              delay: item.delayMs > 0 ? item.delayMs : undefined,
              priority: bullPriority(item.priority),
            },
          })),
        );
        return { tagset, tags, count: list.length };
      }),
    );
  }

  /**
   * Fetches and locks (for the default lock length; see `extend`) up to `tokens.length`
   * of the oldest jobs of a tag set's queue, one per token, the token becoming the job's
   * lock token; fewer when the queue runs dry.
   */
  async take(tagset: string, tokens: readonly string[]): Promise<TakenJob[]> {
    const { worker } = this.queueFor(tagset);
    const jobs = await Promise.all(
      tokens.map((token) => worker.getNextJob(token, { block: false }) as Promise<Job<JobData> | undefined>),
    );
    const taken: TakenJob[] = [];
    for (const [i, job] of jobs.entries()) {
      if (!job?.id) continue;
      taken.push({ taskId: job.data.taskId, attempt: job.data.attempt, jobId: job.id, token: tokens[i] });
    }
    return taken;
  }

  /**
   * The priority of the first job waiting in each tag set's queue (one round trip for all);
   * a tag set with no job ready to fetch is absent. Polls spanning several tag sets take
   * from the highest first.
   */
  async headPriorities(tagsets: readonly string[]): Promise<Map<string, number>> {
    const heads = new Map<string, number>();
    const answers = await this.perSlot(
      tagsets,
      (t) => t,
      (pipeline, t) => pipeline.zrange(this.layout(t).prioritized, 0, 0, 'WITHSCORES'),
    );
    for (const [i, [err, row]] of answers.entries()) {
      const score = !err && Array.isArray(row) && row.length === 2 ? Number(row[1]) : NaN;
      if (Number.isFinite(score)) heads.set(tagsets[i], priorityOfScore(score));
    }
    return heads;
  }

  /**
   * The tag sets whose queue holds a job not fetched yet: waiting (with a priority or
   * without) or delayed, due or not (one round trip for all). A tag set whose answer failed
   * counts as holding one.
   */
  async holding(tagsets: readonly string[]): Promise<Set<string>> {
    const kinds = ['prioritized', 'delayed', 'wait'] as const;
    const items = tagsets.flatMap((tagset) => kinds.map((kind) => ({ tagset, kind })));
    const answers = await this.perSlot(
      items,
      (i) => i.tagset,
      (pipeline, { tagset, kind }) => {
        const key = this.layout(tagset)[kind];
        if (kind === 'wait') pipeline.llen(key);
        else pipeline.zcard(key);
      },
    );
    const out = new Set<string>();
    answers.forEach(([err, n], i) => {
      if (err || Number(n) !== 0) out.add(items[i].tagset);
    });
    return out;
  }

  /**
   * Runs one command per item, where every key of an item is in its tag set's slot: all in
   * one pipeline on a single Redis, one pipeline per tag set in a Cluster (a pipeline may
   * not cross slots there). Answers in the items' order.
   */
  private async perSlot<T>(
    items: readonly T[],
    tagsetOf: (item: T) => string,
    add: (pipeline: ChainableCommander, item: T) => void,
  ): Promise<[Error | null, unknown][]> {
    const groups = new Map<string, number[]>();
    items.forEach((item, i) => {
      const slot = this.redis.clustered ? tagsetOf(item) : '';
      (groups.get(slot) ?? groups.set(slot, []).get(slot)!).push(i);
    });
    const out = new Array<[Error | null, unknown]>(items.length);
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const pipeline = this.redis.command.pipeline();
        for (const i of indexes) add(pipeline, items[i]);
        const answers = (await pipeline.exec()) ?? [];
        indexes.forEach((i, k) => (out[i] = answers[k] ?? [new Error('no answer'), null]));
      }),
    );
    return out;
  }

  /** How many jobs of a tag set's queue wait with a priority at least `priority` (taken before any lower one). */
  async countAtLeast(tagset: string, priority: number): Promise<number> {
    // At least `priority`: below the first score of the next BullMQ priority.
    return this.redis.command.zcount(this.layout(tagset).prioritized, '-inf', scoreBelow(priority));
  }

  private layout(tagset: string): QueueLayout {
    return new QueueLayout(this.redis.config.prefix, this.redis.queueName(tagset));
  }

  /** Extends a job's lock; false when the job or the lock is gone (Redis lost it). */
  async extend(tagset: string, jobId: string, token: string, lockMs: number): Promise<boolean> {
    return (await this.handle(tagset, jobId).extendLock(token, lockMs)) === 1;
  }

  /** Removes a fetched job. Missing jobs and lost locks are fine: the database decides. */
  async finish(tagset: string, jobId: string, token: string): Promise<void> {
    const job = this.handle(tagset, jobId);
    try {
      await job.moveToCompleted(null, token, false);
    } catch {
      // The lock is gone (expired or Redis restarted): remove it if it is still there.
      await job.remove().catch(() => undefined);
    }
  }

  /**
   * Where each job is, in one round trip: 'missing' (Redis lost it), 'queued' (waiting
   * or delayed), or fetched (active) since `activeSince` ms.
   */
  async inspect(jobs: readonly { tagsetId: string; jobId: string }[]): Promise<JobWhereabouts[]> {
    if (jobs.length === 0) return [];
    // A job's hash always holds its name: without one, the job is gone.
    const results = await this.perSlot(
      jobs,
      (j) => j.tagsetId,
      (pipeline, j) => pipeline.hmget(this.layout(j.tagsetId).job(j.jobId), 'name', FETCHED_AT_FIELD),
    );
    return jobs.map((_, i) => {
      const [err, fields] = results[i];
      const [name, fetchedAt] = (Array.isArray(fields) ? fields : []) as (string | null)[];
      if (err || !name) return { state: 'missing' };
      return fetchedAt ? { state: 'active', activeSince: Number(fetchedAt) } : { state: 'queued' };
    });
  }

  /**
   * Gives up a fetched job whose lease never started (the API died between fetching it
   * and recording the lease): it is completed with its own lock token, or removed.
   */
  async releaseOrphan(tagset: string, jobId: string): Promise<void> {
    const token = await this.redis.command.get(this.layout(tagset).lock(jobId));
    if (token) await this.finish(tagset, jobId, token);
    else
      await this.handle(tagset, jobId)
        .remove()
        .catch(() => undefined);
  }

  /**
   * A handle on a job for the scripts that only need its id and options (lock, complete,
   * remove), built without reading the job from Redis. The options are those `enqueue`
   * gives every job.
   */
  private handle(tagset: string, jobId: string): Job<JobData> {
    return new Job<JobData>(this.queueFor(tagset).queue, 'task', { taskId: '', attempt: 0 }, JOB_OPTIONS, jobId);
  }

  /** When this replica last used the tag set's queue, or undefined when it never did (or forgot it). */
  lastUsedAt(tagset: string): number | undefined {
    return this.lastUsed.get(tagset);
  }

  /**
   * Forgets a tag set's queue in this replica (its objects closed); with `destroy`, first
   * deletes its keys from Redis, jobs and all: the caller knows from the database that no
   * task of the tag set is READY or RUNNING, so its jobs are stale (their tasks were
   * cancelled, skipped or deleted). A job added while it is destroyed is lost from Redis
   * only: its task is READY in the database and the reconciler queues it again.
   */
  async forget(tagset: string, destroy: boolean): Promise<void> {
    if (destroy) {
      const { queue } = this.queues.get(tagset) ?? this.queueFor(tagset);
      await queue.obliterate({ force: true });
    }
    const entry = this.queues.get(tagset);
    this.queues.delete(tagset);
    this.lastUsed.delete(tagset);
    if (entry) await Promise.allSettled([entry.worker.close(), entry.queue.close()]);
  }

  private queueFor(tagset: string): TagsetQueue {
    this.lastUsed.set(tagset, Date.now());
    const existing = this.queues.get(tagset);
    if (existing) return existing;
    const name = this.redis.queueName(tagset);
    const prefix = this.redis.config.prefix;
    const rootConnection = this.root.getBackend().connection;
    const keys = new QueueKeys(prefix);
    // A backend on the root's connection that does not own it, built with the caller's
    // own options (a Worker's lockDuration reaches the fetch script this way).
    const shared: BackendFactory<RedisQueueBackend> = (queue, opts) =>
      new RedisQueueBackend(
        rootConnection,
        queue,
        keys.getKeys(queue),
        (type: string) => keys.toKey(queue, type),
        { ...opts, prefix } as typeof opts,
        undefined,
        false,
      );
    const opts = { connection: this.redis.command, prefix };
    const queue = new Queue<JobData>(name, opts, shared);
    const worker = new Worker<JobData>(
      name,
      null,
      { ...opts, autorun: false, lockDuration: this.redis.config.defaultLockMs },
      shared,
    );
    queue.on('error', () => undefined);
    worker.on('error', () => undefined);
    const entry: TagsetQueue = { queue, worker };
    this.queues.set(tagset, entry);
    return entry;
  }
}
