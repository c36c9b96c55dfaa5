import type { EntityManager } from 'typeorm';
import { TaskEntity } from '../entities/task.entity.js';
import type { JsonObject } from '../entities/columns.js';
import { sql } from '../dialect.js';
import { hydrate, persisted } from '../rows.js';

/**
 * The leases of RUNNING tasks, kept on the task table: whose a lease token is, a heartbeat
 * extending one, the input its attempt received, those that ran out (or whose run time
 * did), and which each worker holds. Taking a lease and ending one change a task's state:
 * TransitionRepository.
 */
export class LeaseRepository {
  constructor(private readonly em: EntityManager) {}

  /** Takes: a workflow id, a lease token and the clock. Returns: id, name and produced keys of the RUNNING task whose lease that is and is not over, or null. */
  async holder(
    workflowId: string,
    token: string,
    now: number,
  ): Promise<{ id: string; name: string; namespace: string; produces: string[] } | null> {
    const { rows } = await sql(
      this.em,
      `SELECT id, name, namespace, produces FROM task WHERE workflow_id = :wf AND lease_token = :token AND state = 'RUNNING' AND lease_expires_at >= :now`,
      { wf: workflowId, token, now },
    );
    if (!rows[0]) return null;
    const t = hydrate(this.em, TaskEntity, rows[0]);
    return { id: t.id, name: t.name, namespace: t.namespace, produces: t.produces };
  }

  /**
   * Takes: a task id, its lease token, the new expiry and progress (undefined: unchanged).
   * Writes the heartbeat while that lease is the RUNNING task's. Returns: whether it was.
   */
  async extend(id: string, token: string, expiresAt: number, now: number, progress: unknown): Promise<boolean> {
    const withProgress = progress === undefined ? '' : ', progress = :progress';
    const { affected } = await sql(
      this.em,
      `UPDATE task SET lease_expires_at = :exp, updated_at = :now${withProgress} WHERE id = :id AND state = 'RUNNING' AND lease_token = :token`,
      {
        exp: expiresAt,
        now,
        id,
        token,
        progress: progress === undefined ? undefined : persisted(this.em, TaskEntity, 'progress', progress),
      },
    );
    return affected > 0;
  }

  /** Takes: a task id, its lease token and the input its worker received. Writes it as that attempt's resolved input (not once the lease moved on). */
  async setResolvedInput(id: string, token: string, input: JsonObject): Promise<void> {
    await sql(this.em, 'UPDATE task SET resolved_input = :v WHERE id = :id AND lease_token = :token', {
      id,
      token,
      v: persisted(this.em, TaskEntity, 'resolved_input', input),
    });
  }

  /** Takes: the clock and a bound. Returns: RUNNING tasks whose lease or run time is over, up to `limit`. */
  async overdue(now: number, limit: number): Promise<Pick<TaskEntity, 'id' | 'workflow_id'>[]> {
    const { rows } = await sql(
      this.em,
      `SELECT id, workflow_id FROM task WHERE state = 'RUNNING' AND (lease_expires_at < :now OR deadline_at < :now) LIMIT :lim`,
      { now, lim: limit },
    );
    return rows.map((r) => ({ id: r.id as string, workflow_id: r.workflow_id as string }));
  }

  /** Takes: worker ids. Returns: the ids of the tasks each is running. */
  async runningBy(workerIds: readonly string[]): Promise<Map<string, string[]>> {
    const map = new Map<string, string[]>();
    if (workerIds.length === 0) return map;
    const { rows } = await sql(
      this.em,
      `SELECT id, worker_id FROM task WHERE worker_id IN (:ids) AND state = 'RUNNING' ORDER BY id`,
      { ids: workerIds },
    );
    for (const r of rows) {
      const w = r.worker_id as string;
      (map.get(w) ?? map.set(w, []).get(w)!).push(r.id as string);
    }
    return map;
  }
}
