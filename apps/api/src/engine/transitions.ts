import { Injectable } from '@nestjs/common';
import type { QueryDeepPartialEntity } from 'typeorm';
import { canTransitionTask, canTransitionWorkflow, isTerminalTask, type TaskState, type WorkflowState } from '@tagflow/domain';
import { hydrate, insertRows, persisted, pgArrayType, query, sql, TaskEntity, TaskEventEntity, updateEach, WorkflowEntity } from '@tagflow/persistence';
import type { TxContext } from './tx-context.js';

export interface TaskTransition {
  ids: readonly string[];
  from: readonly TaskState[];
  to: TaskState;
  set?: QueryDeepPartialEntity<TaskEntity>;
  reason?: string | null;
  /** Extra conditions: the attempt the caller saw, the queue it came from, a running workflow. */
  guard?: { attempt?: number; tagsetId?: string; workflowRunning?: boolean };
  /** For one task whose row the caller holds: its workflow and its attempt after the change (saves a read). */
  known?: { workflow_id: string; attempt: number };
}

const CHUNK = 500;

export interface ClaimJob {
  taskId: string;
  attempt: number;
  tagsetId: string;
  token: string;
  workerId: string | null;
}

/**
 * The one place where a task's or a workflow's state changes. Each change is a guarded
 * UPDATE (`WHERE state IN (:from)`), so of two racing writers exactly one wins; every
 * task transition that happens is recorded in task_event with its time.
 */
@Injectable()
export class Transitions {
  /** Applies a transition to the tasks still in one of `from`; returns the ids that moved. */
  async tasks(ctx: TxContext, t: TaskTransition): Promise<string[]> {
    for (const from of t.from) {
      if (!canTransitionTask(from, t.to)) throw new Error(`illegal task transition ${from} -> ${t.to}`);
    }
    const assign: QueryDeepPartialEntity<TaskEntity> = { ...t.set, state: t.to, updated_at: ctx.now };
    if (isTerminalTask(t.to)) assign.finished_at = ctx.now;
    const { clause, params } = setClause(ctx, assign);
    const guards: string[] = [];
    if (t.guard?.attempt !== undefined) guards.push('AND attempt = :g_attempt');
    if (t.guard?.tagsetId !== undefined) guards.push('AND tagset_id = :g_tagset');
    if (t.guard?.workflowRunning) guards.push(`AND EXISTS (SELECT 1 FROM workflow w WHERE w.id = task.workflow_id AND w.state = 'RUNNING')`);
    const update = `UPDATE task SET ${clause} WHERE id IN (:ids) AND state IN (:from) ${guards.join(' ')}`;
    const moved: string[] = [];
    for (let i = 0; i < t.ids.length; i += CHUNK) {
      const ids = t.ids.slice(i, i + CHUNK);
      const before = ids.length === 1 ? null : await this.statesOf(ctx, ids, t.from);
      if (before && before.size === 0) continue;
      const candidates = before ? [...before.keys()] : ids;
      const { affected } = await sql(ctx.em, update, { ...params, ids: candidates, from: t.from, g_attempt: t.guard?.attempt, g_tagset: t.guard?.tagsetId });
      let movedNow: string[];
      if (affected === candidates.length) movedNow = candidates;
      else if (affected === 0) movedNow = [];
      else {
        // Some rows changed state under us (a claim); the ones now in `to` are ours.
        const after = await this.statesOf(ctx, candidates, [t.to]);
        movedNow = candidates.filter((id) => after.has(id));
      }
      if (movedNow.length > 0) await this.record(ctx, movedNow, before, t);
      moved.push(...movedNow);
    }
    return moved;
  }

  /**
   * One transition for several tasks whose rows the caller holds under their workflows'
   * locks, each task with its own values (a batch of reports): one UPDATE and one event
   * insert for them all. The task objects follow their rows. Throws unless every task was
   * still in `from`.
   */
  async each(ctx: TxContext, from: TaskState, to: TaskState, items: readonly { task: TaskEntity; set: Partial<TaskEntity> }[], reason: string): Promise<void> {
    if (items.length === 0) return;
    if (!canTransitionTask(from, to)) throw new Error(`illegal task transition ${from} -> ${to}`);
    const moved = { state: to, updated_at: ctx.now, ...(isTerminalTask(to) ? { finished_at: ctx.now } : {}) };
    const rows = items.map(({ task, set }) => ({ id: task.id, ...set, ...moved }));
    const changed = await updateEach(ctx.em, TaskEntity, rows, { state: from });
    if (changed !== items.length) {
      throw new Error(`${items.length - changed} of tasks ${items.map((i) => i.task.id).join(', ')} were not ${from} under their workflows' locks`);
    }
    for (const { task, set } of items) Object.assign(task, set, moved);
    await this.insertEvents(ctx, items.map(({ task }) => ({ task_id: task.id, workflow_id: task.workflow_id, from_state: from, to_state: to, attempt: task.attempt, reason })));
  }

