import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { isTerminalWorkflow, queueTags } from '@tagflow/domain';
import { Database } from '@tagflow/persistence';
import { Bus, JobQueue, jobIdFor, RedisEpoch, SharedLimits } from '@tagflow/queue';
import { AppConfig } from '../config/app-config.js';
import { JsonLogger } from '../common/logger.js';
import { Engine } from '../engine/engine.js';
import { releaseHeld } from '../engine/limits.js';
import { IDEMPOTENCY_TTL_MS } from '../common/idempotency.interceptor.js';
import { LeaseService } from '../worker-protocol/lease.service.js';
import { PollService } from '../worker-protocol/poll.service.js';
import { SchedulesService } from '../schedules/schedules.service.js';
import { SettleContinuation } from './settle-continuation.js';

const BATCH = 1000;
/** Tasks whose not_before has come, woken a page at a time, at most this many pages a tick. */
const WAKE_PAGE = 500;
const WAKE_PAGES_PER_TICK = 20;
/** A READY task this old whose job Redis does not hold was lost (API died before enqueue, Redis restarted). */
const LOST_AFTER_MS = 3000;
/** Idle tag sets closed a sweep at most (a sweep every ten ticks, or the next tick while more are idle). */
const SWEEP_LIMIT = 1000;
/** How long the reconciler's duty stays with a replica that stops renewing it. */
const DUTY_TTL_MS = 10_000;
/** A claim takes milliseconds: a job fetched this long ago whose task is still READY has no API behind it. */
const ORPHAN_AFTER_MS = 10_000;

/**
 * Keeps Redis honest against the database, the source of truth. Every tick:
 * - expires leases and run timeouts that are over (a failed attempt each);
 * - queues tasks held by concurrency limits that have room again;
 * - creates the workflows of schedules whose tick has come (SchedulesService);
 * - when Redis lost its data (restarted empty), queues every READY task again;
 * - every few ticks, queues any READY task whose job is missing, releases jobs that an
 *   API fetched but died before leasing, and announces tag sets with due work (a
 *   delayed retry whose announcing replica died).
 * One replica does it for all, the holder of the `reconciler` duty (SharedLimits.holdDuty:
 * held in Redis for DUTY_TTL_MS, renewed every tick, taken over by another replica when its
 * holder stops). While Redis is away every replica does it, which is safe: every change it
 * makes is a guarded update or an idempotent enqueue. Each replica still notices a reset
 * Redis and measures its own clock.
 */
