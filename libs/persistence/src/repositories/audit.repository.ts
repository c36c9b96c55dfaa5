import type { EntityManager } from 'typeorm';
import { AuditEntity } from '../entities/audit.entity.js';
import { insertRows, sql } from '../dialect.js';
import { hydrate } from '../rows.js';

/** The audit log. */
export class AuditRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: one record (without its id). Writes it. */
  async add(entry: Omit<AuditEntity, 'id'>): Promise<void> {
    await insertRows(this.em, AuditEntity, [entry]);
  }

  /** Takes: a time and a bound. Deletes up to `limit` records made before it. Returns: how many. */
  async expire(before: number, limit: number): Promise<number> {
    return (
      await sql(
        this.em,
        'DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < :before ORDER BY id LIMIT :lim)',
        { before, lim: limit },
      )
    ).affected;
  }

  /**
   * Takes: a namespace (undefined: all), the id of the last record seen (or null) and a
   * bound. Returns: up to limit + 1 older records, newest first.
   */
  async page(namespace: string | undefined, beforeId: number | null, limit: number): Promise<AuditEntity[]> {
    const where = [
      ...(namespace === undefined ? [] : ['namespace = :ns']),
      ...(beforeId === null ? [] : ['id < :before']),
    ];
    const { rows } = await sql(
      this.em,
      `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT :lim`,
      { ns: namespace, before: beforeId, lim: limit + 1 },
    );
    return rows.map((r) => hydrate(this.em, AuditEntity, r));
  }
}