  /**
   * READY -> RUNNING for jobs fetched from the tag sets' queues, each under its own lease
   * token, in one statement: guarded by the attempt each job was queued for, the queue it
   * came from, and a running workflow. Returns the rows that moved (with their token);
   * the others were stale.
   */
  async claim(ctx: TxContext, jobs: readonly ClaimJob[]): Promise<TaskEntity[]> {
    if (jobs.length === 0) return [];
    const rows = ctx.em.connection.options.type === 'postgres' ? await this.claimPostgres(ctx, jobs) : await this.claimSqlite(ctx, jobs);
    const tasks = rows.map((r) => hydrate(ctx.em, TaskEntity, r));
    const workerOf = new Map(jobs.map((j) => [j.taskId, j.workerId]));
    await this.insertEvents(ctx, tasks.map((r) => {
      const worker = workerOf.get(r.id);
      return { task_id: r.id, workflow_id: r.workflow_id, from_state: 'READY', to_state: 'RUNNING', attempt: r.attempt, reason: worker ? `leased by worker ${worker}` : 'leased' };
    }));
    return tasks;
  }

  /**
   * The jobs joined to their rows through `unnest`: each row found by its primary key. A
   * list of `(id = … AND …) OR …` made PostgreSQL scan every READY task through the
   * state index instead (2.4 ms a claim with a few thousand queued).
   */
  private async claimPostgres(ctx: TxContext, jobs: readonly ClaimJob[]): Promise<Record<string, unknown>[]> {
    const type = (property: string) => pgArrayType(ctx.em, TaskEntity, property);
    const { rows } = await query(
      ctx.em,
      `UPDATE task t SET state = 'RUNNING', updated_at = $1, started_at = $1, worker_id = v.worker_id, lease_token = v.lease_token,
         lease_expires_at = CAST($1 AS BIGINT) + t.lease_s * 1000,
         deadline_at = CASE WHEN t.timeout_s IS NULL THEN NULL ELSE CAST($1 AS BIGINT) + t.timeout_s * 1000 END,
         lease_outcome = NULL, progress = NULL, cancel_requested = false
       FROM unnest($2::${type('id')}, $3::${type('attempt')}, $4::${type('tagset_id')}, $5::${type('lease_token')}, $6::${type('worker_id')})
         AS v(id, attempt, tagset_id, lease_token, worker_id)
       WHERE t.id = v.id AND t.attempt = v.attempt AND t.tagset_id = v.tagset_id AND t.state = 'READY'
         AND EXISTS (SELECT 1 FROM workflow w WHERE w.id = t.workflow_id AND w.state = 'RUNNING')
       RETURNING t.*`,
      [ctx.now, jobs.map((j) => j.taskId), jobs.map((j) => j.attempt), jobs.map((j) => j.tagsetId), jobs.map((j) => j.token), jobs.map((j) => j.workerId)],
    );
    return rows;
  }

