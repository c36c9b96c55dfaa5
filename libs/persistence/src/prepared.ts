import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';

/**
 * Named (prepared) statements on PostgreSQL, when the deployment allows them
 * (`createDataSource(url, { preparedStatements: true })`, the API's
 * DATABASE_PREPARED_STATEMENTS=on). An unnamed statement is parsed and planned each time it
 * runs; a named one is parsed once on each server connection, and after its fifth run
 * PostgreSQL may keep one plan for it (a generic plan), so most runs skip planning. On a
 * report-and-poll hop that took PostgreSQL's CPU from about 2.3 to 1.3-1.5 ms.
 *
 * Off by default: PgBouncer in transaction pooling mode does not carry named statements
 * before 1.21 (and not without `max_prepared_statements` after it), and a statement
 * prepared on one server connection is then missing, or already there, on the next.
 *
 * A statement's name is a hash of its text, so two clients that prepare the same name on one
 * server connection prepared the same statement. At most MAX_NAMED texts get a name in one
 * process (lists written out as `IN ($1, $2, …)` have a text for each length); the ones past
 * that run unnamed, so neither this map nor any server connection's set of statements grows
 * without bound.
 */
const MAX_NAMED = 1000;
const names = new Map<string, string>();
const enabled = new WeakSet<DataSource>();

/** Marks `dataSource` as one whose statements with parameters run named. */
export function prepareStatementsOf(dataSource: DataSource): void {
  enabled.add(dataSource);
}

/** Whether `dataSource`'s statements run named. */
export function preparesStatements(dataSource: DataSource): boolean {
  return enabled.has(dataSource);
}

/** The name `text` runs under, or null once MAX_NAMED other texts have one. */
export function statementName(text: string): string | null {
  const known = names.get(text);
  if (known !== undefined) return known;
  if (names.size >= MAX_NAMED) return null;
  const name = `tf_${createHash('sha256').update(text).digest('hex').slice(0, 40)}`;
  names.set(text, name);
  return name;
}
