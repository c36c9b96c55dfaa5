import type { DataSource, EntityManager, EntityMetadata } from 'typeorm';
import { WorkflowEntity } from './entities/workflow.entity.js';
import type { DatabaseKind } from './data-source.js';
import { bindable, hydrate, query, sql } from './sql.js';

type ColumnMetadata = EntityMetadata['columns'][number];

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
 * Inserts rows as the entity's columns store them (JSON as text, transformers applied);
 * a property a row lacks takes the column's default, or NULL. Hand-written rather than
 * TypeORM's insert builder, whose parameter handling grows with the square of a batch's
 * size and which re-reads inserted rows on SQLite. On SQLite one prepared single-row
 * statement runs per row on the connection's own handle (the connection that holds the
 * transaction: SQLite has only one), which costs microseconds a row; on PostgreSQL one
 * statement takes every row, a column per array parameter.
 */
export async function insertRows<T extends object>(em: EntityManager, entity: new () => T, rows: readonly object[]): Promise<void> {
  if (rows.length === 0) return;
  const meta = em.connection.getMetadata(entity);
  const present = new Set(rows.flatMap((r) => Object.keys(r).filter((k) => (r as Record<string, unknown>)[k] !== undefined)));
  const columns = meta.columns.filter((c) => present.has(c.propertyName) || (!c.isGenerated && c.default !== undefined));
  const names = columns.map((c) => c.databaseName).join(', ');
  const driver = em.connection.driver;
  const stored = (row: object, c: (typeof columns)[number]) => {
    const value = (row as Record<string, unknown>)[c.propertyName];
    return (value === undefined ? (c.default ?? null) : driver.preparePersistentValue(value, c)) as unknown;
  };
  if (em.connection.options.type !== 'postgres') {
    const insert = sqliteStatement(em, `INSERT INTO ${meta.tableName} (${names}) VALUES (${columns.map(() => '?').join(', ')})`);
    for (const row of rows) insert.run(columns.map((c) => bindable(stored(row, c), true)));
    return;
  }
  // One array parameter per column, zipped by unnest: parsing and binding a multi-row
  // VALUES list costs the server more than running it (a parameter per cell).
  const arrays = columns.map((c, i) => `$${i + 1}::${arrayType(em, c)}`).join(', ');
  await query(em, `INSERT INTO ${meta.tableName} (${names}) SELECT * FROM unnest(${arrays})`, columns.map((c) => rows.map((row) => stored(row, c))));
}

/**
 * Gives each row (matched by `id`) its own values, only where `where` holds for it
 * (`column = value`, e.g. the state a transition starts from), and returns how many
 * rows changed. Every row sets the same properties. PostgreSQL: one `UPDATE … FROM
 * unnest(…)` with an array parameter per column; SQLite: one prepared statement run per
 * row on the connection holding the transaction.
 */
export async function updateEach<T extends object>(
  em: EntityManager,
  entity: new () => T,
  rows: readonly ({ id: string } & Record<string, unknown>)[],
  where: Record<string, unknown>,
): Promise<number> {
  if (rows.length === 0) return 0;
  const meta = em.connection.getMetadata(entity);
  const column = (property: string) => columnOf(meta, property);
  const properties = Object.keys(rows[0]).filter((p) => p !== 'id');
  for (const row of rows) {
    if (Object.keys(row).length !== properties.length + 1 || properties.some((p) => !(p in row))) throw new Error('updateEach: every row must set the same properties');
  }
  const id = column('id');
  const set = properties.map(column);
  const guards = Object.keys(where).map(column);
  const driver = em.connection.driver;
  const stored = (value: unknown, c: (typeof set)[number]) => driver.preparePersistentValue(value, c) as unknown;
  if (em.connection.options.type !== 'postgres') {
    const update = sqliteStatement(
      em,
      `UPDATE ${meta.tableName} SET ${set.map((c) => `${c.databaseName} = ?`).join(', ')} WHERE ${id.databaseName} = ?${guards.map((c) => ` AND ${c.databaseName} = ?`).join('')}`,
    );
    const guardValues = guards.map((c) => bindable(stored(where[c.propertyName], c), true));
    let changed = 0;
    for (const row of rows) changed += update.run([...set.map((c) => bindable(stored(row[c.propertyName], c), true)), row.id, ...guardValues]).changes;
    return changed;
  }
  const zipped = [id, ...set];
  const arrays = zipped.map((c, i) => `$${i + 1}::${arrayType(em, c)}`).join(', ');
  const text =
    `UPDATE ${meta.tableName} t SET ${set.map((c) => `${c.databaseName} = v.${c.databaseName}`).join(', ')}` +
    ` FROM unnest(${arrays}) AS v(${zipped.map((c) => c.databaseName).join(', ')})` +
    ` WHERE t.${id.databaseName} = v.${id.databaseName}${guards.map((c, i) => ` AND t.${c.databaseName} = $${zipped.length + i + 1}`).join('')}`;
  const values = [rows.map((r) => r.id), ...set.map((c) => rows.map((r) => stored(r[c.propertyName], c))), ...guards.map((c) => stored(where[c.propertyName], c))];
  return (await query(em, text, values)).affected;
}

/** PostgreSQL: the array type of one column (`character varying[]`), for `unnest($n::…)` statements. */
export function pgArrayType<T extends object>(em: EntityManager, entity: new () => T, property: string): string {
  return arrayType(em, columnOf(em.connection.getMetadata(entity), property));
}

function arrayType(em: EntityManager, column: ColumnMetadata): string {
  return `${em.connection.driver.normalizeType(column)}[]`;
}

function columnOf(meta: EntityMetadata, property: string): ColumnMetadata {
  const c = meta.findColumnWithPropertyName(property);
  if (!c) throw new Error(`${meta.tableName} has no column ${property}`);
  return c;
}

interface SqliteStatement {
  run(params: unknown[]): { changes: number };
}
interface SqliteHandle {
  prepare(text: string): SqliteStatement;
}
const sqliteStatements = new WeakMap<SqliteHandle, Map<string, SqliteStatement>>();

/** A statement prepared once on the SQLite connection (texts here are a handful of fixed INSERTs). */
function sqliteStatement(em: EntityManager, text: string): SqliteStatement {
  const handle = (em.connection.driver as unknown as { databaseConnection: SqliteHandle }).databaseConnection;
  let cache = sqliteStatements.get(handle);
  if (!cache) sqliteStatements.set(handle, (cache = new Map<string, SqliteStatement>()));
  let statement = cache.get(text);
  if (!statement) cache.set(text, (statement = handle.prepare(text)));
  return statement;
}
