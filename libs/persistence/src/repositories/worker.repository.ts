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

  /** Takes: an id and its namespace. Returns: the worker (if it lives there), or null. */
  get(id: string, namespace: string): Promise<WorkerEntity | null> {
    return rowById(this.em, WorkerEntity, 'worker', id, namespace);
  }

  /** Takes: a namespace and a cursor. Returns: up to limit + 1 of its workers, newest first. */
  page(namespace: string, before: { created_at: number; id: string } | null, limit: number): Promise<WorkerEntity[]> {
    return newestFirst(this.em, WorkerEntity, 'worker', namespace, before, limit);
  }

  /**
   * Takes: an id, its namespace, the key polling under it (null: the open mode) and the
   * clock. Writes last_seen_at of a worker that key registered and that has not said it is
   * stopping. Returns: 'ok', 'stopping' (it handed a task back as it stopped), or 'unknown'
   * (no such worker there, or another key's).
   */
  async touch(
    id: string,
    namespace: string,
    keyId: string | null,
    now: number,
  ): Promise<'ok' | 'stopping' | 'unknown'> {
    const worker = await this.get(id, namespace);
    if (!worker || worker.key_id !== keyId) return 'unknown';
    const touched = await sql(this.em, 'UPDATE worker SET last_seen_at = :now WHERE id = :id AND stopping_at IS NULL', {
      now,
      id,
    });
    return touched.affected > 0 ? 'ok' : 'stopping';
  }

  /** Takes: a worker's id and the clock. Writes stopping_at, once (the first hand-back's time). */
  async markStopping(id: string, now: number): Promise<void> {
    await sql(this.em, 'UPDATE worker SET stopping_at = :now WHERE id = :id AND stopping_at IS NULL', { now, id });
  }
}
