import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Bus, JobQueue, jobIdFor, type BusEvent, type EnqueueItem } from '@tagflow/queue';
import { JsonLogger } from '../common/logger.js';
import type { Effect, EffectsPort } from '../engine/unit-of-work.js';

/**
 * Sends what a committed engine operation asks for to Redis: ready tasks onto their
 * queues, ended leases' jobs off them, then every announcement in one bus message.
 * Redis being down never fails a request the database already accepted: each step is
 * independent of the others' failure, and what Redis missed the reconciler redoes.
 */
@Injectable()
export class EffectsPublisher implements EffectsPort, OnApplicationShutdown {
  private readonly dueTimers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly jobs: JobQueue,
    private readonly bus: Bus,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  async publish(effects: readonly Effect[]): Promise<void> {
    const events: BusEvent[] = [];
    const enqueue: EnqueueItem[] = [];
    const steps: Promise<unknown>[] = [];
    for (const e of effects) {
      switch (e.kind) {
        case 'task-ready':
          enqueue.push({ taskId: e.taskId, attempt: e.attempt, tagsetId: e.tagsetId, tags: e.tags, delayMs: e.delayMs });
          break;
        case 'lease-ended':
          steps.push(this.jobs.finish(e.tagsetId, jobIdFor(e.taskId, e.attempt), e.token).catch((err: unknown) => this.warn('could not remove a finished job', err, { task_id: e.taskId })));
          break;
        case 'task-finished':
          events.push({ type: 'task-finished', task: e.taskId });
          break;
        case 'data-written':
          events.push({ type: 'data-written', workflow: e.workflowId, key: e.key });
          break;
        case 'workflow-finished':
          events.push({ type: 'workflow-finished', workflow: e.workflowId, state: e.state });
          break;
      }
    }
    if (enqueue.length > 0) {
      steps.push(
        this.jobs.enqueue(enqueue).then(
          (queued) => {
            for (const q of queued) events.push({ type: 'ready', ...q });
            for (const item of enqueue) if (item.delayMs > 0) this.announceWhenDue(item.tagsetId, item.tags, item.delayMs);
          },
          (err: unknown) => this.warn('enqueue failed; the reconciler will retry', err, { tasks: enqueue.length }),
        ),
      );
    }
    await Promise.all(steps);
    await this.bus.publish(events).catch((err: unknown) => this.warn('could not announce on the bus', err, { events: events.length }));
  }

  /** A delayed retry becomes fetchable later: wake the pollers then (the reconciler covers a restart). */
  private announceWhenDue(tagset: string, tags: readonly string[], delayMs: number): void {
    const timer = setTimeout(() => {
      this.dueTimers.delete(timer);
      this.bus.publish([{ type: 'ready', tagset, tags: [...tags], count: 1 }]).catch((err: unknown) => this.warn('could not announce a due retry', err));
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
