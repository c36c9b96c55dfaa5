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

  /** Takes: an id, its namespace and the clock. Writes last_seen_at. Returns: whether the worker exists there. */
  async touch(id: string, namespace: string, now: number): Promise<boolean> {
    return (await sql(this.em, 'UPDATE worker SET last_seen_at = :now WHERE id = :id AND namespace = :ns', { now, id, ns: namespace })).affected > 0;
  }
}
