import { Injectable } from '@nestjs/common';
import { In } from 'typeorm';
import { canonicalTags, newId } from '@tagflow/domain';
import { Database, insertRows, TaskEntity, WorkerEntity } from '@tagflow/persistence';
import { notFound } from '../common/errors.js';
import { decodeCursor, pageOf, type PageQuery } from '../common/pagination.js';
import { toWorkerResponse, type RegisterWorkerDto } from './worker.dto.js';

/** last_seen_at is written at most this often per worker, so polls stay cheap. */
const TOUCH_EVERY_MS = 5000;

@Injectable()
export class WorkersService {
  private readonly touched = new Map<string, number>();

  constructor(private readonly db: Database) {}

  async register(dto: RegisterWorkerDto) {
    const now = Date.now();
    const worker: WorkerEntity = {
      id: newId(now), name: dto.name, tags: canonicalTags(dto.tags ?? []), hostname: dto.hostname ?? null,
      version: dto.version ?? null, created_at: now, last_seen_at: now,
    };
    await this.db.transaction((em) => insertRows(em, WorkerEntity, [worker]));
    return toWorkerResponse(worker, []);
  }

  async get(id: string) {
    const w = await this.db.manager.getRepository(WorkerEntity).findOneBy({ id });
    if (!w) throw notFound('worker', id);
    return toWorkerResponse(w, (await this.running([id])).get(id) ?? []);
  }

  async list(q: PageQuery) {
    const qb = this.db.manager.getRepository(WorkerEntity).createQueryBuilder('w');
    const cursor = decodeCursor(q.cursor);
    if (cursor) qb.where('(w.created_at < :c OR (w.created_at = :c AND w.id < :i))', { c: cursor.created_at, i: cursor.id });
    const rows = await qb.orderBy('w.created_at', 'DESC').addOrderBy('w.id', 'DESC').limit(q.limit + 1).getMany();
    const running = await this.running(rows.map((r) => r.id));
    return pageOf(rows, q.limit, (w) => toWorkerResponse(w, running.get(w.id) ?? []));
  }

  /** Records that a worker polled; 404 for an id that was never registered. */
  async touch(id: string): Promise<void> {
    const now = Date.now();
    if (now - (this.touched.get(id) ?? 0) < TOUCH_EVERY_MS) return;
    const result = await this.db.transaction((em) => em.getRepository(WorkerEntity).update({ id }, { last_seen_at: now }));
    if ((result.affected ?? 0) === 0) throw notFound('worker', id);
    if (this.touched.size > 100_000) this.touched.clear();
    this.touched.set(id, now);
  }

  private async running(ids: string[]): Promise<Map<string, string[]>> {
    const map = new Map<string, string[]>();
    if (ids.length === 0) return map;
    const rows = await this.db.manager.getRepository(TaskEntity).find({ select: { id: true, worker_id: true }, where: { worker_id: In(ids), state: 'RUNNING' } });
    for (const r of rows) (map.get(r.worker_id!) ?? map.set(r.worker_id!, []).get(r.worker_id!)!).push(r.id);
    return map;
  }
}
