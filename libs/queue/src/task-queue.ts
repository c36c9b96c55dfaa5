import { Job, Queue, QueueKeys, RedisQueueBackend, Worker, type BackendFactory } from 'bullmq';
import { Redis } from 'ioredis';

/**
 * The only code in Tagflow that talks to BullMQ.
 *
 * Each distinct tag set gets its own BullMQ queue, so a poll only ever looks at queues
 * whose tasks it may take. A queue is fetched from manually (a Worker without a
 * processor): the job's lock token is the task's lease token, a heartbeat extends the
 * lock, and completing or failing the task removes the job. All queues share one
 * Redis connection through sibling backends, so ten thousand tag sets cost ten
 * thousand small objects, not ten thousand connections.
 *
 * Besides jobs, Redis carries a registry of tag sets (hash `<prefix>:tagsets`) and one
 * pub/sub channel (`<prefix>:events`) on which every API replica announces ready work
 * and finished tasks, so long-polls in any replica wake at once.
 */

export interface QueueConfig {
  redisUrl: string;
  prefix: string;
  /** Default lock length for fetched jobs; a task's own lease is applied on top. */
  defaultLockMs: number;
}

export interface EnqueueItem {
  taskId: string;
  attempt: number;
  tagsetId: string;
  tags: readonly string[];
  /** Wait this long before the job may be fetched (retry delay). */
  delayMs: number;
}

export interface TakenJob {
  taskId: string;
  attempt: number;
  jobId: string;
  token: string;
}

export type JobWhereabouts = { state: 'missing' } | { state: 'queued' } | { state: 'active'; activeSince: number };

export type BusEvent =
  | { type: 'ready'; tagset: string; tags: string[]; count: number }
  | { type: 'task-finished'; task: string }
  | { type: 'data-written'; workflow: string; key: string };

/** One bus message: the events of one operation, from one replica. */
interface BusMessage {
  origin: string;
  events: readonly BusEvent[];
}

const JOB_OPTIONS = { removeOnComplete: true, removeOnFail: true, attempts: 1 };

interface JobData {
  taskId: string;
  attempt: number;
}

interface TagsetQueue {
  queue: Queue<JobData>;
  worker: Worker<JobData>;
}

export function jobIdFor(taskId: string, attempt: number): string {
  return `${taskId}-${attempt}`;
}

export class TaskQueue {
  private readonly connection: Redis;
  private readonly subscriber: Redis;
  private root!: Queue;
  private readonly queues = new Map<string, TagsetQueue>();
  private readonly knownTagsets = new Set<string>();
  private readonly listeners: ((event: BusEvent) => void)[] = [];
  private readonly channel: string;
  private readonly epochKey: string;
  /** Tells this replica's own bus messages apart: they were delivered locally already. */
  private readonly origin = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  private epoch: string | null = null;

  constructor(private readonly config: QueueConfig) {
    // maxRetriesPerRequest: null is what BullMQ requires for its connections.
    const options = { maxRetriesPerRequest: null, enableOfflineQueue: true, lazyConnect: true };
    this.connection = new Redis(config.redisUrl, options);
    this.subscriber = new Redis(config.redisUrl, options);
    this.channel = `${config.prefix}:events`;
    this.epochKey = `${config.prefix}:epoch`;
    // Errors surface through the commands that fail; a down Redis must not crash the API.
    this.connection.on('error', () => undefined);
    this.subscriber.on('error', () => undefined);
  }

