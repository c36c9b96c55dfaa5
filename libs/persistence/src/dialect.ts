import {
  QueryFailedError,
  QueryRunnerAlreadyReleasedError,
  type DataSource,
  type EntityManager,
  type EntityMetadata,
  type QueryRunner,
} from 'typeorm';
import { TIMEOUT_GRACE_MS } from '@tagflow/domain';
import { TaskEntity, TaskEventEntity } from './entities/task.entity.js';
import { WorkflowEntity } from './entities/workflow.entity.js';
import type { DatabaseKind } from './data-source.js';
import { isStaleCode, preparesStatements, renameStatements, statementName } from './prepared.js';

type ColumnMetadata = EntityMetadata['columns'][number];

/**
 * Everything that differs between SQLite and PostgreSQL, in one place: how parameters
 * are written, how a workflow row is locked, how many rows are inserted or updated at
 * once, and the claim statement. The repositories call these; nothing else forks on the
 * database.
 */

export function kindOf(em: EntityManager): DatabaseKind {
  return em.connection.options.type === 'postgres' ? 'postgres' : 'sqlite';
}

/** A value as the driver binds it: undefined as NULL; booleans as 0/1 on SQLite, which has no boolean. */
export function bindable(value: unknown, sqlite: boolean): unknown {
  if (value === undefined) return null;
  if (sqlite && typeof value === 'boolean') return value ? 1 : 0;
  return value;
}

/** The n-th positional parameter: `?` on SQLite, `$n` on PostgreSQL. */
export function placeholder(kind: DatabaseKind, n: number): string {
  return kind === 'postgres' ? `$${n}` : '?';
}

/** Appended to a SELECT that locks the rows it reads: PostgreSQL locks them; SQLite has one writer, serialized in process. */
export function forUpdate(kind: DatabaseKind): string {
  return kind === 'postgres' ? ' FOR UPDATE' : '';
}

/**
 * Statements are written with `:name` parameters on both databases; an array parameter
 * expands to a list (`id IN (:ids)`, never empty); booleans become 0/1 on SQLite. Rows
 * come back raw (see rows.ts `hydrate`).
 */
export interface SqlResult {
  rows: Record<string, unknown>[];
  affected: number;
}

type Segment = string | { name: string };

const parsed = new Map<string, Segment[]>();

function parse(text: string): Segment[] {
  const cached = parsed.get(text);
  if (cached) return cached;
  const segments: Segment[] = [];
  let last = 0;
  // `:name`, but not PostgreSQL's `::type` casts.
  for (const m of text.matchAll(/(?<!:):([A-Za-z_][A-Za-z0-9_]*)/g)) {
    segments.push(text.slice(last, m.index), { name: m[1] });
    last = m.index + m[0].length;
  }
  segments.push(text.slice(last));
  parsed.set(text, segments);
  return segments;
}

/** Runs one statement in `em`'s transaction (or on its own when `em` has none). */
export async function sql(em: EntityManager, text: string, params: Record<string, unknown> = {}): Promise<SqlResult> {
  const kind = kindOf(em);
  const sqlite = kind === 'sqlite';
  const values: unknown[] = [];
  const next = () => placeholder(kind, values.length);
  let out = '';
  for (const s of parse(text)) {
    if (typeof s === 'string') {
      out += s;
      continue;
    }
    if (!(s.name in params)) throw new Error(`SQL parameter :${s.name} has no value`);
    const value = params[s.name];
    if (Array.isArray(value)) {
      if (value.length === 0) throw new Error(`SQL parameter :${s.name} is an empty list`);
      out += value.map((v) => (values.push(bindable(v, sqlite)), next())).join(', ');
    } else {
      values.push(bindable(value, sqlite));
      out += next();
    }
  }
  return query(em, out, values);
}

/** How a statement is sent (see `query`). */
export interface StatementOptions {
  /**
   * The statement is the last of its transaction: on PostgreSQL, inside `pgTransaction`, its
   * COMMIT is sent with it (one write, one round trip less) and the transaction commits when
   * the statement succeeds. Any statement issued after it in that transaction is refused.
   * Elsewhere (SQLite, outside a transaction) it changes nothing.
   */
  last?: boolean;
}

