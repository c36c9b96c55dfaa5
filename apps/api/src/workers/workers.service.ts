import { Injectable } from '@nestjs/common';
import { canonicalTags, newId } from '@tagflow/domain';
import { Database, type WorkerEntity } from '@tagflow/persistence';
import { conflict, notFound } from '../common/errors.js';
import { decodeCursor, pageOf, type PageQuery } from '../common/pagination.js';
import { toWorkerResponse, type RegisterWorkerDto } from './worker.dto.js';

/** last_seen_at is written at most this often per worker, so polls stay cheap. */
const TOUCH_EVERY_MS = 5000;

@Injectable()
export class WorkersService {
  /** When each worker's poll was last written, and by which key (another key's poll is checked anew). */
  private readonly touched = new Map<string, { at: number; keyId: string | null }>();

  constructor(private readonly db: Database) {}

  async register(dto: RegisterWorkerDto, namespace: string, keyId: string | null) {
    const now = Date.now();
    const worker: WorkerEntity = {
      id: newId(now),
      name: dto.name,
      namespace,
      tags: canonicalTags(dto.tags ?? []),
      hostname: dto.hostname ?? null,
      version: dto.version ?? null,
      created_at: now,
      last_seen_at: now,
      stopping_at: null,
      key_id: keyId,
    };
    await this.db.transaction((repos) => repos.workers.insert(worker), now);
    return toWorkerResponse(worker, []);
  }

  async get(id: string, namespace: string) {
    const repos = this.db.read();
    const w = await repos.workers.get(id, namespace);
    if (!w) throw notFound('worker', id);
    return toWorkerResponse(w, (await repos.leases.runningBy([id])).get(id) ?? []);
  }

  async list(q: PageQuery, namespace: string) {
    const repos = this.db.read();
    const rows = await repos.workers.page(namespace, decodeCursor(q.cursor), q.limit);
    const running = await repos.leases.runningBy(rows.map((r) => r.id));
    return pageOf(rows, q.limit, (w) => toWorkerResponse(w, running.get(w.id) ?? []));
  }

  /**
   * Records that a worker polled; 404 for an id that was never registered in this
   * namespace or that another key registered, 409 for a worker that handed a task back as it stopped (seen within
   * TOUCH_EVERY_MS on other replicas; at once on the one that took the hand-back).
   */
  async touch(id: string, namespace: string, keyId: string | null): Promise<void> {
    if (this.recentlySeen(id, namespace, keyId)) return;
    const now = Date.now();
    const key = `${namespace}/${id}`;
    const found = await this.db.transaction((repos) => repos.workers.touch(id, namespace, keyId, now), now);
    if (found === 'unknown') throw notFound('worker', id);
    if (found === 'stopping')
      throw conflict(
        `worker ${id} handed a task back as it stopped (WORKER_SHUTDOWN); it may not poll again: a worker that goes on registers again`,
        undefined,
        'WORKER_STOPPING',
      );
    if (this.touched.size > 100_000) this.touched.clear();
    this.touched.set(key, { at: now, keyId });
  }

  /** Whether this worker polled here, under this key, within TOUCH_EVERY_MS (and has not stopped since). */
  recentlySeen(id: string, namespace: string, keyId: string | null): boolean {
    const last = this.touched.get(`${namespace}/${id}`);
    return !!last && last.keyId === keyId && Date.now() - last.at < TOUCH_EVERY_MS;
  }

  /** A worker handed a task back as it stopped: its next poll here is checked against the database. */
  stopping(id: string, namespace: string): void {
    this.touched.delete(`${namespace}/${id}`);
  }
}
