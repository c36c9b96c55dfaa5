import type { EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';
import { sql } from '../dialect.js';
import { hydrate } from '../rows.js';

/**
 * Takes: a table (with its entity), an id and, for a request, the namespace it acts in.
 * Returns: that row (only if it lives in that namespace), or null.
 */
export async function rowById<T extends ObjectLiteral>(
  em: EntityManager,
  entity: EntityTarget<T>,
  table: string,
  id: string,
  namespace?: string,
): Promise<T | null> {
  const inNamespace = namespace === undefined ? '' : ' AND namespace = :ns';
  const { rows } = await sql(em, `SELECT * FROM ${table} WHERE id = :id${inNamespace}`, { id, ns: namespace });
  return rows[0] ? hydrate(em, entity, rows[0]) : null;
}

/**
 * Takes: a table keyed by (created_at, id), a namespace (undefined: all), a cursor and a
 * bound. Returns: up to limit + 1 rows of that namespace after the cursor, newest first.
 */
export async function newestFirst<T extends ObjectLiteral>(
  em: EntityManager,
  entity: EntityTarget<T>,
  table: string,
  namespace: string | undefined,
  before: { created_at: number; id: string } | null,
  limit: number,
): Promise<T[]> {
  const where = [
    ...(namespace === undefined ? [] : ['namespace = :ns']),
    ...(before ? ['(created_at < :c OR (created_at = :c AND id < :i))'] : []),
  ];
  const { rows } = await sql(
    em,
    `SELECT * FROM ${table} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT :lim`,
    { ns: namespace, c: before?.created_at, i: before?.id, lim: limit + 1 },
  );
  return rows.map((r) => hydrate(em, entity, r));
}