/**
 * Runs one statement with positional parameters (`?` on SQLite, `$n` on PostgreSQL) in `em`'s
 * transaction; on PostgreSQL, named when the data source prepares statements (prepared.ts).
 * In a transaction `pgTransaction` runs, the statement is handed to node-postgres's client
 * before this returns (the client pipelines: data-source.ts), so statements reach the server
 * in the order they were issued, and a caller may prepare its next statement, or issue it,
 * while the server runs this one.
 */
export async function query(
  em: EntityManager,
  text: string,
  values: unknown[],
  options: StatementOptions = {},
): Promise<SqlResult> {
  const runner = em.queryRunner;
  // As TypeORM's query() does: a released runner's client may already serve another transaction.
  if (runner?.isReleased) throw new QueryRunnerAlreadyReleasedError();
  const transaction = runner && pgTransactions.get(runner);
  if (transaction) return answer(inTransaction(runner, transaction, em, text, values, options));
  const own: QueryRunner | undefined = runner ? undefined : em.connection.createQueryRunner();
  try {
    if (preparesStatements(em.connection)) return await direct(runner ?? own!, text, values, !!own);
    const result = await (runner ?? own!).query(text, values, true);
    const rows = Array.isArray(result.records) ? (result.records as Record<string, unknown>[]) : [];
    return { rows, affected: result.affected ?? rows.length };
  } finally {
    await own?.release();
  }
}

/** node-postgres's client under a query runner, as far as Tagflow uses it beyond TypeORM. */
interface PgClient {
  /** Several statements in one simple query: an answer for each. */
  query(text: string): Promise<PgResult | PgResult[]>;
  /** One statement with parameters, named (prepared) when `name` is given. */
  query(q: { name?: string; text: string; values: unknown[] }): Promise<PgResult>;
  /** The same, its answer to `done` (at once, before this returns, when its values do not serialise). */
  query(
    q: { name?: string; text: string; values: unknown[] },
    done: (error: Error | null, result: PgResult) => void,
  ): void;
}
interface PgResult {
  rows?: Record<string, unknown>[];
  rowCount?: number | null;
  /** The command tag: `COMMIT`, or `ROLLBACK` for a COMMIT of a transaction a statement aborted. */
  command?: string;
}

/** The connection's socket, corked so that two statements leave in one write (node-postgres's own field). */
interface PgSocket {
  cork(): void;
  uncork(): void;
}

/** A PostgreSQL transaction `pgTransaction` runs: its connection's client, and its COMMIT once sent behind its last statement. */
interface PgTransaction {
  client: PgClient;
  commit: Promise<PgResult | PgResult[]> | null;
}

/** The transactions `pgTransaction` has open, by their query runner. */
const pgTransactions = new WeakMap<QueryRunner, PgTransaction>();

/** A statement as node-postgres takes it: named (prepared) when `name` is given. */
function statement(name: string | null, text: string, values: unknown[]) {
  return name === null ? { text, values } : { name, text, values };
}

/**
 * A statement of a transaction `pgTransaction` runs, handed to its client at once; with
 * `options.last`, its COMMIT with it (withCommit). Returns: its answer, its name, its text.
 */
function inTransaction(
  runner: QueryRunner,
  transaction: PgTransaction,
  em: EntityManager,
  text: string,
  values: unknown[],
  options: StatementOptions,
): Sent {
  if (transaction.commit) throw new Error(`a statement after its transaction's last one: ${text.slice(0, 80)}`);
  const name = preparesStatements(em.connection) ? statementName(text, values.length) : null;
  const sent = options.last
    ? withCommit(transaction, name, text, values)
    : transaction.client.query(statement(name, text, values));
  return { sent, name, text, values };
}

interface Sent {
  sent: Promise<PgResult>;
  name: string | null;
  text: string;
  values: unknown[];
}

/**
 * A statement sent on its runner's connection through node-postgres's client itself (TypeORM's
 * query() sends only unnamed ones), outside a transaction `pgTransaction` runs: named when the
 * data source prepares statements. `alone`: outside any transaction (see `answer`).
 */
async function direct(runner: QueryRunner, text: string, values: unknown[], alone: boolean): Promise<SqlResult> {
  const client = (await runner.connect()) as PgClient;
  const name = statementName(text, values.length);
  const retry = alone ? () => direct(runner, text, values, false) : null;
  return answer({ sent: client.query(statement(name, text, values)), name, text, values }, retry);
}

