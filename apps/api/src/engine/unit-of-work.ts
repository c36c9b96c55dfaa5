import { queueTags } from '@tagflow/domain';
import type { Repositories, TaskEntity, WorkflowEntity } from '@tagflow/persistence';
import type { JsonLogger } from '../common/logger.js';

/**
 * What a state change leaves for the settle loop to do, in the same transaction. The
 * loop (settle.ts) applies them in the order they were recorded; a fact never calls back
 * into the code that recorded it.
 */
export type Fact =
  /** WAITING tasks to evaluate; objects the caller holds are updated in place when they become READY. */
  | { kind: 'evaluate'; wf: WorkflowEntity; tasks: TaskEntity[] }
  /** The same, for tasks known by id (only those still WAITING are evaluated). */
  | { kind: 'evaluate-ids'; wf: WorkflowEntity; ids: string[] }
  /** Tasks reached a terminal state, or an ERROR became handled: their dependents and handler parents move. */
  | { kind: 'settled'; wf: WorkflowEntity; tasks: TaskEntity[] }
  /** An ERROR with nothing left to retry: its on_error handlers start, or the workflow's on_failure applies. */
  | { kind: 'failed-for-good'; wf: WorkflowEntity; task: TaskEntity }
  /** A data key was written: the tasks reading it are evaluated. */
  | { kind: 'data-written'; wf: WorkflowEntity; key: string };

/**
 * What the outside world must hear once the transaction has committed (effects.ts sends
 * them to the job queue and the bus).
 */
export type Effect =
  /** `tags`: as its queue knows them, its namespace's tag included. */
  | {
      kind: 'task-ready';
      taskId: string;
      attempt: number;
      tagsetId: string;
      tags: readonly string[];
      delayMs: number;
      priority: number;
    }
  | { kind: 'task-finished'; taskId: string }
  | { kind: 'lease-ended'; tagsetId: string; taskId: string; attempt: number; token: string }
  | { kind: 'data-written'; workflowId: string; key: string }
  | { kind: 'workflow-finished'; workflowId: string; state: string };

/** Where effects go after commit. */
export interface EffectsPort {
  publish(effects: readonly Effect[]): Promise<void>;
}
export const EFFECTS_PORT = Symbol('EFFECTS_PORT');

/**
 * One engine operation: its transaction's repositories and clock, the facts still to
 * settle, the workflows whose workflow-wide questions (done? deadlocked? roll back?)
 * must be asked once nothing else is pending, and the effects for after commit.
 */
/**
 * Waiting tasks one operation evaluates at most (EVALUATION_BUDGET, 5000 by default).
 * Beyond it (a root failing under 100,000 dependents), the rest is left for later
 * transactions (`settle_pending`, continued by the reconciler), so no single transaction
 * holds the workflow, and SQLite's writer, for the whole cascade.
 */
export class EngineSettings {
  evaluationBudget = 5000;
}

export class UnitOfWork {
  readonly effects: Effect[] = [];
  /** Evaluations this operation may still do (see EngineSettings). */
  private budget: number;
  /** Workflows with evaluations left for later: marked settle_pending when this operation settles. */
  private readonly deferred = new Set<string>();
  /** Namespaces where a task left RUNNING during this operation: their concurrency limits may have room now. */
  readonly leasesEndedIn = new Set<string>();
  /** Whether a task ended (skipped, failed, cancelled) during this operation: callers holding rows read them again. */
  endedAny = false;
  private readonly facts: Fact[] = [];
  private head = 0;
  private readonly touched = new Map<string, WorkflowEntity>();
  private readonly finished = new Set<string>();
  private readonly mayCallBack = new Set<string>();
  private readonly handed = new Set<string>();

  constructor(
    readonly repos: Repositories,
    readonly logger: JsonLogger,
    private readonly settler: (uow: UnitOfWork) => Promise<void>,
    /** Waiting tasks this operation evaluates at most (EngineSettings). */
    readonly evaluationBudget: number,
  ) {
    this.budget = evaluationBudget;
  }

  get now(): number {
    return this.repos.now;
  }

  record(fact: Fact): void {
    this.facts.push(fact);
    this.touch(fact.wf);
  }

