import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Bus, JobQueue, jobIdFor, RedisConnections, type BusEvent, type EnqueueItem } from '@tagflow/queue';
import { withDeadline } from '../common/errors.js';
import { JsonLogger } from '../common/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import type { Effect, EffectsPort } from '../engine/unit-of-work.js';
import { leaseHasJob } from './leases.js';

/** How long a request that the database accepted waits for its Redis work before it is answered anyway. */
const REDIS_WAIT_MS = 2000;

/**
 * Sends what a committed engine operation asks for to Redis: ready tasks onto their
 * queues, ended leases' jobs off them, then every announcement in one bus message (sent,
 * not waited for).
 * Redis being down never fails a request the database already accepted: each step is
 * independent of the others' failure, and what Redis missed the reconciler redoes. Nor
 * does it hold the request: with Redis away the Redis work is left to the reconciler at
 * once, and a Redis that stopped answering gets REDIS_WAIT_MS before the answer goes out
 * (its commands go on in the background).
 */
@Injectable()
export class EffectsPublisher implements EffectsPort, OnApplicationShutdown {
  private readonly dueTimers = new Set<NodeJS.Timeout>();
  private readonly deferred: (labels?: Record<string, string>, by?: number) => void;

  constructor(
    private readonly jobs: JobQueue,
    private readonly bus: Bus,
    private readonly redis: RedisConnections,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    metrics: MetricsService,
  ) {
    this.deferred = metrics.counter(
      'tagflow_effects_deferred_total',
      'Redis work of committed changes left to the reconciler (Redis away or slow), by why.',
    );
  }

  async publish(effects: readonly Effect[]): Promise<void> {
    if (effects.length === 0) return;
    if (!this.redis.ready) {
      // This replica's own waiters still hear of finished tasks and written data.
      this.deferred({ why: 'redis-away' }, effects.length);
      this.bus.deliverHere(announcements(effects));
      return;
    }
    await withDeadline(this.send(effects), REDIS_WAIT_MS, () => new Error('Redis did not answer in time')).catch(
      (e: unknown) => {
        this.deferred({ why: 'redis-slow' }, effects.length);
        this.warn('Redis work of a committed change is late; answering without it (the reconciler checks it)', e, {
          effects: effects.length,
        });
      },
    );
  }

  private async send(effects: readonly Effect[]): Promise<void> {
    const events = announcements(effects);
    const enqueue: EnqueueItem[] = [];
    const steps: Promise<unknown>[] = [];
    for (const e of effects) {
      if (e.kind === 'task-ready')
        enqueue.push({
          taskId: e.taskId,
          attempt: e.attempt,
          tagsetId: e.tagsetId,
          tags: e.tags,
          delayMs: e.delayMs,
          priority: e.priority,
        });
      else if (e.kind === 'lease-ended' && leaseHasJob(e.token)) {
        steps.push(
          this.jobs
            .finish(e.tagsetId, jobIdFor(e.taskId, e.attempt), e.token)
            .catch((err: unknown) => this.warn('could not remove a finished job', err, { task_id: e.taskId })),
        );
      }
    }
    if (enqueue.length > 0) {
      steps.push(
        this.jobs.enqueue(enqueue).then(
          (queued) => {
            for (const q of queued) events.push({ type: 'ready', ...q });
            for (const item of enqueue)
              if (item.delayMs > 0) this.announceWhenDue(item.tagsetId, item.tags, item.delayMs);
          },
          (err: unknown) => this.warn('enqueue failed; the reconciler will retry', err, { tasks: enqueue.length }),
        ),
      );
    }
    await Promise.all(steps);
    // This replica's listeners are told at once (Bus.publish); the answer does not wait for
    // Redis to take the message to the other replicas (one round trip of every report's).
    void this.bus
      .publish(events)
      .catch((err: unknown) => this.warn('could not announce on the bus', err, { events: events.length }));
  }

  /** A delayed retry becomes fetchable later: wake the pollers then (the reconciler covers a restart). */
  private announceWhenDue(tagset: string, tags: readonly string[], delayMs: number): void {
    const timer = setTimeout(() => {
      this.dueTimers.delete(timer);
      this.bus
        .publish([{ type: 'ready', tagset, tags: [...tags], count: 1 }])
        .catch((err: unknown) => this.warn('could not announce a due retry', err));
    }, delayMs + 5);
    timer.unref();
    this.dueTimers.add(timer);
  }

  private warn(msg: string, e: unknown, fields: object = {}): void {
    this.logger.event('warn', 'queue', msg, { ...fields, error: e instanceof Error ? e.message : String(e) });
  }

  onApplicationShutdown(): void {
    for (const t of this.dueTimers) clearTimeout(t);
  }
}

/** What the effects tell long waits: finished tasks, written data, finished workflows (ready work is announced once queued). */
function announcements(effects: readonly Effect[]): BusEvent[] {
  const events: BusEvent[] = [];
  for (const e of effects) {
    if (e.kind === 'task-finished') events.push({ type: 'task-finished', task: e.taskId });
    else if (e.kind === 'data-written') events.push({ type: 'data-written', workflow: e.workflowId, key: e.key });
    else if (e.kind === 'workflow-finished')
      events.push({ type: 'workflow-finished', workflow: e.workflowId, state: e.state });
  }
  return events;
}
