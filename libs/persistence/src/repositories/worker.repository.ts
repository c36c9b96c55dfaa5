import type { EntityManager } from 'typeorm';
import { WorkerEntity } from '../entities/worker.entity.js';
import { insertRows, sql } from '../dialect.js';
import { hydrate } from '../rows.js';

/** Registered workers. */
export class WorkerRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: a new worker. Writes it. */
  async insert(worker: WorkerEntity): Promise<void> {
    await insertRows(this.em, WorkerEntity, [worker]);
  }

  /** Takes: an id. Returns: the worker, or null. */
  async get(id: string): Promise<WorkerEntity | null> {
    const { rows } = await sql(this.em, 'SELECT * FROM worker WHERE id = :id', { id });
    return rows[0] ? hydrate(this.em, WorkerEntity, rows[0]) : null;
  }

  /** Takes: a cursor. Returns: up to limit + 1 workers, newest first. */
  async page(before: { created_at: number; id: string } | null, limit: number): Promise<WorkerEntity[]> {
    const where = before ? 'WHERE (created_at < :c OR (created_at = :c AND id < :i))' : '';
    const { rows } = await sql(this.em, `SELECT * FROM worker ${where} ORDER BY created_at DESC, id DESC LIMIT :lim`, { c: before?.created_at, i: before?.id, lim: limit + 1 });
    return rows.map((r) => hydrate(this.em, WorkerEntity, r));
  }

  /** Takes: an id and the clock. Writes last_seen_at. Returns: whether the worker exists. */
  async touch(id: string, now: number): Promise<boolean> {
    return (await sql(this.em, 'UPDATE worker SET last_seen_at = :now WHERE id = :id', { now, id })).affected > 0;
  }
}
