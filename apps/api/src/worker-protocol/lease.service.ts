import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { LIMITS } from '@tagflow/domain';
import { Database, type ClaimJob, type JsonObject, type LeaseOutcome, type TaskEntity } from '@tagflow/persistence';
import { JobQueue, jobIdFor } from '@tagflow/queue';
import { Batcher } from '../common/batcher.js';
import { conflict, notFound, tooLarge, Unavailable, type ApiError } from '../common/errors.js';
import { JsonLogger } from '../common/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { leaseHasJob } from '../dispatch/leases.js';
import { Engine } from '../engine/engine.js';
import { failAttempt, INTERRUPTED_CODE } from '../engine/failure.js';
import { markCompleted, type Completion } from '../engine/reports.js';
import type { CompleteDto, FailDto, HeartbeatDto } from './worker-protocol.dto.js';

/** Jobs written in one claim transaction at most (five parameters each). */
const CLAIM_BATCH = 500;
/** Completions written in one transaction at most. */
const COMPLETION_BATCH = 100;
/** Completions waiting for their transaction at most; more answer 503 (the worker sends them again). */
const REPORTS_WAITING_MAX = 5000;

interface Report {
  taskId: string;
  namespace: string;
  /** When the report arrived (database clock): its lease is judged at that time, not when its batch is written. */
  arrivedAt: number;
  dto: CompleteDto;
  output: JsonObject;
}

/**
 * The worker protocol after a task was offered: claim, heartbeat, complete, fail, and
 * expiry. A report must carry the current lease's token; a stale one gets 409 and
 * changes nothing; the same report repeated with the current token gets the same answer.
 */
