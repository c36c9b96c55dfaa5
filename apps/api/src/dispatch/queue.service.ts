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

  /**
   * Queues, removes finished jobs, then announces everything in one bus message. Each
   * step is independent of the others' failure: what Redis missed, the reconciler redoes.
   */
  async apply(effects: Effects): Promise<void> {
    const events: BusEvent[] = [];
    const steps: Promise<unknown>[] = [];
    if (effects.enqueue.length > 0) {
      steps.push(
        this.queue.enqueue(effects.enqueue).then(
          (ready) => {
            events.push(...ready);
            for (const item of effects.enqueue) if (item.delayMs > 0) this.announceWhenDue(item.tagsetId, item.tags, item.delayMs);
          },
          (e: unknown) => this.warn('enqueue failed; the reconciler will retry', e, { tasks: effects.enqueue.length }),
        ),
      );
    }
    for (const job of effects.releaseJobs) {
      steps.push(this.queue.finish(job.tagsetId, job.jobId, job.token).catch((e: unknown) => this.warn('could not remove a finished job', e, job)));
    }
    await Promise.all(steps);
    for (const task of effects.finished) events.push({ type: 'task-finished', task });
    for (const w of effects.dataWritten) events.push({ type: 'data-written', workflow: w.workflowId, key: w.key });
    await this.queue.publish(events).catch((e: unknown) => this.warn('could not announce on the bus', e, { events: events.length }));
  }

  /** A delayed retry becomes fetchable later: wake the pollers then (the reconciler covers a restart). */
  private announceWhenDue(tagset: string, tags: readonly string[], delayMs: number): void {
    const timer = setTimeout(() => {
      this.dueTimers.delete(timer);
      this.queue.publish([{ type: 'ready', tagset, tags: [...tags], count: 1 }]).catch((e: unknown) => this.warn('could not announce a due retry', e));
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
