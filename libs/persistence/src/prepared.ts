import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';

/**
 * Named (prepared) statements on PostgreSQL, when the deployment allows them
 * (`createDataSource(url, { preparedStatements: true })`, the API's
 * DATABASE_PREPARED_STATEMENTS=on). An unnamed statement is parsed and planned each time it
 * runs; a named one is parsed once on each server connection, and after its fifth run
 * PostgreSQL may keep one plan for it (a generic plan), so most runs skip planning. On a
 * report-and-poll hop that took PostgreSQL's CPU from 2.2-2.4 to about 1.4 ms.
 *
 * Off by default: PgBouncer in transaction pooling mode does not carry named statements
 * before 1.21 (and not without `max_prepared_statements` after it), and a statement
 * prepared on one server connection is then missing, or already there, on the next.
 *
 * A statement's name is a hash of its text, so two clients that prepare the same name on one
 * server connection prepared the same statement. Only texts with at most MAX_PARAMETERS
 * parameters get a name, and at most MAX_NAMED of them in one process (lists written out as
 * `IN ($1, $2, …)` have a text for each length); the rest run unnamed, so neither this map
 * nor any server connection's set of statements grows without bound.
 */
const MAX_NAMED = 1000;
/** Statements with more parameters run unnamed: a list written out `IN ($1, …)` has one text for each length. */
const MAX_PARAMETERS = 32;
/** PostgreSQL's "cached plan must not change result type": the statement's table changed shape. */
const STALE_STATEMENT = '0A000';
/**
 * PostgreSQL's "prepared statement does not exist": the server no longer has a statement the
 * client believes prepared on that connection (a pooler's or a session's reset, or node-postgres
 * closing one whose values did not serialise while still counting it prepared).
 */
const MISSING_STATEMENT = '26000';

/** Whether a named statement refused with `code` runs again once named anew (see renameStatements). */
export function isStaleCode(code: unknown): boolean {
  return code === STALE_STATEMENT || code === MISSING_STATEMENT;
}

let names = new Map<string, string>();
let generation = 0;
const enabled = new WeakSet<DataSource>();

/** Marks `dataSource` as one whose statements with parameters run named. */
export function prepareStatementsOf(dataSource: DataSource): void {
  enabled.add(dataSource);
}

/** Whether `dataSource`'s statements run named. */
export function preparesStatements(dataSource: DataSource): boolean {
  return enabled.has(dataSource);
}

/**
 * The name `text` (with `parameters` parameters) runs under, or null: without parameters,
 * with more than MAX_PARAMETERS, or once MAX_NAMED other texts have a name.
 */
export function statementName(text: string, parameters: number): string | null {
  if (parameters === 0 || parameters > MAX_PARAMETERS) return null;
  const known = names.get(text);
  if (known !== undefined) return known;
  if (names.size >= MAX_NAMED) return null;
  const name = `tf${generation}_${createHash('sha256').update(text).digest('hex').slice(0, 40)}`;
  names.set(text, name);
  return name;
}

/**
 * Whether `e` is a named statement's refusal after a schema change, or because the server lost
 * it (isStaleCode; `query` marks it): sent again, the statement is prepared afresh. The engine runs its operation again for it; the
 * API answers a request that met it 503, as for a database away.
 */
export function isStaleStatement(e: unknown): boolean {
  return (e as { staleStatement?: unknown } | null)?.staleStatement === true;
}

/**
 * Gives every statement a new name from now on, so each is parsed afresh on every connection:
 * after a schema change, a statement prepared before it is refused (STALE_STATEMENT), and one
 * the server lost is not found (MISSING_STATEMENT). What the server keeps of the old names goes
 * with the connections (a handful of changes a deployment's life).
 */
export function renameStatements(): void {
  generation++;
  names = new Map();
}
