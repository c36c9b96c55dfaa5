import type { EntityManager } from 'typeorm';
import type { TaskEntity } from '../entities/task.entity.js';
import type { WorkflowEntity } from '../entities/workflow.entity.js';
import { AuditRepository } from './audit.repository.js';
import { CallbackRepository } from './callback.repository.js';
import { DataRepository } from './data.repository.js';
import { DependencyRepository } from './dependency.repository.js';
import { EventRepository } from './event.repository.js';
import { IdempotencyRepository } from './idempotency.repository.js';
import { KeyRepository } from './key.repository.js';
import { LeaseRepository } from './lease.repository.js';
import { LimitRepository } from './limit.repository.js';
import { LogRepository } from './log.repository.js';
import { ScheduleRepository } from './schedule.repository.js';
import { TaskRepository } from './task.repository.js';
import { TransitionRepository } from './transition.repository.js';
import { WorkerRepository } from './worker.repository.js';
import { WorkflowRepository } from './workflow.repository.js';

export * from './audit.repository.js';
export * from './callback.repository.js';
export * from './data.repository.js';
export * from './dependency.repository.js';
export * from './event.repository.js';
export * from './idempotency.repository.js';
export * from './key.repository.js';
export * from './lease.repository.js';
export * from './limit.repository.js';
export * from './log.repository.js';
export * from './schedule.repository.js';
export * from './task.repository.js';
export * from './transition.repository.js';
export * from './worker.repository.js';
export * from './workflow.repository.js';

/**
 * The repositories of one transaction (or of plain reads outside one), at one clock:
 * the only code in Tagflow that speaks SQL.
 */
export class Repositories {
  readonly tasks: TaskRepository;
  readonly leases: LeaseRepository;
  readonly deps: DependencyRepository;
  readonly transitions: TransitionRepository;
  readonly workflows: WorkflowRepository;
  readonly data: DataRepository;
  readonly workers: WorkerRepository;
  readonly events: EventRepository;
  readonly keys: KeyRepository;
  readonly audit: AuditRepository;
  readonly idempotency: IdempotencyRepository;
  readonly logs: LogRepository;
  readonly limits: LimitRepository;
  readonly schedules: ScheduleRepository;
  readonly callbacks: CallbackRepository;

  /** The clock of the operation: every row it writes carries this time. */
  now: number;

  /** `deferEvents`: task events are written when the transaction flushes them (EventRepository). */
  constructor(
    em: EntityManager,
    now: number,
    private readonly clock: () => number = Date.now,
    deferEvents = false,
  ) {
    this.now = now;
    this.events = new EventRepository(em, deferEvents);
    this.tasks = new TaskRepository(em);
    this.leases = new LeaseRepository(em);
    this.deps = new DependencyRepository(em);
    this.limits = new LimitRepository(em);
    this.transitions = new TransitionRepository(em, () => this.now, this.events, this.limits);
    this.workflows = new WorkflowRepository(em, () => this.events.flush());
    this.data = new DataRepository(em);
    this.workers = new WorkerRepository(em);
    this.keys = new KeyRepository(em);
    this.audit = new AuditRepository(em);
    this.idempotency = new IdempotencyRepository(em);
    this.logs = new LogRepository(em);
    this.schedules = new ScheduleRepository(em);
    this.callbacks = new CallbackRepository(em);
  }

  /** Reads the clock again (after waiting for a lock, so times follow the order of the locks). */
  restartClock(): void {
    this.now = this.clock();
  }

  /**
   * Takes: task ids. Locks their workflows (WorkflowRepository.lockOfTasks), then reads the
   * tasks under those locks; the clock restarts once the locks are held. On PostgreSQL the
   * read is sent behind the lock without waiting for it (the client pipelines): the server
   * runs it only once the locks are granted, so it sees every change committed before them,
   * and the two cost one round trip. The order on the wire is the order of the calls: each
   * reaches `query` without awaiting anything first (lockWhere and load), and `query` hands a
   * transaction's statement to the client before it returns. A failed lock is the error thrown
   * (the read then fails only because the transaction is aborted).
   */
  async lockOfTasksWithTasks(ids: readonly string[]): Promise<{ workflows: WorkflowEntity[]; tasks: TaskEntity[] }> {
    const locking = this.workflows.lockOfTasks(ids);
    const reading = this.tasks.load(ids);
    reading.catch(() => undefined); // awaited below, once the lock has answered
    const workflows = await locking;
    this.restartClock();
    return { workflows, tasks: await reading };
  }
}