@Injectable()
export class ReconcilerService implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** Ticks as the duty's holder (since it took the duty), and ticks in all. */
  private ticks = 0;
  private beats = 0;
  /** The last sweep of idle tag sets stopped at its limit. */
  private sweepBacklog = false;

  constructor(
    private readonly db: Database,
    private readonly jobs: JobQueue,
    private readonly bus: Bus,
    private readonly epoch: RedisEpoch,
    private readonly leases: LeaseService,
    private readonly polls: PollService,
    private readonly config: AppConfig,
    private readonly engine: Engine,
    private readonly schedules: SchedulesService,
    private readonly settles: SettleContinuation,
    private readonly limits: SharedLimits,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  onApplicationBootstrap(): void {
    this.schedule(0);
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .catch((e: unknown) =>
          this.logger.event('warn', 'reconciler', 'tick failed', { error: e instanceof Error ? e.message : String(e) }),
        )
        .finally(() => {
          this.running = null;
          if (this.timer) this.schedule(this.config.RECONCILE_INTERVAL_MS);
        });
    }, ms);
  }

  async tick(): Promise<void> {
    // Redis was reset: this replica's memory of what Redis holds is stale, whoever requeues.
    const reset = await this.epoch.wasReset();
    if (this.beats++ % 60 === 0) await this.syncClock();
    // The rest is done by one replica for all (a duty held in Redis; every replica while Redis is away).
    if (!(await this.limits.holdDuty('reconciler', DUTY_TTL_MS))) {
      this.ticks = 0; // a new holder starts as a first tick would
      return;
    }
    const first = this.ticks === 0;
    this.ticks++;
    await this.expireLeases();
    await this.wakeDue();
    await this.releaseHeld();
    await this.schedules
      .fireDue()
      .catch((e: unknown) =>
        this.logger.event('warn', 'reconciler', 'could not look for due schedules', { error: String(e) }),
      );
    await this.settles.tick();
    if (this.ticks % 10 === 1) await this.deleteExpired();
    if (this.ticks % 10 === 5 || this.sweepBacklog) await this.sweepTagsets();
    if (this.ticks % 60 === 1) await this.forgetIdempotencyKeys();
    if (reset) {
      this.logger.event(
        'info',
        'reconciler',
        'Redis holds no Tagflow state yet (new, flushed or restarted empty): queueing every READY task',
      );
      await this.requeue(false);
    } else if (first || this.ticks % 5 === 0) {
      await this.requeue(true);
    }
  }

  /** Measures again how far this host's clock is from the database's (leases are set and judged by the database's). */
  private async syncClock(): Promise<void> {
    try {
      const offset = await this.db.syncClock();
      if (Math.abs(offset) > 1000)
        this.logger.event(
          'warn',
          'reconciler',
          "this host's clock is off the database's; Tagflow follows the database's",
          { offset_ms: offset },
        );
    } catch (e) {
      this.logger.event('warn', 'reconciler', "could not read the database's clock", { error: String(e) });
    }
  }

  /** Idle tag sets' queues go (see PollService.sweepIdle); one that fails is tried again next time. */
  private async sweepTagsets(): Promise<void> {
    this.sweepBacklog = false;
    try {
      const n = await this.polls.sweepIdle(
        () => this.db.read().tasks.busyTagsets(),
        Date.now(),
        this.config.TAGSET_IDLE_S * 1000,
        SWEEP_LIMIT,
      );
      // A full sweep may have left idle ones: the next tick goes on, not the tenth.
      this.sweepBacklog = n >= SWEEP_LIMIT;
      if (n > 0) this.logger.event('info', 'reconciler', 'closed the queues of idle tag sets', { count: n });
    } catch (e) {
      this.logger.event('warn', 'reconciler', 'could not close idle tag sets; trying again later', {
        error: String(e),
      });
    }
  }

  /**
   * Retention: finished workflows whose `retention_days` (default RETENTION_DAYS) are over
   * go with their tasks, events and data, a hundred a tick at most, each in its own
   * transaction under its lock; audit records and sent (or given up) callback deliveries
   * older than RETENTION_DAYS too (a pending delivery outlives its workflow). One that
   * cannot be deleted is reported and tried again next time; the others go on.
   */
  private async deleteExpired(): Promise<void> {
    const now = this.db.now();
    let ids: string[];
    try {
      ids = await this.db.read().workflows.expired(now, this.config.RETENTION_DAYS, 100);
    } catch (e) {
      this.logger.event('warn', 'reconciler', 'could not look for workflows past their retention', {
        error: String(e),
      });
      return;
    }
    let deleted = 0;
    for (const id of ids) {
      try {
        const gone = await this.engine.inWorkflow(id, async (uow, wf) => {
          if (!isTerminalWorkflow(wf.state)) return false; // rerun meanwhile: not finished after all
          await uow.repos.workflows.deleteWithEverything(id);
          return true;
        });
        if (gone) deleted++;
      } catch (e) {
        this.logger.event('warn', 'reconciler', 'could not delete a workflow past its retention; trying again later', {
          workflow_id: id,
          error: String(e),
        });
      }
    }
    if (deleted > 0)
      this.logger.event('info', 'reconciler', 'deleted finished workflows past their retention', { count: deleted });
    await this.db
      .transaction((repos) => repos.audit.expire(now - this.config.RETENTION_DAYS * 86_400_000, 1000), now)
      .catch((e: unknown) =>
        this.logger.event('warn', 'reconciler', 'could not delete old audit records', { error: String(e) }),
      );
    await this.db
      .transaction((repos) => repos.callbacks.expire(now - this.config.RETENTION_DAYS * 86_400_000, 1000), now)
      .catch((e: unknown) =>
        this.logger.event('warn', 'reconciler', 'could not delete old callback deliveries', { error: String(e) }),
      );
  }

  /** Answers kept for Idempotency-Keys live a day; older ones go, a thousand a tick at most. */
  private async forgetIdempotencyKeys(): Promise<void> {
    const now = Date.now();
    await this.db
      .transaction((repos) => repos.idempotency.expire(now - IDEMPOTENCY_TTL_MS, 1000), now)
      .catch((e: unknown) =>
        this.logger.event('warn', 'reconciler', 'could not delete expired idempotency records', { error: String(e) }),
      );
  }

  /**
   * Tasks held only by their `not_before` whose time has come: each workflow's evaluated in
   * one transaction under its lock (any replica may do it; evaluating twice changes nothing).
   */
  private async wakeDue(): Promise<void> {
    // Page after page while pages come full (many tasks due at once), up to a bound per tick;
    // a workflow that failed is left for the next tick, so its rows do not fill every page.
    for (let page = 0; page < WAKE_PAGES_PER_TICK; page++) {
      let due: { id: string; workflow_id: string }[];
      try {
        due = await this.db.read().tasks.due(this.db.now(), WAKE_PAGE);
      } catch (e) {
        this.logger.event('warn', 'reconciler', 'could not look for tasks whose not_before has come', {
          error: String(e),
        });
        return;
      }
      const byWorkflow = new Map<string, string[]>();
      for (const t of due)
        (byWorkflow.get(t.workflow_id) ?? byWorkflow.set(t.workflow_id, []).get(t.workflow_id)!).push(t.id);
      let failed = false;
      for (const [workflowId, ids] of byWorkflow) {
        await this.engine
          .inWorkflow(workflowId, async (uow, wf) => {
            await uow.repos.tasks.woken(ids);
            uow.record({ kind: 'evaluate-ids', wf, ids });
          })
          .catch((e: unknown) => {
            failed = true;
            this.logger.event('warn', 'reconciler', 'could not wake tasks whose not_before has come', {
              workflow_id: workflowId,
              error: String(e),
            });
          });
      }
      if (failed || due.length < WAKE_PAGE) return;
    }
  }

  /**
   * Tasks held by a full concurrency limit that has room again: queued. Each lease's end
   * releases them at once; this catches the rest (a hold that raced a release, a limit
   * whose workflow was deleted).
   */
  private async releaseHeld(): Promise<void> {
    try {
      const n = await this.engine.inTransaction((uow) => releaseHeld(uow));
      if (n > 0)
        this.logger.event('debug', 'reconciler', 'queued tasks that their concurrency limits now have room for', {
          count: n,
        });
    } catch (e) {
      this.logger.event('warn', 'reconciler', 'could not release tasks held by concurrency limits', {
        error: String(e),
      });
    }
  }

  private async expireLeases(): Promise<void> {
    const rows = await this.db.read().leases.overdue(this.db.now(), 500);
    for (const t of rows) {
      await this.leases
        .expire(t.id, t.workflow_id)
        .catch((e: unknown) =>
          this.logger.event('warn', 'reconciler', 'could not expire a lease', { task_id: t.id, error: String(e) }),
        );
    }
  }

  /** Queues READY tasks of running workflows again; with onlyMissing, only those Redis lacks. */
  private async requeue(onlyMissing: boolean): Promise<void> {
    const now = this.db.now(); // READY times are the database clock's
    const hostNow = Date.now(); // BullMQ's are this host's
    let after = { ready_at: -1, id: '' };
    for (;;) {
      const rows = await this.db.read().tasks.readyPage(after, BATCH, onlyMissing ? now - LOST_AFTER_MS : undefined);
      if (rows.length === 0) return;
      after = { ready_at: rows[rows.length - 1].ready_at ?? 0, id: rows[rows.length - 1].id };
      let lost = rows;
      if (onlyMissing) {
        const where = await this.jobs.inspect(
          rows.map((r) => ({ tagsetId: r.tagset_id, jobId: jobIdFor(r.id, r.attempt) })),
        );
        // A job fetched long ago whose task is still READY lost its API between fetch and
        // claim: nothing will ever finish it, so release it and queue the task again.
        const orphans = rows.filter(
          (_, i) =>
            where[i].state === 'active' &&
            (where[i] as { activeSince: number }).activeSince < hostNow - ORPHAN_AFTER_MS,
        );
        for (const r of orphans) await this.jobs.releaseOrphan(r.tagset_id, jobIdFor(r.id, r.attempt));
        if (orphans.length)
          this.logger.event('warn', 'reconciler', 'released jobs fetched by an API that died before leasing them', {
            count: orphans.length,
          });
        lost = rows.filter((r, i) => where[i].state === 'missing' || orphans.includes(r));
        // Due work that is queued: make sure pollers know (its announcing replica may have died).
        const due = new Map(
          rows
            .filter((r, i) => where[i].state === 'queued' && (r.ready_at ?? 0) <= now)
            .map((r) => [r.tagset_id, queueTags(r.namespace, r.tags)]),
        );
        for (const [tagset, tags] of due) this.polls.nudge(tagset, tags);
      }
      if (lost.length > 0) {
        if (onlyMissing)
          this.logger.event('warn', 'reconciler', 'queueing READY tasks missing from Redis', { count: lost.length });
        const queued = await this.jobs.enqueue(
          lost.map((r) => ({
            taskId: r.id,
            attempt: r.attempt,
            tagsetId: r.tagset_id,
            tags: queueTags(r.namespace, r.tags),
            delayMs: Math.max(0, (r.ready_at ?? 0) - now),
            priority: r.priority,
          })),
        );
        await this.bus.publish(queued.map((q) => ({ type: 'ready' as const, ...q })));
      }
      if (rows.length < BATCH) return;
    }
  }
}