@Injectable()
export class LeaseService {
  private readonly claims = new Batcher<readonly ClaimJob[], TaskEntity[]>(
    (b) => this.writeClaims(b),
    CLAIM_BATCH,
    (jobs) => jobs.length,
  );
  private readonly completions = new Batcher<Report, TaskEntity>(
    (b) => this.writeCompletions(b),
    COMPLETION_BATCH,
    undefined,
    REPORTS_WAITING_MAX,
    () => new Unavailable(`${REPORTS_WAITING_MAX} reports are waiting for the database; send this one again shortly`),
  );
  private readonly reports: (labels?: Record<string, string>, by?: number) => void;
  private readonly refused: (labels?: Record<string, string>) => void;
  private readonly expired: (labels?: Record<string, string>) => void;
  private readonly lockNotExtended: (e: unknown) => void;

  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    private readonly jobs: JobQueue,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    metrics: MetricsService,
  ) {
    this.reports = metrics.counter('tagflow_task_reports_total', 'Reports accepted from workers, by kind.');
    this.refused = metrics.counter(
      'tagflow_task_reports_refused_total',
      'Reports and heartbeats refused for a stale lease.',
    );
    this.expired = metrics.counter(
      'tagflow_attempts_expired_total',
      'Attempts ended by lease expiry or run timeout, by code.',
    );
    this.lockNotExtended = metrics.ignored('lease.redis-lock-extend', (where, error) =>
      this.logger.event(
        'debug',
        'lease',
        'the Redis lock of a lease was not extended (the lease, in the database, was)',
        { where, error },
      ),
    );
  }

  newToken(): string {
    return randomUUID();
  }

  /**
   * Turns jobs fetched from tag sets' queues into leases (READY -> RUNNING). Claims of
   * concurrent polls are written together (a thousand woken polls make a few
   * transactions, not a thousand). Resolves to the tasks leased; a job missing from the
   * answer was stale (task moved on, cancelled, deleted, paused) and the caller drops it.
   */
  claim(jobs: readonly ClaimJob[]): Promise<TaskEntity[]> {
    return this.claims.submit(jobs);
  }

  private async writeClaims(batch: (readonly ClaimJob[])[]): Promise<TaskEntity[][]> {
    // The claim is the transaction's last statement: a claim changes no task the engine settles.
    const leased = await this.engine.inTransaction((uow) => uow.repos.transitions.claim(batch.flat(), { last: true }));
    const byToken = new Map(leased.map((t) => [t.lease_token, t]));
    return batch.map((jobs) => jobs.flatMap((j) => byToken.get(j.token) ?? []));
  }

  /** The task, when `token` is its current, unexpired lease; else 404 / 409 saying why. */
  async current(taskId: string, token: string, namespace: string): Promise<TaskEntity> {
    const task = await this.find(taskId, namespace);
    if (task.lease_token !== token) throw this.staleToken(task);
    if (task.lease_outcome !== null || task.state !== 'RUNNING') throw this.ended(task);
    if ((task.lease_expires_at ?? 0) < this.db.now())
      throw conflict(expiredText(task), { state: task.state }, 'LEASE_EXPIRED');
    return task;
  }

  async heartbeat(
    taskId: string,
    dto: HeartbeatDto,
    namespace: string,
  ): Promise<{ expires_at: number; cancel_requested: boolean }> {
    const task = await this.current(taskId, dto.lease_token, namespace);
    const now = this.db.now();
    const expires = now + task.lease_s * 1000;
    const extended = await this.db.transaction(
      (repos) => repos.leases.extend(task.id, dto.lease_token, expires, now, dto.progress),
      now,
    );
    if (!extended) throw this.ended(await this.find(taskId, namespace));
    // The Redis lock mirrors the lease; losing it (Redis restarted) does not end the lease.
    if (leaseHasJob(dto.lease_token)) {
      this.jobs
        .extend(task.tagset_id, jobIdFor(task.id, task.attempt), dto.lease_token, task.lease_s * 1000)
        .catch(this.lockNotExtended);
    }
    return { expires_at: expires, cancel_requested: task.cancel_requested };
  }

  async complete(taskId: string, dto: CompleteDto, namespace: string): Promise<TaskEntity> {
    const arrivedAt = this.db.now();
    const output = dto.output ?? {};
    const size = Buffer.byteLength(JSON.stringify(output));
    if (size > LIMITS.outputMaxBytes) throw tooLarge(`output is ${size} bytes; the limit is ${LIMITS.outputMaxBytes}`);
    return this.completions.submit({ taskId, namespace, arrivedAt, dto, output });
  }

  /**
   * Completions of concurrent reports, in one transaction holding the lock of each
   * workflow involved: each report is checked on its own (a stale one gets its 409 and
   * changes nothing); the settle loop then moves each workflow once for all its tasks.
   */
  private async writeCompletions(batch: Report[]): Promise<(TaskEntity | Error)[]> {
    // Counted once the transaction is committed (it may run again: Engine.run).
    let written = 0;
    const answers = await this.engine.inTasksWorkflows(
      batch.map((c) => c.taskId),
      async (uow, workflows, tasks) => {
        const answers: (TaskEntity | Error)[] = [];
        const accepted = new Map<string, Completion>();
        for (const c of batch) {
          const found = tasks.get(c.taskId);
          const task = found?.namespace === c.namespace ? found : undefined;
          const refusal = task
            ? this.refusal(task, c.dto.lease_token, 'complete', c.arrivedAt)
            : notFound('task', c.taskId);
          if (!task || refusal instanceof Error) {
            answers.push(refusal as Error);
            continue;
          }
          // The answer is the task object, which follows its row once the batch is written; the
          // same report twice in a batch gets the same answer.
          answers.push(task);
          if (refusal === 'same' || accepted.has(task.id)) continue;
          accepted.set(task.id, { wf: workflows.get(task.workflow_id)!, task, output: c.output, report: c.dto });
        }
        await markCompleted(uow, [...accepted.values()]);
        written = accepted.size;
        return answers;
      },
    );
    if (written > 0) this.reports({ kind: 'complete' }, written);
    return answers;
  }

  /**
   * A failed attempt. A `WORKER_SHUTDOWN` hand-back from a registered worker also marks that
   * worker stopping (`stoppingWorker` in the answer): it may not poll again under its id.
   */
  async fail(
    taskId: string,
    dto: FailDto,
    namespace: string,
  ): Promise<{ task: TaskEntity; stoppingWorker: string | null }> {
    const arrivedAt = this.db.now();
    const error = {
      message: dto.error.message,
      code: dto.error.code ?? (dto.exit_code !== undefined ? String(dto.exit_code) : null),
    };
    const done = await this.engine.inTasksWorkflows([taskId], async (uow, workflows, tasks) => {
      const task = tasks.get(taskId);
      if (!task || task.namespace !== namespace) throw notFound('task', taskId);
      const refusal = this.refusal(task, dto.lease_token, 'fail', arrivedAt);
      if (refusal === 'same') return { task, stoppingWorker: null, counted: false }; // the same report again: same answer
      if (refusal) throw refusal;
      const stoppingWorker = error.code === INTERRUPTED_CODE ? task.worker_id : null;
      if (stoppingWorker) await uow.repos.workers.markStopping(stoppingWorker, uow.now);
      await failAttempt(uow, workflows.get(task.workflow_id)!, task, error, dto.error.retryable !== false, dto, 'fail');
      await uow.settle();
      return { task: (await uow.repos.tasks.get(taskId))!, stoppingWorker, counted: true };
    });
    if (done.counted) this.reports({ kind: 'fail' }); // once committed (the transaction may run again)
    return { task: done.task, stoppingWorker: done.stoppingWorker };
  }

  /** Fails a task just leased that cannot be handed out (its input does not resolve). Not retried. */
  async failUnstarted(task: TaskEntity, error: { code: string; message: string }): Promise<void> {
    await this.engine.inWorkflow(task.workflow_id, async (uow, wf) => {
      const current = await uow.repos.tasks.get(task.id);
      if (!current || current.state !== 'RUNNING' || current.lease_token !== task.lease_token) return;
      await failAttempt(uow, wf, current, error, false, {}, 'fail');
    });
  }

  /**
   * Gives back leases that were never delivered (the poll's key was revoked as its answer
   * was ready): each task is READY again at once, outside its retry budget, as a worker's
   * hand-back is.
   */
  async handBack(tasks: readonly TaskEntity[], why: string): Promise<void> {
    for (const task of tasks) {
      await this.engine.inWorkflow(task.workflow_id, async (uow, wf) => {
        const current = await uow.repos.tasks.get(task.id);
        if (!current || current.state !== 'RUNNING' || current.lease_token !== task.lease_token) return;
        await failAttempt(
          uow,
          wf,
          current,
          { code: 'LEASE_NOT_DELIVERED', message: `the lease was not delivered: ${why}` },
          true,
          {},
          'fail',
          true,
        );
      });
    }
  }

  /**
   * Records the inputs leased tasks' workers receive, references replaced (shown on each
   * task), in one transaction. A failure here loses only that record: the leases stand.
   */
  async recordResolvedInputs(tasks: readonly TaskEntity[]): Promise<void> {
    if (tasks.length === 0) return;
    try {
      await this.db.transaction(async (repos) => {
        for (const t of tasks) await repos.leases.setResolvedInput(t.id, t.lease_token!, t.resolved_input!);
      });
    } catch (e) {
      this.logger.event('warn', 'lease', 'could not record the resolved inputs of leased tasks', {
        tasks: tasks.map((t) => t.id),
        error: String(e),
      });
    }
  }

  /** Called by the reconciler for a RUNNING task whose lease or run time is over. */
  async expire(taskId: string, workflowId: string): Promise<void> {
    const code = await this.engine.inWorkflow(workflowId, async (uow, wf) => {
      const task = await uow.repos.tasks.get(taskId);
      if (!task || task.state !== 'RUNNING') return null;
      const timedOut = task.deadline_at !== null && task.deadline_at <= uow.now;
      const leaseOver = (task.lease_expires_at ?? 0) <= uow.now;
      if (!timedOut && !leaseOver) return null;
      const error = timedOut
        ? { code: 'TIMEOUT', message: `attempt ${task.attempt} ran longer than timeout_s=${task.timeout_s}` }
        : {
            code: 'LEASE_EXPIRED',
            message: `the lease of attempt ${task.attempt} expired without a heartbeat (worker ${task.worker_id ?? 'unknown'})`,
          };
      this.logger.event('info', 'lease', timedOut ? 'attempt timed out' : 'lease expired', {
        task_id: task.id,
        attempt: task.attempt,
      });
      await failAttempt(uow, wf, task, error, true, {}, 'expired');
      return error.code;
    });
    if (code) this.expired({ code });
  }

  private async find(taskId: string, namespace: string): Promise<TaskEntity> {
    const task = await this.db.read().tasks.get(taskId, namespace);
    if (!task) throw notFound('task', taskId);
    return task;
  }

  /**
   * Why a report cannot be applied (409), 'same' when it repeats the report that ended the
   * lease, or null. The lease is judged at the report's arrival: waiting for its batch's
   * transaction does not make a report late.
   */
  private refusal(task: TaskEntity, token: string, kind: LeaseOutcome, arrivedAt: number): ApiError | 'same' | null {
    if (task.lease_token !== token) return this.staleToken(task);
    if (task.lease_outcome === kind) return 'same';
    if (task.lease_outcome !== null || task.state !== 'RUNNING') return this.ended(task);
    if ((task.lease_expires_at ?? 0) < arrivedAt)
      return conflict(`${expiredText(task)}; the attempt counts as failed`, { state: task.state }, 'LEASE_EXPIRED');
    return null;
  }

  private staleToken(task: TaskEntity): ApiError {
    this.refused();
    return conflict(
      `lease_token is not the current lease of task ${task.id} (task is ${task.state}, attempt ${task.attempt})`,
      { state: task.state, attempt: task.attempt },
      'LEASE_STALE',
    );
  }

  private ended(task: TaskEntity): ApiError {
    return conflict(
      `the lease of task ${task.id} has ended (${task.lease_outcome ?? 'task moved on'}); task is ${task.state}, attempt ${task.attempt}`,
      { state: task.state, attempt: task.attempt },
      'LEASE_ENDED',
    );
  }
}

function expiredText(task: TaskEntity): string {
  return `the lease of task ${task.id} expired at ${new Date(task.lease_expires_at ?? 0).toISOString()}`;
}
