import { Injectable } from '@nestjs/common';
import { In, type QueryDeepPartialEntity } from 'typeorm';
import { canTransitionTask, canTransitionWorkflow, isTerminalTask, type TaskState, type WorkflowState } from '@tagflow/domain';
import { insertRows, TaskEntity, TaskEventEntity, WorkflowEntity } from '@tagflow/persistence';
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
    const moved: string[] = [];
    for (let i = 0; i < t.ids.length; i += CHUNK) {
      const ids = t.ids.slice(i, i + CHUNK);
      const before = ids.length === 1 ? null : await this.statesOf(ctx, ids, t.from);
      if (before && before.size === 0) continue;
      const candidates = before ? [...before.keys()] : ids;
      const set: QueryDeepPartialEntity<TaskEntity> = { ...t.set, state: t.to, updated_at: ctx.now };
      if (isTerminalTask(t.to)) set.finished_at = ctx.now;
      const qb = ctx.em
        .createQueryBuilder()
        .update(TaskEntity)
        .set(set)
        .where('id IN (:...ids)', { ids: candidates })
        .andWhere('state IN (:...from)', { from: t.from });
      if (t.guard?.attempt !== undefined) qb.andWhere('attempt = :attempt', { attempt: t.guard.attempt });
      if (t.guard?.tagsetId !== undefined) qb.andWhere('tagset_id = :tagset', { tagset: t.guard.tagsetId });
      if (t.guard?.workflowRunning) {
        qb.andWhere(`EXISTS (SELECT 1 FROM workflow w WHERE w.id = task.workflow_id AND w.state = 'RUNNING')`);
      }
      const result = await qb.execute();
      const affected = result.affected ?? 0;
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
   * READY -> RUNNING for jobs fetched from one tag set's queue, each under its own lease
   * token, in one statement: guarded by the attempt each job was queued for, the queue it
   * came from, and a running workflow. Returns the rows that moved (with their token);
   * the others were stale.
   */
  async claim(ctx: TxContext, jobs: readonly { taskId: string; attempt: number; token: string }[], tagsetId: string, workerId: string | null): Promise<TaskEntity[]> {
    if (jobs.length === 0) return [];
    const params: Record<string, unknown> = { tagset: tagsetId };
    const tokenCases: string[] = [];
    const pairs: string[] = [];
    jobs.forEach((j, i) => {
      params[`i${i}`] = j.taskId;
      params[`a${i}`] = j.attempt;
      params[`t${i}`] = j.token;
      tokenCases.push(`WHEN :i${i} THEN :t${i}`);
      pairs.push(`(id = :i${i} AND attempt = :a${i})`);
    });
    const result = await ctx.em
      .createQueryBuilder()
      .update(TaskEntity)
      .set({
        state: 'RUNNING',
        updated_at: ctx.now,
        worker_id: workerId,
        lease_token: () => `CASE id ${tokenCases.join(' ')} END`,
        lease_expires_at: () => `${ctx.now} + lease_s * 1000`,
        deadline_at: () => `CASE WHEN timeout_s IS NULL THEN NULL ELSE ${ctx.now} + timeout_s * 1000 END`,
        started_at: ctx.now,
        lease_outcome: null,
        progress: () => 'NULL',
        cancel_requested: false,
      })
      .where(`state = 'READY'`)
      .andWhere('tagset_id = :tagset')
      .andWhere(`(${pairs.join(' OR ')})`)
      .andWhere(`EXISTS (SELECT 1 FROM workflow w WHERE w.id = task.workflow_id AND w.state = 'RUNNING')`)
      .setParameters(params)
      .execute();
    if ((result.affected ?? 0) === 0) return [];
    const rows = await ctx.em.getRepository(TaskEntity).findBy({ id: In(jobs.map((j) => j.taskId)), lease_token: In(jobs.map((j) => j.token)) });
    const events = rows.map((r) => {
      const e = new TaskEventEntity();
      e.task_id = r.id;
      e.workflow_id = r.workflow_id;
      e.from_state = 'READY';
      e.to_state = 'RUNNING';
      e.attempt = r.attempt;
      e.reason = workerId ? `leased by worker ${workerId}` : 'leased';
      e.at = ctx.now;
      return e;
    });
    await insertRows(ctx.em, TaskEventEntity, events);
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
    const rows = await ctx.em
      .createQueryBuilder(TaskEntity, 't')
      .select(['t.id', 't.state', 't.attempt', 't.workflow_id'])
      .where('t.id IN (:...ids)', { ids })
      .andWhere('t.state IN (:...states)', { states })
      .getMany();
    return new Map(rows.map((r) => [r.id, { state: r.state, attempt: r.attempt, workflow_id: r.workflow_id }]));
  }

  private async record(ctx: TxContext, ids: string[], before: Map<string, { state: TaskState; attempt: number; workflow_id: string }> | null, t: TaskTransition): Promise<void> {
    const info =
      before ??
      (t.known && ids.length === 1
        ? new Map([[ids[0], { state: t.to, attempt: t.known.attempt, workflow_id: t.known.workflow_id }]])
        : await this.statesOf(ctx, ids, [t.to]));
    const events = ids.map((id) => {
      const row = info.get(id);
      const e = new TaskEventEntity();
      e.task_id = id;
      e.workflow_id = row?.workflow_id ?? '';
      e.from_state = before ? (row?.state ?? null) : t.from[0];
      e.to_state = t.to;
      // Single-row transitions read the row after the update: a retry records its new attempt.
      e.attempt = row?.attempt ?? 0;
      e.reason = t.reason ?? null;
      e.at = ctx.now;
      return e;
    });
    await insertRows(ctx.em, TaskEventEntity, events);
  }
}
