import { Injectable } from '@nestjs/common';
import { QueueService } from './queue.service.js';

/**
 * In-process waiters for "tell me when task X finishes". Finishes are announced on the
 * Redis bus, so a waiter here wakes when any API replica finished the task.
 */
@Injectable()
export class TaskWaiters {
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(queue: QueueService) {
    queue.onEvent((event) => {
      if (event.type === 'task-finished') this.wake(event.task);
    });
  }

  /**
   * Calls `check` until it returns a value or the deadline passes. Registers before the
   * first check so a finish between the check and the wait is not missed.
   */
  async waitFor<T>(taskId: string, deadline: number, check: () => Promise<T | undefined>): Promise<T | undefined> {
    let signalled = false;
    let resolveWait: (() => void) | null = null;
    const waker = () => {
      signalled = true;
      resolveWait?.();
    };
    let set = this.waiters.get(taskId);
    if (!set) this.waiters.set(taskId, (set = new Set()));
    set.add(waker);
    try {
      for (;;) {
        signalled = false;
        const value = await check();
        if (value !== undefined) return value;
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
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
      if (set.size === 0) this.waiters.delete(taskId);
    }
  }

  private wake(taskId: string): void {
    for (const w of this.waiters.get(taskId) ?? []) w();
  }
}
