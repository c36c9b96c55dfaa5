import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { LIMITS, PollIndex, ResolutionError, TagsetIndex } from '@tagflow/domain';
import { TaskEntity } from '@tagflow/persistence';
import { JsonLogger } from '../common/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ReferenceResolver } from '../engine/reference-resolver.js';
import { LeaseService } from './lease.service.js';
import { QueueService } from './queue.service.js';

interface Waiter {
  tags: readonly string[];
  signalled: boolean;
  wake: (() => void) | null;
}

export interface PollRequest {
  tags: string[];
  workerId: string | null;
  waitMs: number;
  maxTasks: number;
}

/**
 * Long-polls. A poll takes from the queues of the tag sets that contain every tag it
 * names, oldest hinted first. It waits without any sleep loop: it parks until a
 * `ready` announcement on the Redis bus (from any replica) names a matching tag set.
 *
 * `hints` remembers which tag sets may have jobs (and since when), so an idle tag set
 * costs nothing per poll. A hint is dropped when its queue is found empty, unless an
 * announcement for it arrived meanwhile (`seq`), so no wake-up is lost.
 */
@Injectable()
export class PollService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly index = new TagsetIndex();
  private readonly hints = new Map<string, number>();
  private readonly seq = new Map<string, number>();
  private readonly waiters = new PollIndex<Waiter>();
  private closing = false;
  private readonly leased: (labels?: Record<string, string>, by?: number) => void;

  constructor(
    private readonly queue: QueueService,
    private readonly leases: LeaseService,
    private readonly resolver: ReferenceResolver,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    metrics: MetricsService,
  ) {
    metrics.gauge('tagflow_polls_waiting', 'Long-polls parked in this replica.', () => this.waiters.size);
    metrics.gauge('tagflow_tagsets_known', 'Distinct tag sets (queues) this replica knows.', () => this.index.size);
    this.leased = metrics.counter('tagflow_tasks_leased_total', 'Tasks handed to a worker under a lease.');
    queue.onEvent((event) => {
      if (event.type !== 'ready') return;
      this.index.add(event.tagset, event.tags);
      this.hint(event.tagset, Date.now());
      for (const w of this.waiters.matching(event.tags)) this.signal(w);
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    // A fresh replica knows every tag set and assumes each may hold work until looked at.
    for (const [id, tags] of await this.queue.queue.registeredTagsets()) {
      this.index.add(id, tags);
      this.hint(id, 0);
    }
  }

  /** Parked polls answer at once (empty) so the HTTP server can close. */
  beforeApplicationShutdown(): void {
    this.closing = true;
    for (const w of this.waiters.all()) this.signal(w);
  }

  /** Wakes every parked poll that could take from this tag set (after a resume or reconcile). */
  nudge(tagset: string, tags: readonly string[]): void {
    this.index.add(tagset, tags);
    this.hint(tagset, Date.now());
    for (const w of this.waiters.matching(tags)) this.signal(w);
  }

  async poll(req: PollRequest): Promise<{ task: TaskEntity; lease: { token: string; expires_at: number } }[]> {
    if (this.closing) return []; // no new leases from a replica that is stopping
    const deadline = Date.now() + req.waitMs;
    const waiter: Waiter = { tags: req.tags, signalled: false, wake: null };
    this.waiters.add(waiter);
    try {
      for (;;) {
        waiter.signalled = false;
        const taken = await this.fetch(req);
        if (taken.length > 0 || this.closing) return taken;
        const left = deadline - Date.now();
        if (left <= 0) return [];
        if (!waiter.signalled) await this.park(waiter, left);
      }
    } finally {
      this.waiters.delete(waiter);
    }
  }

  private async fetch(req: PollRequest) {
    const out: { task: TaskEntity; lease: { token: string; expires_at: number } }[] = [];
    const candidates = this.index
      .matching(req.tags)
      .filter((id) => this.hints.has(id))
      .sort((a, b) => this.hints.get(a)! - this.hints.get(b)!);
    for (const tagset of candidates) {
      while (out.length < req.maxTasks) {
        const seqBefore = this.seq.get(tagset) ?? 0;
        const want = req.maxTasks - out.length;
        const tokens = Array.from({ length: want }, () => this.leases.newToken());
        const jobs = await this.queue.queue.take(tagset, tokens);
        if (jobs.length < want && (this.seq.get(tagset) ?? 0) === seqBefore) this.hints.delete(tagset);
        if (jobs.length === 0) break;
        let claimed: TaskEntity[];
        try {
          claimed = await this.leases.claim(jobs.map((j) => ({ taskId: j.taskId, attempt: j.attempt, tagsetId: tagset, token: j.token, workerId: req.workerId })));
        } catch (e) {
          // The database did not answer: give the jobs up. Their tasks are still READY in
          // the database, so the reconciler queues them again.
          this.logger.event('error', 'poll', 'claim failed; the jobs go back', { tasks: jobs.map((j) => j.taskId), error: String(e) });
          await Promise.all(jobs.map((j) => this.queue.queue.finish(tagset, j.jobId, j.token).catch(() => undefined)));
          return out;
        }
        // Stale jobs (task moved on, cancelled, deleted, or its workflow is paused): dropped.
        const leased = new Set(claimed.map((t) => t.lease_token));
        const stale = jobs.filter((j) => !leased.has(j.token));
        await Promise.all(stale.map((j) => this.queue.queue.finish(tagset, j.jobId, j.token).catch(() => undefined)));
        for (const task of claimed) {
          try {
            task.input = await this.resolver.resolve(task);
          } catch (e) {
            if (!(e instanceof ResolutionError)) throw e;
            // The worker never sees it: the task fails here, naming the reference.
            await this.leases.failUnstarted(task, { code: e.code, message: e.message });
            continue;
          }
          if (task.lease_s !== LIMITS.defaultLeaseSeconds) {
            await this.queue.queue.extend(tagset, this.queue.jobId(task.id, task.attempt), task.lease_token!, task.lease_s * 1000).catch(() => undefined);
          }
          out.push({ task, lease: { token: task.lease_token!, expires_at: task.lease_expires_at ?? Date.now() } });
          this.leased();
        }
        if (jobs.length < want) break;
      }
      if (out.length >= req.maxTasks) break;
    }
    return out;
  }

  private hint(tagset: string, since: number): void {
    this.seq.set(tagset, (this.seq.get(tagset) ?? 0) + 1);
    const current = this.hints.get(tagset);
    if (current === undefined || since < current) this.hints.set(tagset, since);
  }

  private signal(w: Waiter): void {
    w.signalled = true;
    w.wake?.();
  }

  private async park(w: Waiter, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      w.wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    w.wake = null;
  }
}
