import type { EntityManager } from 'typeorm';
import { WorkerEntity } from '../entities/worker.entity.js';
import { insertRows, sql } from '../dialect.js';
import { newestFirst, rowById } from './pages.js';

/** Registered workers. */
export class WorkerRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: a new worker. Writes it. */
  async insert(worker: WorkerEntity): Promise<void> {
    await insertRows(this.em, WorkerEntity, [worker]);
  }

  /** Takes: an id. Returns: the worker, or null. */
  get(id: string): Promise<WorkerEntity | null> {
    return rowById(this.em, WorkerEntity, 'worker', id);
  }

  /** Takes: a cursor. Returns: up to limit + 1 workers, newest first. */
  page(before: { created_at: number; id: string } | null, limit: number): Promise<WorkerEntity[]> {
    return newestFirst(this.em, WorkerEntity, 'worker', before, limit);
  }

  /** Takes: an id and the clock. Writes last_seen_at. Returns: whether the worker exists. */
  async touch(id: string, now: number): Promise<boolean> {
    return (await sql(this.em, 'UPDATE worker SET last_seen_at = :now WHERE id = :id', { now, id })).affected > 0;
  }
}
