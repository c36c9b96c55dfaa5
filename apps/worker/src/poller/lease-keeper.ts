import { LIMITS } from '@tagflow/domain';
import {
  TagflowApiError,
  type LeaseBeat,
  type LeaseBeatResult,
  type LeasedTask,
  type TagflowClient,
} from '@tagflow/client';
import { ExecutionStop } from '../executors/executor.js';

const TICK_MS = 250;

interface Held {
  task: LeasedTask;
  abort: AbortController;
  progress: () => unknown;
  /** When this lease is next due: a third of its length after the last extension. */
  dueAt: number;
}

/**
 * Keeps the leases of the tasks this worker runs: one heartbeat request per worker
 * (`POST /v1/workers/:id/heartbeat`) for every lease that is due, each lease due a third
 * of its length after it was last extended.
 *
 * - `cancel_requested` aborts the task (reported CANCELLED);
 * - a lease answered 404/409 is gone (another attempt owns the task): the task is
 *   stopped and not reported;
 * - the worker answered 404/409 as a whole (the API forgot it, or holds it as
 *   stopping): this round goes lease by lease on the single-task route instead;
 * - the API away: the task keeps running and the lease is tried again within a second;
 *   the lease decides once the API answers again.
 */
export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private readonly timer: NodeJS.Timeout;
  private beating = false;

  constructor(
    private readonly client: TagflowClient,
    private readonly workerId: () => string | null,
    private readonly warn: (msg: string, fields: Record<string, unknown>) => void,
  ) {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** Held by lease token: a later attempt of the same task is another lease. */
  hold(task: LeasedTask, abort: AbortController, progress: () => unknown): void {
    this.held.set(task.lease.token, { task, abort, progress, dueAt: Date.now() + every(task) });
  }

  release(leaseToken: string): void {
    this.held.delete(leaseToken);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.beating) return;
    const now = Date.now();
    const due = [...this.held.values()].filter((h) => h.dueAt <= now && !h.abort.signal.aborted);
    if (due.length === 0) return;
    this.beating = true;
    try {
      for (let i = 0; i < due.length; i += LIMITS.leasesPerHeartbeat)
        await this.beat(due.slice(i, i + LIMITS.leasesPerHeartbeat));
    } finally {
      this.beating = false;
    }
  }

  private async beat(batch: Held[]): Promise<void> {
    const leases: LeaseBeat[] = batch.map((h) => ({
      task_id: h.task.id,
      lease_token: h.task.lease.token,
      progress: h.progress(),
    }));
    let results: LeaseBeatResult[];
    const worker = this.workerId();
    try {
      results = worker ? await this.client.heartbeatWorker(worker, leases) : await this.oneByOne(leases);
    } catch (e) {
      if (e instanceof TagflowApiError && (e.status === 404 || e.status === 409)) {
        results = await this.oneByOne(leases); // the poll loop registers again; the leases are still ours
      } else {
        for (const h of batch) h.dueAt = Date.now() + 1000;
        this.warn('heartbeat failed', { tasks: batch.length, error: (e as Error).message });
        return;
      }
    }
    // Answered in order, one per lease (two attempts of one task may both be in a batch).
    for (const [i, h] of batch.entries()) {
      const r = results[i]?.task_id === h.task.id ? results[i] : undefined;
      if (!r || h.abort.signal.aborted) continue;
      if (r.status === 200) {
        h.dueAt = Date.now() + every(h.task);
        if (r.cancel_requested) h.abort.abort(new ExecutionStop('cancelled'));
      } else if (r.status === 404 || r.status === 409) {
        h.abort.abort(new ExecutionStop('lease-lost'));
      } else {
        h.dueAt = Date.now() + 1000;
      }
    }
  }

  private async oneByOne(leases: LeaseBeat[]): Promise<LeaseBeatResult[]> {
    return Promise.all(
      leases.map(async (l): Promise<LeaseBeatResult> => {
        try {
          const a = await this.client.heartbeat(l.task_id, l.lease_token, l.progress);
          return { task_id: l.task_id, status: 200, ...a };
        } catch (e) {
          if (e instanceof TagflowApiError) return { task_id: l.task_id, status: e.status, message: e.message };
          return { task_id: l.task_id, status: 503, message: (e as Error).message };
        }
      }),
    );
  }
}

/** A lease is extended a third of its length after its last extension (at least every 500 ms apart). */
function every(task: LeasedTask): number {
  return Math.max(500, Math.floor((task.lease_s * 1000) / 3));
}