  /** The next fact to apply, oldest first. */
  next(): Fact | undefined {
    if (this.head === this.facts.length) return undefined;
    const fact = this.facts[this.head++];
    if (this.head > 1024) {
      this.facts.splice(0, this.head);
      this.head = 0;
    }
    return fact;
  }

  /** Marks a workflow for the workflow-wide check. */
  /** Takes up to `wanted` evaluations of the budget; returns how many may be done now. */
  takeBudget(wanted: number): number {
    const granted = Math.max(0, Math.min(wanted, this.budget));
    this.budget -= wanted;
    return granted;
  }

  /** Some of the workflow's evaluations were left for later. */
  defer(wf: WorkflowEntity): void {
    this.deferred.add(wf.id);
  }

  isDeferred(id: string): boolean {
    return this.deferred.has(id);
  }

  touch(wf: WorkflowEntity): void {
    this.touched.set(wf.id, wf);
  }

  /** The workflows to check now (and forgets them: a check that records facts touches its workflow again). */
  takeTouched(): WorkflowEntity[] {
    const list = [...this.touched.values()];
    this.touched.clear();
    return list;
  }

  /** Applies every recorded fact, then the workflow-wide checks (see settle.ts). */
  settle(): Promise<void> {
    return this.settler(this);
  }

  // ------------------------------------------------------------ effects

  taskReady(
    t: Pick<TaskEntity, 'id' | 'namespace' | 'attempt' | 'tagset_id' | 'tags' | 'priority'>,
    delayMs = 0,
  ): void {
    this.effects.push({
      kind: 'task-ready',
      taskId: t.id,
      attempt: t.attempt,
      tagsetId: t.tagset_id,
      tags: queueTags(t.namespace, t.tags),
      delayMs,
      priority: t.priority,
    });
  }

  /**
   * Tasks that ended. `rows`: the rows of (some of) them as they are now: those without a
   * callback need no look at the database before commit (engine/callbacks.ts).
   */
  tasksFinished(ids: readonly string[], rows?: readonly Pick<TaskEntity, 'id' | 'callback'>[]): void {
    if (ids.length > 0) this.endedAny = true;
    const known = new Map(rows?.map((r) => [r.id, r]));
    for (const taskId of ids) {
      this.finished.add(taskId);
      this.effects.push({ kind: 'task-finished', taskId });
      const row = known.get(taskId);
      if (!row || row.callback) this.mayCallBack.add(taskId);
    }
  }

  /** Finished tasks that have, or may have, a callback. */
  finishedWithCallbacks(): string[] {
    return [...this.mayCallBack].filter((id) => this.finished.has(id));
  }

  /** Tasks made READY by this operation that may be taken now (no delay), for the hand-off to parked polls. */
  readyNow(): Extract<Effect, { kind: 'task-ready' }>[] {
    return this.publishable().filter(
      (e): e is Extract<Effect, { kind: 'task-ready' }> => e.kind === 'task-ready' && e.delayMs === 0,
    );
  }

  /**
   * Tasks the hand-off took in this transaction: leased to parked polls, or held by their
   * concurrency limits on the way (released to the queue when there is room). Not queued.
   */
  handedOff(taskIds: readonly string[]): void {
    for (const id of taskIds) this.handed.add(id);
  }

  /**
   * The effects to send after commit: a task that became ready and then ended in the same
   * operation, or was handed off, is not queued.
   */
  publishable(): Effect[] {
    if (this.finished.size === 0 && this.handed.size === 0) return this.effects;
    return this.effects.filter(
      (e) => e.kind !== 'task-ready' || (!this.finished.has(e.taskId) && !this.handed.has(e.taskId)),
    );
  }

  /** The attempt's lease ended: its job leaves the queue. */
  leaseEnded(t: Pick<TaskEntity, 'id' | 'namespace' | 'attempt' | 'tagset_id' | 'lease_token'>): void {
    this.leasesEndedIn.add(t.namespace);
    if (t.lease_token)
      this.effects.push({
        kind: 'lease-ended',
        tagsetId: t.tagset_id,
        taskId: t.id,
        attempt: t.attempt,
        token: t.lease_token,
      });
  }

  dataWritten(workflowId: string, key: string): void {
    this.effects.push({ kind: 'data-written', workflowId, key });
  }

  workflowFinished(wf: WorkflowEntity): void {
    this.effects.push({ kind: 'workflow-finished', workflowId: wf.id, state: wf.state });
  }
}
