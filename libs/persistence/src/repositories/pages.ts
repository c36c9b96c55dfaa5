import type { EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';
import { sql } from '../dialect.js';
import { hydrate } from '../rows.js';

/** Takes: a table (with its entity) and an id. Returns: that row, or null. */
export async function rowById<T extends ObjectLiteral>(em: EntityManager, entity: EntityTarget<T>, table: string, id: string): Promise<T | null> {
  const { rows } = await sql(em, `SELECT * FROM ${table} WHERE id = :id`, { id });
  return rows[0] ? hydrate(em, entity, rows[0]) : null;
}

/** Takes: a table keyed by (created_at, id), a cursor and a bound. Returns: up to limit + 1 rows after the cursor, newest first. */
export async function newestFirst<T extends ObjectLiteral>(
  em: EntityManager, entity: EntityTarget<T>, table: string, before: { created_at: number; id: string } | null, limit: number,
): Promise<T[]> {
  const where = before ? 'WHERE (created_at < :c OR (created_at = :c AND id < :i))' : '';
  const { rows } = await sql(em, `SELECT * FROM ${table} ${where} ORDER BY created_at DESC, id DESC LIMIT :lim`, { c: before?.created_at, i: before?.id, lim: limit + 1 });
  return rows.map((r) => hydrate(em, entity, r));
}
