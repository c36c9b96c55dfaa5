import { Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { asQueueTags, PollIndex } from '@tagflow/domain';
import { Bus } from '@tagflow/queue';
import { MetricsService } from '../metrics/metrics.service.js';

/** The longest a wait parks between two looks, whatever it was told (announcements can be lost). */
export const RECHECK_MS = 5000;

/** What a long wait waits for: a named event (a task finishing, a data key written) or ready work on tags. */
export type WaitOn = { key: string } | { tags: readonly string[] };

interface Waiter {
  tags: readonly string[];
  signalled: boolean;
  wake: (() => void) | null;
}

/**
 * Every long wait of this replica, parked without a sleep loop: long-polls for tasks
 * (woken by `ready` announcements whose tag set fits their tags), `GET /tasks/:id?wait_s`
 * (woken when the task finishes) and blocking data reads (woken when the key is
 * written). The announcements come over the Redis bus, so whichever replica made the
 * change wakes the waiter here.
 */
@Injectable()
export class LongWaits implements BeforeApplicationShutdown {
  private readonly byKey = new Map<string, Set<Waiter>>();
  private readonly byTags = new PollIndex<Waiter>();
  private closing = false;

  static task(id: string): WaitOn {
    return { key: `task:${id}` };
  }

  static data(workflowId: string, key: string): WaitOn {
    return { key: `data:${workflowId}:${key}` };
  }

  /** Followers of a task's live output: woken when a piece is appended. */
  static log(taskId: string): WaitOn {
    return { key: `log:${taskId}` };
  }

  /** Followers of a workflow's event stream: woken when it finishes (else they look on a timer). */
  static workflow(workflowId: string): WaitOn {
    return { key: `workflow:${workflowId}` };
  }

  constructor(bus: Bus, metrics: MetricsService) {
    metrics.gauge('tagflow_polls_waiting', 'Long-polls parked in this replica.', () => this.byTags.size);
    metrics.gauge('tagflow_data_reads_waiting', 'Blocking data-space reads parked in this replica.', () =>
      this.count('data:'),
    );
    metrics.gauge('tagflow_task_waits_waiting', 'GET /tasks/:id?wait_s long-polls parked in this replica.', () =>
      this.count('task:'),
    );
    metrics.gauge(
      'tagflow_streams_following',
      'Live output and workflow event streams followed in this replica.',
      () => this.count('log:') + this.count('workflow:'),
    );
    bus.onEvent((event) => {
      if (event.type === 'task-finished') {
        this.wakeKey(LongWaits.task(event.task));
        this.wakeKey(LongWaits.log(event.task));
      } else if (event.type === 'data-written') this.wakeKey(LongWaits.data(event.workflow, event.key));
      else if (event.type === 'ready') this.wakeTags(asQueueTags(event.tags));
      else if (event.type === 'log-appended') this.wakeKey(LongWaits.log(event.task));
      else if (event.type === 'workflow-finished') this.wakeKey(LongWaits.workflow(event.workflow));
      // Announcements may have been missed: every wait looks again now.
      else if (event.type === 'resync') this.wakeAll();
    });
  }

  /** Every wait answers at once (with what it has) so the HTTP server can close. */
  beforeApplicationShutdown(): void {
    this.closing = true;
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const set of this.byKey.values()) for (const w of set) signal(w);
    for (const w of this.byTags.all()) signal(w);
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * Calls `check` until it returns a value or the deadline passes (or the replica stops).
   * Registers before the first check, so a wake-up between the check and the wait is not lost.
   * `handle.wake`, set here, wakes this wait alone (a task handed to this very poll).
   * `stop` ends the wait early (its caller's access ended).
   */
  async until<T>(
    on: WaitOn,
    deadline: number,
    check: () => Promise<T | undefined>,
    handle?: { wake?: () => void },
    stop?: AbortSignal,
  ): Promise<T | undefined> {
    const waiter: Waiter = { tags: 'tags' in on ? on.tags : [], signalled: false, wake: null };
    if (handle) handle.wake = () => signal(waiter);
    const stopped = () => signal(waiter);
    stop?.addEventListener('abort', stopped, { once: true });
    const release = this.register(on, waiter);
    try {
      for (;;) {
        if (stop?.aborted) return undefined;
        waiter.signalled = false;
        const value = await check();
        if (value !== undefined) return value;
        const left = deadline - Date.now();
        if (left <= 0 || this.closing || stop?.aborted) return undefined;
        // At most RECHECK_MS between two looks: an announcement lost on the bus delays no wait longer.
        if (!waiter.signalled) await park(waiter, Math.min(left, RECHECK_MS));
      }
    } finally {
      stop?.removeEventListener('abort', stopped);
      release();
    }
  }

  /** Parks until `on` is signalled, `ms` pass or the replica stops (a follower between two looks). */
  async nap(on: WaitOn, ms: number): Promise<void> {
    if (this.closing) return;
    const waiter: Waiter = { tags: 'tags' in on ? on.tags : [], signalled: false, wake: null };
    const release = this.register(on, waiter);
    try {
      await park(waiter, ms);
    } finally {
      release();
    }
  }

  /** Wakes every parked poll whose tags fit work on `tags` (after a resume or a reconcile). */
  wakeTags(tags: readonly string[]): void {
    for (const w of this.byTags.matching(tags)) signal(w);
  }

  private wakeKey(on: WaitOn): void {
    if (!('key' in on)) return;
    for (const w of this.byKey.get(on.key) ?? []) signal(w);
  }

  private register(on: WaitOn, waiter: Waiter): () => void {
    if ('tags' in on) {
      this.byTags.add(waiter);
      return () => this.byTags.delete(waiter);
    }
    let set = this.byKey.get(on.key);
    if (!set) this.byKey.set(on.key, (set = new Set()));
    set.add(waiter);
    return () => {
      set.delete(waiter);
      if (set.size === 0) this.byKey.delete(on.key);
    };
  }

  private count(prefix: string): number {
    let n = 0;
    for (const [key, set] of this.byKey) if (key.startsWith(prefix)) n += set.size;
    return n;
  }
}

function signal(w: Waiter): void {
  w.signalled = true;
  w.wake?.();
}

async function park(w: Waiter, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    w.wake = resolve;
    timer = setTimeout(resolve, ms);
  });
  clearTimeout(timer);
  w.wake = null;
}
