import { Inject, Injectable, Optional } from '@nestjs/common';
import { Database, isStaleStatement, type TaskEntity, type WorkflowEntity } from '@tagflow/persistence';
import { notFound } from '../common/errors.js';
import { JsonLogger } from '../common/logger.js';
import { recordCallbacks } from './callbacks.js';
import { releaseHeld } from './limits.js';
import { settle } from './settle.js';
import { HAND_OFF_PORT, type HandOffPlan, type HandOffPort } from './hand-off.js';
import { EFFECTS_PORT, EngineSettings, UnitOfWork, type EffectsPort } from './unit-of-work.js';

/**
 * Runs engine operations. Each is one transaction: the operation's changes, then the
 * settle loop (settle.ts) until nothing follows from them, then the commit; the effects
 * go to the queue and the bus after the commit. Operations that can release a
 * dependency or finish a workflow hold that workflow's lock, so two API processes never
 * evaluate one workflow at once.
 */
@Injectable()
export class Engine {
  constructor(
    private readonly db: Database,
    @Inject(EFFECTS_PORT) private readonly effects: EffectsPort,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
    private readonly settings: EngineSettings,
    @Optional() @Inject(HAND_OFF_PORT) private readonly handOff: HandOffPort | null = null,
  ) {}

  /**
   * Runs `fn` under the workflow's lock; 404 when the workflow does not exist or (for a
   * request, which names the namespace it acts in) lives in another namespace.
   */
  inWorkflow<T>(
    workflowId: string,
    fn: (uow: UnitOfWork, wf: WorkflowEntity) => Promise<T>,
    namespace?: string,
  ): Promise<T> {
    return this.run(async (uow) => {
      const wf = await uow.repos.workflows.lock(workflowId, namespace);
      if (!wf) throw notFound('workflow', workflowId);
      uow.repos.restartClock();
      return fn(uow, wf);
    });
  }

  /**
   * Runs `fn` holding the locks of the workflows of `taskIds` (taken in id order, so two
   * replicas never wait on each other in a circle), with those tasks read under them.
   * Unknown tasks are absent from `tasks`.
   */
  inTasksWorkflows<T>(
    taskIds: readonly string[],
    fn: (uow: UnitOfWork, workflows: Map<string, WorkflowEntity>, tasks: Map<string, TaskEntity>) => Promise<T>,
  ): Promise<T> {
    const ids = [...new Set(taskIds)];
    return this.run(async (uow) => {
      const { workflows, tasks } = await uow.repos.lockOfTasksWithTasks(ids);
      return fn(uow, new Map(workflows.map((w) => [w.id, w])), new Map(tasks.map((t) => [t.id, t])));
    });
  }

  /** A transaction without a workflow lock (claims: guarded rows of any workflow; a new workflow). */
  inTransaction<T>(fn: (uow: UnitOfWork) => Promise<T>): Promise<T> {
    return this.run(fn);
  }

  /**
   * One transaction; run again (a fresh unit of work, everything read anew) when the
   * database refused it for a conflict with another transaction: a lock not granted within
   * lock_timeout, a deadlock, a serialization failure. Nothing of a refused transaction
   * was written or published, so running it again is safe; a report waiting behind a long
   * operation on its workflow is then applied instead of answering 503.
   */
  private async run<T>(fn: (uow: UnitOfWork) => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      let uow: UnitOfWork | undefined;
      let plan: HandOffPlan | null = null;
      let leased: TaskEntity[] = [];
      try {
        const result = await this.db.transaction(async (repos) => {
          uow = new UnitOfWork(repos, this.logger, settle, this.settings.evaluationBudget);
          const value = await fn(uow);
          await uow.settle();
          // Tasks left RUNNING: tasks held by their concurrency limits may go now.
          if (uow.leasesEndedIn.size > 0) await releaseHeld(uow, [...uow.leasesEndedIn]);
          await recordCallbacks(uow);
          // Tasks made READY that polls parked here can take: leased in this same transaction.
          plan = this.handOff?.plan(uow.readyNow()) ?? null;
          if (plan) {
            // The transaction's last statement: nothing after it writes (its events are the claim's).
            leased = await repos.transitions.claim(plan.jobs, { last: true });
            uow.handedOff(plan.jobs.map((j) => j.taskId));
          }
          return value;
        });
        (plan as HandOffPlan | null)?.deliver(leased);
        await this.effects.publish(uow!.publishable());
        return result;
      } catch (e) {
        (plan as HandOffPlan | null)?.cancel();
        const conflict = conflictOf(e);
        if (!conflict || attempt >= CONFLICT_ATTEMPTS || Date.now() - started > CONFLICT_RETRY_WITHIN_MS) throw e;
        this.logger.event('info', 'engine', 'transaction refused for a conflict; running it again', {
          conflict,
          attempt,
          waited_ms: Date.now() - started,
        });
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 80 * attempt));
      }
    }
  }
}

/**
 * Attempts of a transaction refused for a conflict, and the time after the first past which
 * none starts: an attempt may wait lock_timeout (10 s) for a lock, so a request is answered
 * (or refused with 503) within about 25 s, before a client's 30 s timeout.
 */
const CONFLICT_ATTEMPTS = 4;
const CONFLICT_RETRY_WITHIN_MS = 12_000;

/** PostgreSQL's codes for a transaction refused because of another one (not because the database is away). */
const CONFLICTS: Record<string, string> = {
  '55P03': 'lock timeout',
  '40P01': 'deadlock',
  '40001': 'serialization failure',
};

function conflictOf(e: unknown): string | null {
  // A prepared statement another replica's migration made stale, or the server lost: renamed since.
  if (isStaleStatement(e)) return 'a statement prepared before the schema changed';
  const raw =
    (e as { code?: unknown; driverError?: { code?: unknown } } | null)?.code ??
    (e as { driverError?: { code?: unknown } } | null)?.driverError?.code;
  return typeof raw === 'string' ? (CONFLICTS[raw] ?? null) : null;
}
