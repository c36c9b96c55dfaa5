import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { jobIdFor, TaskQueue, type BusEvent } from '@tagflow/queue';
import { JsonLogger } from '../common/logger.js';
import type { Effects } from '../engine/tx-context.js';

export const TASK_QUEUE = Symbol('TASK_QUEUE');

/**
 * The API's side of Redis: applies what a committed transaction asked for. Redis being
 * down never fails a request that the database already accepted: the reconciler puts
 * READY tasks back on their queues once Redis answers again.
 */
@Injectable()
export class QueueService implements OnApplicationShutdown {
  private readonly dueTimers = new Set<NodeJS.Timeout>();

  constructor(
    @Inject(TASK_QUEUE) readonly queue: TaskQueue,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  jobId(taskId: string, attempt: number): string {
    return jobIdFor(taskId, attempt);
  }

  onEvent(listener: (event: BusEvent) => void): void {
    this.queue.onEvent(listener);
  }

  async apply(effects: Effects): Promise<void> {
    if (effects.enqueue.length > 0) {
      try {
        await this.queue.enqueue(effects.enqueue);
        for (const item of effects.enqueue) if (item.delayMs > 0) this.announceWhenDue(item.tagsetId, item.tags, item.delayMs);
      } catch (e) {
        this.warn('enqueue failed; the reconciler will retry', e, { tasks: effects.enqueue.length });
      }
    }
    for (const job of effects.releaseJobs) {
      await this.queue.finish(job.tagsetId, job.jobId, job.token).catch((e: unknown) => this.warn('could not remove a finished job', e, job));
    }
    if (effects.finished.length > 0) {
      await this.queue.publishTaskFinished(effects.finished).catch((e: unknown) => this.warn('could not announce finished tasks', e));
    }
    if (effects.dataWritten.length > 0) {
      await this.queue.publishDataWritten(effects.dataWritten).catch((e: unknown) => this.warn('could not announce data writes', e));
    }
  }

  /** A delayed retry becomes fetchable later: wake the pollers then (the reconciler covers a restart). */
  private announceWhenDue(tagset: string, tags: readonly string[], delayMs: number): void {
    const timer = setTimeout(() => {
      this.dueTimers.delete(timer);
      this.queue.announce(tagset, tags).catch((e: unknown) => this.warn('could not announce a due retry', e));
    }, delayMs + 5);
    timer.unref();
    this.dueTimers.add(timer);
  }

  private warn(msg: string, e: unknown, fields: object = {}): void {
    this.logger.event('warn', 'queue', msg, { ...fields, error: e instanceof Error ? e.message : String(e) });
  }

  async onApplicationShutdown(): Promise<void> {
    for (const t of this.dueTimers) clearTimeout(t);
    await this.queue.close();
  }
}
