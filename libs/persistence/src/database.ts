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
    return this.transaction(async (em) => fn(em, (await this.lockWorkflows(em, 'WHERE id = :id', { id: workflowId }))[0] ?? null));
  }

  /** `withWorkflowLock` for the workflows of several tasks (a task never changes workflow), locked in id order. */
  async withTasksWorkflowsLock<T>(taskIds: readonly string[], fn: (em: EntityManager, workflows: WorkflowEntity[]) => Promise<T>): Promise<T> {
    return this.transaction(async (em) => fn(em, await this.lockWorkflows(em, 'WHERE id IN (SELECT t.workflow_id FROM task t WHERE t.id IN (:ids))', { ids: taskIds })));
  }

  private async lockWorkflows(em: EntityManager, where: string, params: Record<string, unknown>): Promise<WorkflowEntity[]> {
    const select = `SELECT * FROM workflow ${where} ORDER BY id`;
    const { rows } = await sql(em, this.kind === 'postgres' ? `${select} FOR UPDATE` : select, params);
    return rows.map((r) => hydrate(em, WorkflowEntity, r));
  }
}

/**
 * Inserts rows in multi-row statements, as the entity's columns store them (JSON as
 * text, transformers applied); a property a row lacks takes the column's default, or
 * NULL. Hand-written rather than TypeORM's insert builder, whose parameter handling
 * grows with the square of a batch's size (it was the largest cost of accepting a
 * thousand tasks), and which re-reads inserted rows on SQLite.
 */
export async function insertRows<T extends object>(em: EntityManager, entity: new () => T, rows: readonly object[]): Promise<void> {
  if (rows.length === 0) return;
  const meta = em.connection.getMetadata(entity);
  const present = new Set(rows.flatMap((r) => Object.keys(r).filter((k) => (r as Record<string, unknown>)[k] !== undefined)));
  const columns = meta.columns.filter((c) => present.has(c.propertyName) || (!c.isGenerated && c.default !== undefined));
  // Both databases take at least 32,766 parameters per statement.
  const chunk = Math.max(1, Math.floor(30_000 / columns.length));
  const names = columns.map((c) => c.databaseName).join(', ');
  const driver = em.connection.driver;
  for (let i = 0; i < rows.length; i += chunk) {
    const params: Record<string, unknown> = {};
    const tuples = rows.slice(i, i + chunk).map((row, r) => {
      const values = columns.map((c, k) => {
        const value = (row as Record<string, unknown>)[c.propertyName];
        params[`v${r}_${k}`] = value === undefined ? (c.default ?? null) : driver.preparePersistentValue(value, c);
        return `:v${r}_${k}`;
      });
      return `(${values.join(', ')})`;
    });
    await sql(em, `INSERT INTO ${meta.tableName} (${names}) VALUES ${tuples.join(', ')}`, params);
  }
}
