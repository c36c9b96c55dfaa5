import { Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service.js';
import { QueueService } from './queue.service.js';

/**
 * In-process waiters for blocking reads: "tell me when task X finishes" (key
 * `Waiters.task(id)`) and "when data key K of workflow W is written" (`Waiters.data(w, k)`).
 * Both are announced on the Redis bus, so a waiter here wakes whichever replica did it.
 */
@Injectable()
export class Waiters implements BeforeApplicationShutdown {
  private readonly waiters = new Map<string, Set<() => void>>();
  private closing = false;

  static task(id: string): string {
    return `task:${id}`;
  }

  static data(workflowId: string, key: string): string {
    return `data:${workflowId}:${key}`;
  }

  constructor(queue: QueueService, metrics: MetricsService) {
    metrics.gauge('tagflow_data_reads_waiting', 'Blocking data-space reads parked in this replica.', () => this.count('data:'));
    metrics.gauge('tagflow_task_waits_waiting', 'GET /tasks/:id?wait_s long-polls parked in this replica.', () => this.count('task:'));
    queue.onEvent((event) => {
      if (event.type === 'task-finished') this.wake(Waiters.task(event.task));
      else if (event.type === 'data-written') this.wake(Waiters.data(event.workflow, event.key));
    });
  }

  /** Blocked reads answer at once so the HTTP server can close. */
  beforeApplicationShutdown(): void {
    this.closing = true;
    for (const set of this.waiters.values()) for (const w of set) w();
  }

  /**
   * Calls `check` until it returns a value or the deadline passes. Registers before the
   * first check so a finish between the check and the wait is not missed.
   */
  async waitFor<T>(key: string, deadline: number, check: () => Promise<T | undefined>): Promise<T | undefined> {
    let signalled = false;
    let resolveWait: (() => void) | null = null;
    const waker = () => {
      signalled = true;
      resolveWait?.();
    };
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(waker);
    try {
      for (;;) {
        signalled = false;
        const value = await check();
        if (value !== undefined) return value;
        const left = deadline - Date.now();
        if (left <= 0 || this.closing) return undefined;
        if (!signalled) {
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            resolveWait = resolve;
            timer = setTimeout(resolve, left);
          });
          clearTimeout(timer);
          resolveWait = null;
        }
      }
    } finally {
      set.delete(waker);
      if (set.size === 0) this.waiters.delete(key);
    }
  }

  private count(prefix: string): number {
    let n = 0;
    for (const [key, set] of this.waiters) if (key.startsWith(prefix)) n += set.size;
    return n;
  }

  private wake(key: string): void {
    for (const w of this.waiters.get(key) ?? []) w();
  }
}
