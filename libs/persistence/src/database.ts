import type { DataSource, EntityManager } from 'typeorm';
import { WorkflowEntity } from './entities/workflow.entity.js';
import type { DatabaseKind } from './data-source.js';
import { hydrate, sql } from './sql.js';

/**
 * Transactions and the per-workflow lock.
 *
 * Every change that can release a dependency or finish a workflow runs inside
 * `withWorkflowLock`, so two API processes never evaluate one workflow at once: on
 * PostgreSQL the workflow row is locked `FOR UPDATE`; SQLite has one connection and
 * one writer, so there every write transaction is serialized in this process (and
 * SQLite supports one API process; run PostgreSQL for replicas).
 */
export class Database {
  readonly kind: DatabaseKind;
  private sqliteTail: Promise<unknown> = Promise.resolve();

  constructor(readonly dataSource: DataSource) {
    this.kind = dataSource.options.type === 'postgres' ? 'postgres' : 'sqlite';
  }

  get manager(): EntityManager {
    return this.dataSource.manager;
  }

  async initialize(): Promise<void> {
    await this.dataSource.initialize();
    await this.dataSource.runMigrations({ transaction: 'each' });
  }

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }

  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  async transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    if (this.kind === 'postgres') return this.dataSource.transaction(fn);
    const run = this.sqliteTail.then(() => this.dataSource.transaction(fn));
    this.sqliteTail = run.catch(() => undefined);
    return run;
  }

  /** Runs `fn` holding the workflow's lock; `workflow` is null when the id is unknown. */
  async withWorkflowLock<T>(workflowId: string, fn: (em: EntityManager, workflow: WorkflowEntity | null) => Promise<T>): Promise<T> {
    return this.transaction(async (em) => fn(em, await this.lockWorkflow(em, 'SELECT * FROM workflow WHERE id = :id', workflowId)));
  }

  /**
   * `withWorkflowLock` for the workflow of a task, found in the same statement (a task
   * never changes workflow); `workflow` is null when the task does not exist.
   */
  async withTaskWorkflowLock<T>(taskId: string, fn: (em: EntityManager, workflow: WorkflowEntity | null) => Promise<T>): Promise<T> {
    return this.transaction(async (em) => fn(em, await this.lockWorkflow(em, 'SELECT * FROM workflow WHERE id = (SELECT t.workflow_id FROM task t WHERE t.id = :id)', taskId)));
  }

  /** `withWorkflowLock` for the workflows of several tasks, locked in id order. */
  async withTasksWorkflowsLock<T>(taskIds: readonly string[], fn: (em: EntityManager, workflows: WorkflowEntity[]) => Promise<T>): Promise<T> {
    return this.transaction(async (em) => {
      const select = 'SELECT * FROM workflow WHERE id IN (SELECT t.workflow_id FROM task t WHERE t.id IN (:ids)) ORDER BY id';
      const { rows } = await sql(em, this.kind === 'postgres' ? `${select} FOR UPDATE` : select, { ids: taskIds });
      return fn(em, rows.map((r) => hydrate(em, WorkflowEntity, r)));
    });
  }

  private async lockWorkflow(em: EntityManager, select: string, id: string): Promise<WorkflowEntity | null> {
    const { rows } = await sql(em, this.kind === 'postgres' ? `${select} FOR UPDATE` : select, { id });
    return rows.length ? hydrate(em, WorkflowEntity, rows[0]) : null;
  }
}

/**
 * Inserts rows in chunks, without TypeORM's post-insert reload: on SQLite that reload
 * re-selects the rows to fill defaults and merges them back by position, which can
 * swap values between objects when the rows come back in another order.
 */
export async function insertRows<T extends object>(em: EntityManager, entity: new () => T, rows: readonly object[], chunk = 200): Promise<void> {
  for (let i = 0; i < rows.length; i += chunk) {
    await em.createQueryBuilder().insert().into(entity).values(rows.slice(i, i + chunk)).updateEntity(false).execute();
  }
}