  /** One UPDATE with a CASE per leased column; SQLite finds each row by its primary key (a multi-index OR). */
  private async claimSqlite(ctx: TxContext, jobs: readonly ClaimJob[]): Promise<Record<string, unknown>[]> {
    const params: Record<string, unknown> = { now: ctx.now, no: false };
    const tokens: string[] = [];
    const workers: string[] = [];
    const pairs: string[] = [];
    jobs.forEach((j, i) => {
      Object.assign(params, { [`i${i}`]: j.taskId, [`a${i}`]: j.attempt, [`s${i}`]: j.tagsetId, [`t${i}`]: j.token, [`w${i}`]: j.workerId });
      tokens.push(`WHEN :i${i} THEN :t${i}`);
      workers.push(`WHEN :i${i} THEN :w${i}`);
      pairs.push(`(id = :i${i} AND attempt = :a${i} AND tagset_id = :s${i})`);
    });
    // The clock is a parameter, not inlined: the text stays the same from one claim of as
    // many jobs to the next, so the statement cache serves it instead of preparing a new one.
    const { affected } = await sql(
      ctx.em,
      `UPDATE task SET state = 'RUNNING', updated_at = :now, started_at = :now,
         worker_id = CASE id ${workers.join(' ')} END, lease_token = CASE id ${tokens.join(' ')} END,
         lease_expires_at = CAST(:now AS BIGINT) + lease_s * 1000,
         deadline_at = CASE WHEN timeout_s IS NULL THEN NULL ELSE CAST(:now AS BIGINT) + timeout_s * 1000 END,
         lease_outcome = NULL, progress = NULL, cancel_requested = :no
       WHERE state = 'READY' AND (${pairs.join(' OR ')})
         AND EXISTS (SELECT 1 FROM workflow w WHERE w.id = task.workflow_id AND w.state = 'RUNNING')`,
      params,
    );
    if (affected === 0) return [];
    const { rows } = await sql(ctx.em, 'SELECT * FROM task WHERE id IN (:ids) AND lease_token IN (:tokens)', {
      ids: jobs.map((j) => j.taskId), tokens: jobs.map((j) => j.token),
    });
    return rows;
  }

  /** Moves a workflow from one of `from` to `to`; false when it was no longer in `from`. */
  async workflow(ctx: TxContext, id: string, from: readonly WorkflowState[], to: WorkflowState, set: QueryDeepPartialEntity<WorkflowEntity> = {}): Promise<boolean> {
    for (const f of from) if (!canTransitionWorkflow(f, to)) throw new Error(`illegal workflow transition ${f} -> ${to}`);
    const terminal = to === 'SUCCESS' || to === 'ERROR' || to === 'CANCELLED';
    const result = await ctx.em
      .createQueryBuilder()
      .update(WorkflowEntity)
      .set({ ...set, state: to, updated_at: ctx.now, ...(terminal ? { finished_at: ctx.now } : {}) })
      .where('id = :id', { id })
      .andWhere('state IN (:...from)', { from })
      .execute();
    return (result.affected ?? 0) === 1;
  }

  private async statesOf(ctx: TxContext, ids: readonly string[], states: readonly TaskState[]): Promise<Map<string, { state: TaskState; attempt: number; workflow_id: string }>> {
    const { rows } = await sql(ctx.em, 'SELECT id, state, attempt, workflow_id FROM task WHERE id IN (:ids) AND state IN (:states)', { ids, states });
    return new Map(rows.map((r) => [r.id as string, { state: r.state as TaskState, attempt: Number(r.attempt), workflow_id: r.workflow_id as string }]));
  }

  private async record(ctx: TxContext, ids: string[], before: Map<string, { state: TaskState; attempt: number; workflow_id: string }> | null, t: TaskTransition): Promise<void> {
    const info =
      before ??
      (t.known && ids.length === 1
        ? new Map([[ids[0], { state: t.to, attempt: t.known.attempt, workflow_id: t.known.workflow_id }]])
        : await this.statesOf(ctx, ids, [t.to]));
    await this.insertEvents(ctx, ids.map((id) => {
      const row = info.get(id);
      return {
        task_id: id,
        workflow_id: row?.workflow_id ?? '',
        from_state: before ? (row?.state ?? null) : t.from[0],
        to_state: t.to,
        // Single-row transitions read the row after the update: a retry records its new attempt.
        attempt: row?.attempt ?? 0,
        reason: t.reason ?? null,
      };
    }));
  }

  private async insertEvents(ctx: TxContext, events: readonly Omit<TaskEventEntity, 'id' | 'at'>[]): Promise<void> {
    await insertRows(ctx.em, TaskEventEntity, events.map((e) => ({ ...e, at: ctx.now })));
  }
}

/** `col = :s_col, ...` for an UPDATE, with values as the columns store them; functions are raw SQL. */
function setClause(ctx: TxContext, assign: QueryDeepPartialEntity<TaskEntity>): { clause: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {};
  const parts = Object.entries(assign).map(([property, value]) => {
    if (typeof value === 'function') return `${property} = ${value()}`;
    params[`s_${property}`] = persisted(ctx.em, TaskEntity, property, value);
    return `${property} = :s_${property}`;
  });
  return { clause: parts.join(', '), params };
}