/**
 * A sent statement's answer. Its error reaches callers as TypeORM's would, a QueryFailedError
 * carrying the driver's code.
 *
 * A named statement refused because the schema changed under it (STALE_STATEMENT: a newer
 * replica's migration added a column to a table it reads with `*`), or because the server no
 * longer has it (MISSING_STATEMENT), renames every statement, so each is parsed afresh from then
 * on; outside a transaction (`retry`) it is sent again at once, and in one its error is marked
 * (isStaleStatement) for the engine to run the operation again.
 */
async function answer(
  { sent, name, text, values }: Sent,
  retry: (() => Promise<SqlResult>) | null = null,
): Promise<SqlResult> {
  try {
    const result = await sent;
    const rows = result.rows ?? [];
    return { rows, affected: result.rowCount ?? rows.length };
  } catch (e) {
    const stale = name !== null && isStaleCode((e as { code?: unknown }).code);
    if (stale) {
      renameStatements();
      if (retry) return retry();
    }
    // Marked for isStaleStatement, which the engine and the API's error filter ask.
    throw Object.assign(new QueryFailedError(text, values, e as Error), stale ? { staleStatement: true } : {});
  }
}

/**
 * Sends a transaction's last statement and its COMMIT together, in one write (the client
 * pipelines: data-source.ts): the server runs the COMMIT as soon as the statement is done,
 * without a round trip to the API between them. Should the statement fail on the server, the
 * transaction is aborted and the COMMIT rolls it back (its answer says ROLLBACK); should
 * node-postgres refuse it before sending it for values it cannot serialise (it answers at once),
 * no COMMIT goes and the transaction is rolled back as after any error. node-postgres's other
 * refusals before sending (no text, values not a list, a name already used for another text)
 * cannot meet Tagflow's statements, whose names are hashes of their text. `pgTransaction`
 * awaits the COMMIT's answer. Returns: the statement's answer.
 */
function withCommit(
  transaction: PgTransaction,
  name: string | null,
  text: string,
  values: unknown[],
): Promise<PgResult> {
  const { client } = transaction;
  const socket = (client as unknown as { connection?: { stream?: Partial<PgSocket> } }).connection?.stream;
  let answered = false;
  let done!: (error: Error | null, result: PgResult) => void;
  const sent = new Promise<PgResult>((resolve, reject) => {
    done = (error, result) => {
      if (answered) return;
      answered = true;
      if (error) reject(error);
      else resolve(result);
    };
  });
  socket?.cork?.();
  try {
    client.query(statement(name, text, values), done);
    if (!answered) {
      transaction.commit = client.query('COMMIT');
      // Awaited by pgTransaction, or by nothing should the transaction fail first (then it is rolled back).
      transaction.commit.catch(() => undefined);
    }
  } finally {
    socket?.uncork?.();
  }
  return sent;
}

/**
 * Runs `fn` in a PostgreSQL transaction that opens with `opening` (SET LOCAL statements, and
 * reads whose answer the transaction will need) in one message with its BEGIN (a simple query
 * may hold several statements): as a statement of its own, SET LOCAL cost every transaction a
 * round trip (about 40 µs of the API's CPU each, measured). `fn` starts at once, its first
 * statement sent behind the opening without waiting for its answer (the client pipelines:
 * data-source.ts), and gets that answer as a promise: the first row of the opening's last
 * statement (empty when it returns none). Its COMMIT is sent after `fn`, or with the statement
 * `fn` runs as its last (StatementOptions.last). Repositories speak SQL only through `query` (on
 * the query runner's connection), so TypeORM's own transaction bookkeeping is not needed.
 */
