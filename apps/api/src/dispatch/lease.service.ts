import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { LIMITS } from '@tagflow/domain';
import { Database, TaskEntity, type LeaseOutcome, type WorkflowEntity } from '@tagflow/persistence';
import { conflict, notFound, tooLarge } from '../common/errors.js';
import { JsonLogger } from '../common/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { Engine } from '../engine/engine.service.js';
import { Transitions, type ClaimJob } from '../engine/transitions.js';
import type { TxContext } from '../engine/tx-context.js';
import type { CompleteDto, FailDto, HeartbeatDto } from '../tasks/task.dto.js';
import { QueueService } from './queue.service.js';

/** Jobs written in one claim transaction at most (five parameters each). */
const CLAIM_BATCH = 500;

interface PendingClaim {
  jobs: readonly ClaimJob[];
  resolve: (tasks: TaskEntity[]) => void;
  reject: (e: unknown) => void;
}

export interface Lease {
  token: string;
  expires_at: number;
}

/**
 * The worker protocol after a task was offered: claim, heartbeat, complete, fail, and
 * expiry. A report must carry the current lease's token; a stale one gets 409 and
 * changes nothing; the same report repeated with the current token gets the same answer.
 */
@Injectable()
export class LeaseService {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    private readonly transitions: Transitions,
    private readonly queue: QueueService,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    metrics: MetricsService,
  ) {
    this.reports = metrics.counter('tagflow_task_reports_total', 'Reports accepted from workers, by kind.');
    this.refused = metrics.counter('tagflow_task_reports_refused_total', 'Reports and heartbeats refused for a stale lease.');
    this.expired = metrics.counter('tagflow_attempts_expired_total', 'Attempts ended by lease expiry or run timeout, by code.');
  }

  private readonly claimQueue: PendingClaim[] = [];
  private claiming = false;
  private readonly reports: (labels?: Record<string, string>) => void;
  private readonly refused: (labels?: Record<string, string>) => void;
  private readonly expired: (labels?: Record<string, string>) => void;

  newToken(): string {
    return randomUUID();
  }

  /**
   * Turns jobs fetched from tag sets' queues into leases (READY -> RUNNING, see
   * Transitions.claim). Claims arriving while one is being written are written together
   * in the next transaction (a thousand woken polls make a few transactions, not a
   * thousand). Resolves to the tasks leased; a job missing from the answer was stale
   * (task moved on, cancelled, deleted, paused) and the caller drops it.
   */
  claim(jobs: readonly ClaimJob[]): Promise<TaskEntity[]> {
    return new Promise((resolve, reject) => {
      this.claimQueue.push({ jobs, resolve, reject });
      if (!this.claiming) void this.writeClaims();
    });
  }

  private async writeClaims(): Promise<void> {
    this.claiming = true;
    try {
      while (this.claimQueue.length > 0) {
        const batch: PendingClaim[] = [];
        let size = 0;
        while (this.claimQueue.length > 0 && (batch.length === 0 || size + this.claimQueue[0].jobs.length <= CLAIM_BATCH)) {
          const next = this.claimQueue.shift()!;
          batch.push(next);
          size += next.jobs.length;
        }
        try {
          const leased = await this.engine.inTransaction((ctx) => this.transitions.claim(ctx, batch.flatMap((b) => b.jobs)));
          const byToken = new Map(leased.map((t) => [t.lease_token, t]));
          for (const b of batch) b.resolve(b.jobs.flatMap((j) => byToken.get(j.token) ?? []));
        } catch (e) {
          for (const b of batch) b.reject(e);
        }
      }
    } finally {
      this.claiming = false;
    }
  }

  async heartbeat(taskId: string, dto: HeartbeatDto): Promise<{ expires_at: number; cancel_requested: boolean }> {
    const task = await this.find(taskId);
    this.checkToken(task, dto.lease_token);
    if (task.lease_outcome !== null || task.state !== 'RUNNING') throw this.ended(task);
    const now = Date.now();
    if ((task.lease_expires_at ?? 0) < now) throw conflict(`the lease of task ${task.id} expired at ${new Date(task.lease_expires_at ?? 0).toISOString()}`, { state: task.state });
    const expires = now + task.lease_s * 1000;
    const progress = dto.progress === undefined ? {} : { progress: dto.progress as object };
    const updated = await this.db.transaction((em) =>
      em.getRepository(TaskEntity).update(
        { id: task.id, state: 'RUNNING', lease_token: dto.lease_token },
        { lease_expires_at: expires, updated_at: now, ...progress },
      ),
    );
    if ((updated.affected ?? 0) === 0) throw this.ended(await this.find(taskId));
    // The Redis lock mirrors the lease; losing it (Redis restarted) does not end the lease.
    this.queue.queue
      .extend(task.tagset_id, this.queue.jobId(task.id, task.attempt), dto.lease_token, task.lease_s * 1000)
      .catch(() => undefined);
    return { expires_at: expires, cancel_requested: task.cancel_requested };
  }

  async complete(taskId: string, dto: CompleteDto): Promise<TaskEntity> {
    const output = dto.output ?? {};
    const size = Buffer.byteLength(JSON.stringify(output));
    if (size > LIMITS.outputMaxBytes) throw tooLarge(`output is ${size} bytes; the limit is ${LIMITS.outputMaxBytes}`);
    return this.report(taskId, dto.lease_token, 'complete', async (ctx, wf, task) => {
      await this.engine.completeTask(ctx, wf, task, output, dto);
      return task; // completeTask keeps it in step with its row
    });
  }

  async fail(taskId: string, dto: FailDto): Promise<TaskEntity> {
    const error = { message: dto.error.message, code: dto.error.code ?? (dto.exit_code !== undefined ? String(dto.exit_code) : null) };
    return this.report(taskId, dto.lease_token, 'fail', async (ctx, wf, task) => {
      await this.engine.failAttempt(ctx, wf, task, error, dto.error.retryable !== false, dto, 'fail');
      return ctx.em.getRepository(TaskEntity).findOneByOrFail({ id: taskId });
    });
  }

  /** Fails a task just leased that cannot be handed out (its input does not resolve). Not retried. */
  async failUnstarted(task: TaskEntity, error: { code: string; message: string }): Promise<void> {
    await this.engine.inWorkflow(task.workflow_id, async (ctx, wf) => {
      const current = await ctx.em.getRepository(TaskEntity).findOneBy({ id: task.id });
      if (!current || current.state !== 'RUNNING' || current.lease_token !== task.lease_token) return;
      await this.engine.failAttempt(ctx, wf, current, error, false, {}, 'fail');
    });
  }

  /** Called by the reconciler for a RUNNING task whose lease or run time is over. */
  async expire(taskId: string, workflowId: string): Promise<void> {
    await this.engine.inWorkflow(workflowId, async (ctx, wf) => {
      const task = await ctx.em.getRepository(TaskEntity).findOneBy({ id: taskId });
      if (!task || task.state !== 'RUNNING') return;
      const timedOut = task.deadline_at !== null && task.deadline_at <= ctx.now;
      const leaseOver = (task.lease_expires_at ?? 0) <= ctx.now;
      if (!timedOut && !leaseOver) return;
      const error = timedOut
        ? { code: 'TIMEOUT', message: `attempt ${task.attempt} ran longer than timeout_s=${task.timeout_s}` }
        : { code: 'LEASE_EXPIRED', message: `the lease of attempt ${task.attempt} expired without a heartbeat (worker ${task.worker_id ?? 'unknown'})` };
      this.logger.event('info', 'lease', timedOut ? 'attempt timed out' : 'lease expired', { task_id: task.id, attempt: task.attempt });
      await this.engine.failAttempt(ctx, wf, task, error, true, {}, 'expired');
      this.expired({ code: error.code });
    });
  }

  /**
   * Runs a report under the task's workflow lock once its token, state and lease are
   * checked; `apply` returns the task as it is afterwards.
   */
  private async report(
    taskId: string,
    token: string,
    kind: LeaseOutcome,
    apply: (ctx: TxContext, wf: WorkflowEntity, task: TaskEntity) => Promise<TaskEntity>,
  ): Promise<TaskEntity> {
    return this.engine.inTaskWorkflow(taskId, async (ctx, wf, task) => {
      this.checkToken(task, token);
      if (task.lease_outcome === kind) return task; // the same report again: same answer
      if (task.lease_outcome !== null || task.state !== 'RUNNING') throw this.ended(task);
      if ((task.lease_expires_at ?? 0) < ctx.now) {
        throw conflict(`the lease of task ${task.id} expired at ${new Date(task.lease_expires_at ?? 0).toISOString()}; the attempt counts as failed`, { state: task.state });
      }
      const after = await apply(ctx, wf, task);
      this.reports({ kind });
      return after;
    });
  }

  private async find(taskId: string): Promise<TaskEntity> {
    const task = await this.db.manager.getRepository(TaskEntity).findOneBy({ id: taskId });
    if (!task) throw notFound('task', taskId);
    return task;
  }

  private checkToken(task: TaskEntity, token: string): void {
    if (task.lease_token !== token) {
      this.refused();
      throw conflict(`lease_token is not the current lease of task ${task.id} (task is ${task.state}, attempt ${task.attempt})`, { state: task.state, attempt: task.attempt });
    }
  }

  private ended(task: TaskEntity) {
    return conflict(`the lease of task ${task.id} has ended (${task.lease_outcome ?? 'task moved on'}); task is ${task.state}, attempt ${task.attempt}`, { state: task.state, attempt: task.attempt });
  }
}