  async start(): Promise<void> {
    let lastError = '';
    const remember = (e: Error) => (lastError = e.message);
    this.connection.on('error', remember);
    try {
      await this.connection.connect();
      await this.subscriber.connect();
    } catch (e) {
      const reason = lastError || (e instanceof Error ? e.message : String(e));
      throw new Error(`cannot reach Redis at ${redact(this.config.redisUrl)}: ${reason}`);
    } finally {
      this.connection.off('error', remember);
    }
    this.root = new Queue('root', { connection: this.connection, prefix: this.config.prefix });
    this.root.on('error', () => undefined);
    this.subscriber.on('message', (channel, message) => {
      if (channel !== this.channel) return;
      let envelope: BusMessage;
      try {
        envelope = JSON.parse(message) as BusMessage;
      } catch {
        return;
      }
      if (envelope.origin === this.origin || !Array.isArray(envelope.events)) return;
      this.deliver(envelope.events);
    });
    await this.subscriber.subscribe(this.channel);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].flatMap((q) => [q.worker.close(), q.queue.close()]));
    await this.root?.close().catch(() => undefined);
    this.subscriber.disconnect();
    await this.connection.quit().catch(() => this.connection.disconnect());
  }

  onEvent(listener: (event: BusEvent) => void): void {
    this.listeners.push(listener);
  }

  async ping(): Promise<void> {
    await this.connection.ping();
  }

  /** Every tag set ever registered, with its tags (a restarted replica learns them here). */
  async registeredTagsets(): Promise<Map<string, string[]>> {
    const raw = await this.connection.hgetall(`${this.config.prefix}:tagsets`);
    return new Map(Object.entries(raw).map(([id, tags]) => [id, JSON.parse(tags) as string[]]));
  }

  /**
   * Puts tasks on their queues. Idempotent: a job id is the task id and attempt, and
   * BullMQ ignores an add whose id exists. Returns the `ready` announcements to publish
   * (see `publish`), one per tag set.
   */
  async enqueue(items: readonly EnqueueItem[]): Promise<BusEvent[]> {
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
        if (!this.knownTagsets.has(tagset)) {
          await this.connection.hset(`${this.config.prefix}:tagsets`, tagset, JSON.stringify(tags));
          this.knownTagsets.add(tagset);
        }
        const { queue } = this.queueFor(tagset);
        await queue.addBulk(
          list.map((item) => ({
            name: 'task',
            data: { taskId: item.taskId, attempt: item.attempt },
            opts: { ...JOB_OPTIONS, jobId: jobIdFor(item.taskId, item.attempt), delay: item.delayMs > 0 ? item.delayMs : undefined },
          })),
        );
        const event: BusEvent = { type: 'ready', tagset, tags, count: list.length };
        return event;
      }),
    );
  }

  /**
   * Announces events to every replica in one message: this replica's listeners are
   * called at once (no round trip through Redis), the others' when the message arrives.
   */
  async publish(events: readonly BusEvent[]): Promise<void> {
    if (events.length === 0) return;
    this.deliver(events);
    const message: BusMessage = { origin: this.origin, events };
    await this.connection.publish(this.channel, JSON.stringify(message));
  }

  /**
   * Fetches and locks (for `defaultLockMs`; see `extend`) up to `tokens.length` of the
   * oldest jobs of a tag set's queue, one per token, the token becoming the job's lock
   * token; fewer when the queue runs dry.
   */
  async take(tagset: string, tokens: readonly string[]): Promise<TakenJob[]> {
    const { worker } = this.queueFor(tagset);
    const jobs = await Promise.all(tokens.map((token) => worker.getNextJob(token, { block: false }) as Promise<Job<JobData> | undefined>));
    const taken: TakenJob[] = [];
    for (const [i, job] of jobs.entries()) {
      if (!job?.id) continue;
      taken.push({ taskId: job.data.taskId, attempt: job.data.attempt, jobId: job.id, token: tokens[i] });
    }
    return taken;
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
    const pipeline = this.connection.pipeline();
    for (const j of jobs) {
      const key = `${this.config.prefix}:${queueName(j.tagsetId)}:${j.jobId}`;
      pipeline.exists(key);
      pipeline.hget(key, 'processedOn');
    }
    const results = (await pipeline.exec()) ?? [];
    return jobs.map((_, i) => {
      const [existsErr, exists] = results[2 * i] ?? [];
      const [, processedOn] = results[2 * i + 1] ?? [];
      if (existsErr || exists !== 1) return { state: 'missing' };
      return processedOn ? { state: 'active', activeSince: Number(processedOn) } : { state: 'queued' };
    });
  }

  /**
   * Gives up a fetched job whose lease never started (the API died between fetching it
   * and recording the lease): it is completed with its own lock token, or removed.
   */
  async releaseOrphan(tagset: string, jobId: string): Promise<void> {
    const token = await this.connection.get(`${this.config.prefix}:${queueName(tagset)}:${jobId}:lock`);
    if (token) await this.finish(tagset, jobId, token);
    else await this.handle(tagset, jobId).remove().catch(() => undefined);
  }

  /**
   * True when Redis has lost its data since this replica last looked (restarted empty,
   * flushed): the caller must enqueue every READY task again.
   */
  async redisWasReset(): Promise<boolean> {
    const current = await this.connection.get(this.epochKey);
    if (current !== null && current === this.epoch) return false;
    if (current === null) {
      const fresh = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
      await this.connection.set(this.epochKey, fresh, 'NX');
      this.epoch = await this.connection.get(this.epochKey);
      this.knownTagsets.clear();
      return true;
    }
    // Another replica already noticed and reset the epoch; our view of tag sets is stale too.
    const first = this.epoch === null;
    this.epoch = current;
    if (!first) this.knownTagsets.clear();
    return !first;
  }

  /**
   * A handle on a job for the scripts that only need its id and options (lock, complete,
   * remove), built without reading the job from Redis. The options are those `enqueue`
   * gives every job.
   */
  private handle(tagset: string, jobId: string): Job<JobData> {
    return new Job<JobData>(this.queueFor(tagset).queue, 'task', { taskId: '', attempt: 0 }, JOB_OPTIONS, jobId);
  }

  private deliver(events: readonly BusEvent[]): void {
    for (const event of events) {
      if (event.type === 'ready') this.knownTagsets.add(event.tagset);
      for (const listener of this.listeners) listener(event);
    }
  }

  private queueFor(tagset: string): TagsetQueue {
    const existing = this.queues.get(tagset);
    if (existing) return existing;
    const name = queueName(tagset);
    const rootConnection = (this.root.getBackend()).connection;
    const keys = new QueueKeys(this.config.prefix);
    // A backend on the root's connection that does not own it, built with the caller's
    // own options (a Worker's lockDuration reaches the fetch script this way).
    const shared: BackendFactory<RedisQueueBackend> = (queue, opts) =>
      new RedisQueueBackend(rootConnection, queue, keys.getKeys(queue), (type: string) => keys.toKey(queue, type), { ...opts, prefix: this.config.prefix } as typeof opts, undefined, false);
    const opts = { connection: this.connection, prefix: this.config.prefix };
    const queue = new Queue<JobData>(name, opts, shared);
    const worker = new Worker<JobData>(name, null, { ...opts, autorun: false, lockDuration: this.config.defaultLockMs }, shared);
    queue.on('error', () => undefined);
    worker.on('error', () => undefined);
    const entry: TagsetQueue = { queue, worker };
    this.queues.set(tagset, entry);
    return entry;
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'REDIS_URL';
  }
}

function queueName(tagset: string): string {
  return `ts-${tagset}`;
}