export async function pgTransaction<T>(
  dataSource: DataSource,
  opening: string,
  fn: (em: EntityManager, opened: Promise<Record<string, unknown>>) => Promise<T>,
): Promise<T> {
  const runner = dataSource.createQueryRunner();
  try {
    // The driver's client itself: TypeORM's query() keeps only a single statement's answer.
    const client = (await runner.connect()) as PgClient;
    const transaction: PgTransaction = { client, commit: null };
    try {
      // Inside the try: a statement of the opening that fails leaves the transaction open, aborted,
      // and every later statement of it is refused, so nothing of `fn` runs outside it.
      const opened = client
        .query(`START TRANSACTION; ${opening}`)
        .then((answers) => lastAnswer(answers)?.rows?.[0] ?? {});
      // Awaited below. Should it fail, fn fails too ("current transaction is aborted"), and
      // the opening's own error is the one thrown: a lock timeout there is a conflict to retry.
      const failed = opened.then(
        () => null,
        (e: unknown) => e,
      );
      pgTransactions.set(runner, transaction);
      try {
        const value = await fn(runner.manager, opened);
        await opened;
        // Sent now unless it went with the last statement; either way nothing goes behind it.
        transaction.commit ??= client.query('COMMIT');
        if (tagOf(await transaction.commit) !== 'COMMIT')
          throw new Error('the transaction was rolled back at its commit: a statement of it had failed');
        return value;
      } catch (e) {
        throw (await failed) ?? e;
      }
    } catch (e) {
      if (!transaction.commit) {
        await runner.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
      // A COMMIT went (with the last statement, or after fn) and ended the transaction either
      // way; nothing is sent behind it. Committed, the error came after it (a statement or a fault
      // of the caller's past its last statement): said so, as the work is done though the caller
      // failed.
      if (tagOf(await transaction.commit.catch(() => [])) === 'COMMIT')
        throw Object.assign(new Error(`the transaction committed, but then: ${(e as Error).message}`), {
          committed: true,
          cause: e,
        });
      throw e;
    }
  } finally {
    pgTransactions.delete(runner);
    await runner.release();
  }
}

/** The answer to a simple query's last statement (node-postgres gives a list for several). */
function lastAnswer(answers: PgResult | PgResult[]): PgResult | undefined {
  return Array.isArray(answers) ? answers[answers.length - 1] : answers;
}

function tagOf(answers: PgResult | PgResult[]): string | undefined {
  return lastAnswer(answers)?.command;
}

/**
 * Most list parameters (`IN (:list)`) one statement takes. SQLite refuses a statement with
 * more than 32,766 parameters and PostgreSQL 65,535; a valid request can name more (a
 * thousand tasks producing a hundred keys each), so lists are read in slices.
 */
export const IN_CHUNK = 500;

/** Runs `read` over slices of at most IN_CHUNK of `list`, in order, and concatenates the answers. */
export async function inChunks<T, R>(list: readonly T[], read: (slice: readonly T[]) => Promise<R[]>): Promise<R[]> {
  if (list.length <= IN_CHUNK) return list.length === 0 ? [] : read(list);
  const out: R[] = [];
  for (let i = 0; i < list.length; i += IN_CHUNK) out.push(...(await read(list.slice(i, i + IN_CHUNK))));
  return out;
}

/** Who is told of the rows each insert adds, by data source (PlannerStatistics on PostgreSQL). */
const insertWatchers = new WeakMap<DataSource, (table: string, rows: number) => void>();

/** Tells `note` the table and row count of every insertRows on `dataSource` from now on. */
export function watchInserts(dataSource: DataSource, note: (table: string, rows: number) => void): void {
  insertWatchers.set(dataSource, note);
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
export async function insertRows<T extends object>(
  em: EntityManager,
  entity: new () => T,
  rows: readonly object[],
  options: StatementOptions = {},
): Promise<void> {
  if (rows.length === 0) return;
  const meta = em.connection.getMetadata(entity);
  const { columns, stored } = insertColumns(em, entity, rows);
  const names = columns.map((c) => c.databaseName).join(', ');
  if (kindOf(em) !== 'postgres') {
    const insert = sqliteStatement(
      em,
      `INSERT INTO ${meta.tableName} (${names}) VALUES (${columns.map(() => '?').join(', ')})`,
    );
    for (const row of rows) insert.run(columns.map((c) => bindable(stored(row, c), true)));
    return;
  }
  // One array parameter per column, zipped by unnest: parsing and binding a multi-row
  // VALUES list costs the server more than running it (a parameter per cell).
  const arrays = columns.map((c, i) => `$${i + 1}::${arrayType(em, c)}`).join(', ');
  await query(
    em,
    `INSERT INTO ${meta.tableName} (${names}) SELECT * FROM unnest(${arrays})`,
    columns.map((c) => rows.map((row) => stored(row, c))),
    options,
  );
  insertWatchers.get(em.connection)?.(meta.tableName, rows.length);
}

/**
 * The columns an insert of `rows` writes (those the rows set, and those with a default), and
 * each value as the column stores it (JSON as text, transformers applied; a value a row
 * lacks is the column's default, or NULL).
 */
function insertColumns<T extends object>(
  em: EntityManager,
  entity: new () => T,
  rows: readonly object[],
): { columns: ColumnMetadata[]; stored: (row: object, c: ColumnMetadata) => unknown } {
  // A column is written when some row sets it: asked column by column, the first row that
  // sets it ends the search (collecting every row's keys cost an accept about a tenth of its CPU).
  const sets = (c: ColumnMetadata) => rows.some((r) => (r as Record<string, unknown>)[c.propertyName] !== undefined);
  const columns = em.connection
    .getMetadata(entity)
    .columns.filter((c) => (!c.isGenerated && c.default !== undefined) || sets(c));
  return { columns, stored: storedValue(em) };
}

/** A row's value as its column stores it; a value the row lacks is the column's default, or NULL. */
function storedValue(em: EntityManager): (row: object, c: ColumnMetadata) => unknown {
  const driver = em.connection.driver;
  return (row, c) => {
    const value = (row as Record<string, unknown>)[c.propertyName];
    return (value === undefined ? (c.default ?? null) : driver.preparePersistentValue(value, c)) as unknown;
  };
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
    if (Object.keys(row).length !== properties.length + 1 || properties.some((p) => !(p in row)))
      throw new Error('updateEach: every row must set the same properties');
  }
  const id = column('id');
  const set = properties.map(column);
  const guards = Object.keys(where).map(column);
  const driver = em.connection.driver;
  const stored = (value: unknown, c: (typeof set)[number]) => driver.preparePersistentValue(value, c) as unknown;
  if (kindOf(em) !== 'postgres') {
    const update = sqliteStatement(
      em,
      `UPDATE ${meta.tableName} SET ${set.map((c) => `${c.databaseName} = ?`).join(', ')} WHERE ${id.databaseName} = ?${guards.map((c) => ` AND ${c.databaseName} = ?`).join('')}`,
    );
    const guardValues = guards.map((c) => bindable(stored(where[c.propertyName], c), true));
    let changed = 0;
    for (const row of rows)
      changed += update.run([
        ...set.map((c) => bindable(stored(row[c.propertyName], c), true)),
        row.id,
        ...guardValues,
      ]).changes;
    return changed;
  }
  const zipped = [id, ...set];
  const arrays = zipped.map((c, i) => `$${i + 1}::${arrayType(em, c)}`).join(', ');
  const text =
    `UPDATE ${meta.tableName} t SET ${set.map((c) => `${c.databaseName} = v.${c.databaseName}`).join(', ')}` +
    ` FROM unnest(${arrays}) AS v(${zipped.map((c) => c.databaseName).join(', ')})` +
    ` WHERE t.${id.databaseName} = v.${id.databaseName}${guards.map((c, i) => ` AND t.${c.databaseName} = $${zipped.length + i + 1}`).join('')}`;
  const values = [
    rows.map((r) => r.id),
    ...set.map((c) => rows.map((r) => stored(r[c.propertyName], c))),
    ...guards.map((c) => stored(where[c.propertyName], c)),
  ];
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
/** better-sqlite3's connection, as far as Tagflow uses it beyond TypeORM. */
export interface SqliteHandle {
  prepare(text: string): SqliteStatement;
  pragma(statement: string): unknown;
}

/** The SQLite connection under TypeORM's driver (there is one: it holds every transaction). */
export function sqliteHandle(dataSource: DataSource): SqliteHandle {
  return (dataSource.driver as unknown as { databaseConnection: SqliteHandle }).databaseConnection;
}

const sqliteStatements = new WeakMap<SqliteHandle, Map<string, SqliteStatement>>();

/** A statement prepared once on the SQLite connection (texts here are a handful of fixed INSERTs). */
function sqliteStatement(em: EntityManager, text: string): SqliteStatement {
  const handle = sqliteHandle(em.connection);
  let cache = sqliteStatements.get(handle);
  if (!cache) sqliteStatements.set(handle, (cache = new Map<string, SqliteStatement>()));
  let statement = cache.get(text);
  if (!statement) cache.set(text, (statement = handle.prepare(text)));
  return statement;
}

export interface ClaimJob {
  taskId: string;
  attempt: number;
  tagsetId: string;
  token: string;
  workerId: string | null;
}

/**
 * READY -> RUNNING for fetched jobs, each under its own lease token, in one statement.
 * Takes: the clock and the jobs (task id, the attempt and tag set each job was queued
 * for, the token, the worker). Guards: the task is READY at that attempt in that tag set
 * and its workflow is RUNNING. Returns: every column of the rows that moved; the others
 * were stale. `events` (PostgreSQL only): the same statement also writes the task events
 * `events.before`, then one READY -> RUNNING event (at `now`) for each row leased, so that a
 * transaction ending in a claim (a poll; a report whose next task goes to a parked poll)
 * writes its history without a statement of its own. Event ids follow that order.
 */
export async function claimRows(
  em: EntityManager,
  now: number,
  jobs: readonly ClaimJob[],
  events: ClaimEvents | null = null,
  options: StatementOptions = {},
): Promise<Record<string, unknown>[]> {
  if (kindOf(em) === 'postgres') return claimPostgres(em, now, jobs, events, options);
  if (events) throw new Error('a claim writes its events itself on PostgreSQL only');
  // SQLite refuses an expression more than 1,000 deep, and the claim's OR of key lookups
  // grows one level a job: a claim of 1,000 parked polls' tasks at once was a 500.
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < jobs.length; i += SQLITE_CLAIM_CHUNK)
    rows.push(...(await claimSqlite(em, now, jobs.slice(i, i + SQLITE_CLAIM_CHUNK))));
  return rows;
}

/** The history a PostgreSQL claim writes in its own statement (claimRows). */
export interface ClaimEvents {
  /** Task events of the transaction not written yet, oldest first: written before the claim's own. */
  before: readonly Omit<TaskEventEntity, 'id'>[];
  /** The reason of each job's READY -> RUNNING event, in the order of the jobs. */
  reasons: readonly string[];
}

/** Jobs claimed in one SQLite statement at most (its expression depth limit is 1,000). */
const SQLITE_CLAIM_CHUNK = 250;

/**
 * What a claim writes on each row it leases, the same for both databases: the clock, and
 * each row's worker and token (expressions of the caller's statement). The deadline is when
 * the API fails the attempt itself: TIMEOUT_GRACE_MS past `timeout_s`, leaving the worker
 * time to stop it and report.
 */
function claimSet(now: string, worker: string, token: string, no: string): string {
  return `state = 'RUNNING', updated_at = ${now}, started_at = ${now}, worker_id = ${worker}, lease_token = ${token},
       lease_expires_at = CAST(${now} AS BIGINT) + lease_s * 1000,
       deadline_at = CASE WHEN timeout_s IS NULL THEN NULL ELSE CAST(${now} AS BIGINT) + timeout_s * 1000 + ${TIMEOUT_GRACE_MS} END,
       lease_outcome = NULL, progress = NULL, resolved_input = NULL, cancel_requested = ${no}, held_limit = NULL`;
}

/**
 * Which rows a SQLite claim may lease (besides its job's id, attempt and tag set): READY,
 * of a RUNNING workflow. Written so that only the key lookups can drive the plan: the state
 * test is not indexable (IS TRUE) and the workflow's state is a subquery per row, not a
 * join. Offered the state index or the workflow join, both planners walked every READY task
 * whenever their statistics predated the last big submission (10,000 queued: 3.6 ms a claim
 * on SQLite, 13 ms on PostgreSQL, whose claim is claimPostgres).
 */
const SQLITE_CLAIMABLE =
  "(task.state = 'READY') IS TRUE AND (SELECT w.state FROM workflow w WHERE w.id = task.workflow_id) = 'RUNNING'";

/**
 * The jobs joined to their rows through `unnest`, the rows read by their primary keys
 * (`id = ANY`, whose estimate is exact). A list of `(id = … AND …) OR …` made PostgreSQL
 * scan every READY task through the state index instead. The guards compare each row with
 * columns of its job (the state it is claimed from, its workflow's state) rather than with
 * constants, so they are join conditions, not filters of the scan of `task`; the workflow's
 * state, a subquery, by IS NOT DISTINCT FROM, which is no hash key, so it is read only for
 * rows that join. As filters, their guessed selectivity (two unknowns multiplied) made the
 * planner expect one row from a task table that had just received a burst in the same
 * transaction, and loop over every job for each task: 1,000 jobs took 480 ms (a million
 * comparisons) instead of 35. So keep them columns of the jobs, not constants.
 */
async function claimPostgres(
  em: EntityManager,
  now: number,
  jobs: readonly ClaimJob[],
  events: ClaimEvents | null,
  options: StatementOptions,
): Promise<Record<string, unknown>[]> {
  const type = (property: string) => pgArrayType(em, TaskEntity, property);
  const values: unknown[] = [
    now,
    jobs.map((j) => j.taskId),
    jobs.map((j) => j.attempt),
    jobs.map((j) => j.tagsetId),
    jobs.map((j) => j.token),
    jobs.map((j) => j.workerId),
    jobs.map(() => 'READY'),
    jobs.map(() => 'RUNNING'),
  ];
  const update = (returning: string) =>
    `UPDATE task t SET ${claimSet('$1', 'v.worker_id', 'v.lease_token', 'false')}
     FROM unnest($2::${type('id')}, $3::${type('attempt')}, $4::${type('tagset_id')}, $5::${type('lease_token')}, $6::${type('worker_id')},
                 $7::${type('state')}, $8::${pgArrayType(em, WorkflowEntity, 'state')}${events ? ', $9::text[]' : ''})
       AS v(id, attempt, tagset_id, lease_token, worker_id, task_state, workflow_state${events ? ', lease_reason' : ''})
     WHERE t.id = ANY($2::${type('id')}) AND t.id = v.id AND t.attempt = v.attempt AND t.tagset_id = v.tagset_id AND t.state = v.task_state
       AND (SELECT w.state FROM workflow w WHERE w.id = t.workflow_id) IS NOT DISTINCT FROM v.workflow_state
     RETURNING ${returning}`;
  if (!events) return (await query(em, update('t.*'), values, options)).rows;
  values.push(events.reasons);
  // The events kept so far and then the claim's own, one INSERT: its serial ids are drawn in
  // the order its rows come, the UNION ALL's branches one after the other (a data-modifying
  // statement is never planned in parallel), each in its own order, as `insertRows` relies on
  // for `unnest`. A sort (tried) cost more to plan than the second statement it saves. Its
  // columns are the claim's own events' (every one).
  const names = ['task_id', 'workflow_id', 'from_state', 'to_state', 'attempt', 'reason', 'at'] as const;
  const meta = em.connection.getMetadata(TaskEventEntity);
  const stored = storedValue(em);
  const columns = names.map((n) => columnOf(meta, n));
  const before = columns.map((c, i) => `$${values.length + i + 1}::${arrayType(em, c)}`).join(', ');
  values.push(...columns.map((c) => events.before.map((row) => stored(row, c))));
  const { rows } = await query(
    em,
    `WITH claimed AS (${update('t.*, v.lease_reason')}),
     written AS (
       INSERT INTO task_event (${names.join(', ')})
       SELECT * FROM unnest(${before})
       UNION ALL
       SELECT c.id, c.workflow_id, 'READY', 'RUNNING', c.attempt, c.lease_reason, $1 FROM claimed c)
     SELECT * FROM claimed`,
    values,
    options,
  );
  return rows;
}

/** One UPDATE with a CASE per leased column; SQLite finds each row by its primary key (a multi-index OR). */
async function claimSqlite(
  em: EntityManager,
  now: number,
  jobs: readonly ClaimJob[],
): Promise<Record<string, unknown>[]> {
  const params: Record<string, unknown> = { now, no: false };
  const tokens: string[] = [];
  const workers: string[] = [];
  const pairs: string[] = [];
  jobs.forEach((j, i) => {
    Object.assign(params, {
      [`i${i}`]: j.taskId,
      [`a${i}`]: j.attempt,
      [`s${i}`]: j.tagsetId,
      [`t${i}`]: j.token,
      [`w${i}`]: j.workerId,
    });
    tokens.push(`WHEN :i${i} THEN :t${i}`);
    workers.push(`WHEN :i${i} THEN :w${i}`);
    pairs.push(`(id = :i${i} AND attempt = :a${i} AND tagset_id = :s${i})`);
  });
  // The clock is a parameter, not inlined: the text stays the same from one claim of as
  // many jobs to the next, so the statement cache serves it.
  const { affected } = await sql(
    em,
    `UPDATE task SET ${claimSet(':now', `CASE id ${workers.join(' ')} END`, `CASE id ${tokens.join(' ')} END`, ':no')}
     WHERE (${pairs.join(' OR ')}) AND ${SQLITE_CLAIMABLE}`,
    params,
  );
  if (affected === 0) return [];
  const { rows } = await sql(em, 'SELECT * FROM task WHERE id IN (:ids) AND lease_token IN (:tokens)', {
    ids: jobs.map((j) => j.taskId),
    tokens: jobs.map((j) => j.token),
  });
  return rows;
}
