import { Injectable } from '@nestjs/common';
import { In } from 'typeorm';
import { canonicalTags, isTerminalWorkflow, newId, type TaskState } from '@tagflow/domain';
import {
  Database, DataEntryEntity, insertRows, ReservedNameEntity, TaskDepEntity, TaskEntity, TaskEventEntity, TaskTagEntity, WorkflowEntity, WorkflowTagEntity,
} from '@tagflow/persistence';
import { conflict, notFound } from '../common/errors.js';
import { decodeCursor, pageOf, type Page } from '../common/pagination.js';
import { Engine } from '../engine/engine.service.js';
import type { TaskSpecLike } from '../engine/task-spec.js';
import type { TxContext } from '../engine/tx-context.js';
import { Transitions } from '../engine/transitions.js';
import type { CreateWorkflowDto, WorkflowListQuery } from './workflow.dto.js';
import { emptyCounts, toWorkflowResponse, type TaskCounts } from './workflow.mapper.js';

export type WorkflowResponse = ReturnType<typeof toWorkflowResponse>;

@Injectable()
export class WorkflowsService {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    private readonly transitions: Transitions,
  ) {}

  /** Creates the workflow and its inline tasks atomically. */
  async create(dto: CreateWorkflowDto): Promise<WorkflowEntity> {
    const now = Date.now();
    const wf: WorkflowEntity = {
      id: newId(now),
      name: dto.name,
      description: dto.description ?? null,
      tags: canonicalTags(dto.tags ?? []),
      input: dto.input ?? {},
      state: 'RUNNING',
      sealed: dto.sealed ?? false,
      on_failure: dto.on_failure ?? 'fail',
      rollback_started: false,
      created_at: now,
      updated_at: now,
      finished_at: null,
    };
    const tasks = (dto.tasks ?? []) as unknown as TaskSpecLike[];
    await this.engine.inTransaction(async (ctx) => {
      await insertRows(ctx.em, WorkflowEntity, [wf]);
      await insertRows(ctx.em, WorkflowTagEntity, wf.tags.map((tag) => ({ workflow_id: wf.id, tag })));
      if (tasks.length) await this.engine.addTasks(ctx, wf, tasks, { kind: 'task', creating: true });
      // A sealed workflow with nothing in it is already done.
      await this.engine.checkCompletion(ctx, wf);
    });
    return (await this.get(wf.id)).entity;
  }

  async get(id: string): Promise<{ entity: WorkflowEntity; counts: TaskCounts }> {
    const entity = await this.db.manager.getRepository(WorkflowEntity).findOneBy({ id });
    if (!entity) throw notFound('workflow', id);
    return { entity, counts: (await this.counts([id])).get(id) ?? emptyCounts() };
  }

  async view(id: string): Promise<WorkflowResponse> {
    const { entity, counts } = await this.get(id);
    return toWorkflowResponse(entity, counts);
  }

  async list(q: WorkflowListQuery): Promise<Page<WorkflowResponse>> {
    const qb = this.db.manager.getRepository(WorkflowEntity).createQueryBuilder('w');
    if (q.state) qb.andWhere('w.state = :state', { state: q.state });
    if (q.name) qb.andWhere('w.name = :name', { name: q.name });
    if (q.tag) qb.andWhere('EXISTS (SELECT 1 FROM workflow_tag wt WHERE wt.workflow_id = w.id AND wt.tag = :tag)', { tag: q.tag });
    const cursor = decodeCursor(q.cursor);
    if (cursor) qb.andWhere('(w.created_at < :c OR (w.created_at = :c AND w.id < :i))', { c: cursor.created_at, i: cursor.id });
    const rows = await qb.orderBy('w.created_at', 'DESC').addOrderBy('w.id', 'DESC').limit(q.limit + 1).getMany();
    const counts = await this.counts(rows.slice(0, q.limit).map((r) => r.id));
    return pageOf(rows, q.limit, (w) => toWorkflowResponse(w, counts.get(w.id) ?? emptyCounts()));
  }

  async remove(id: string): Promise<void> {
    await this.engine.inWorkflow(id, async (ctx, wf) => {
      if (!isTerminalWorkflow(wf.state)) throw conflict(`workflow ${id} is ${wf.state}; only a finished workflow can be deleted (cancel it first)`, { state: wf.state });
      const repo = <T extends object>(e: new () => T) => ctx.em.getRepository(e);
      for (const entity of [TaskEventEntity, TaskTagEntity, TaskDepEntity, ReservedNameEntity, DataEntryEntity, TaskEntity, WorkflowTagEntity] as const) {
        await repo(entity as new () => object).delete({ workflow_id: id });
      }
      await repo(WorkflowEntity).delete({ id });
    });
  }

  async seal(id: string): Promise<WorkflowResponse> {
    await this.engine.inWorkflow(id, async (ctx, wf) => {
      if (wf.sealed) return;
      if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${id} is ${wf.state}`, { state: wf.state });
      await ctx.em.getRepository(WorkflowEntity).update({ id }, { sealed: true, updated_at: ctx.now });
      wf.sealed = true;
      // Tag selectors that matched nothing were waiting for exactly this; data keys that
      // no task declares it produces can no longer come (a deadlock, reported now).
      const waiting = await this.waitingOnTagsOrData(ctx, id);
      await this.engine.evaluate(ctx, wf, waiting);
      await this.engine.checkCompletion(ctx, wf);
    });
    return this.view(id);
  }

  async cancel(id: string): Promise<WorkflowResponse> {
    await this.engine.inWorkflow(id, async (ctx, wf) => {
      if (wf.state === 'CANCELLED') return;
      if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${id} is ${wf.state}`, { state: wf.state });
      await this.engine.stopWorkflow(ctx, wf, 'CANCELLED', 'workflow cancelled on request');
    });
    return this.view(id);
  }

  async pause(id: string): Promise<WorkflowResponse> {
    await this.engine.inWorkflow(id, async (ctx, wf) => {
      if (wf.state === 'PAUSED') return;
      if (wf.state !== 'RUNNING') throw conflict(`workflow ${id} is ${wf.state}; only a RUNNING workflow can be paused`, { state: wf.state });
      await this.transitions.workflow(ctx, id, ['RUNNING'], 'PAUSED');
    });
    return this.view(id);
  }

  async resume(id: string): Promise<WorkflowResponse> {
    await this.engine.inWorkflow(id, async (ctx, wf) => {
      if (wf.state === 'RUNNING') return;
      if (wf.state !== 'PAUSED') throw conflict(`workflow ${id} is ${wf.state}; only a PAUSED workflow can be resumed`, { state: wf.state });
      await this.transitions.workflow(ctx, id, ['PAUSED'], 'RUNNING');
      // Jobs of READY tasks may have been dropped while paused: queue them all again (idempotent).
      const ready = await ctx.em.getRepository(TaskEntity).find({ where: { workflow_id: id, state: 'READY' } });
      for (const t of ready) ctx.effects.enqueue.push(this.engine.enqueueItem(t, Math.max(0, (t.ready_at ?? 0) - ctx.now)));
    });
    return this.view(id);
  }

  private async waitingOnTagsOrData(ctx: TxContext, workflowId: string): Promise<string[]> {
    const rows = await ctx.em
      .createQueryBuilder(TaskDepEntity, 'd')
      .select('DISTINCT d.task_id', 'task_id')
      .innerJoin(TaskEntity, 't', `t.id = d.task_id AND t.state = 'WAITING'`)
      .where(`d.workflow_id = :wf AND d.kind IN ('tag', 'data')`, { wf: workflowId })
      .getRawMany<{ task_id: string }>();
    return rows.map((r) => r.task_id);
  }

  async counts(ids: string[]): Promise<Map<string, TaskCounts>> {
    const map = new Map<string, TaskCounts>();
    if (ids.length === 0) return map;
    const rows = await this.db.manager
      .getRepository(TaskEntity)
      .createQueryBuilder('t')
      .select('t.workflow_id', 'workflow_id')
      .addSelect('t.state', 'state')
      .addSelect('COUNT(*)', 'n')
      .where({ workflow_id: In(ids) })
      .groupBy('t.workflow_id')
      .addGroupBy('t.state')
      .getRawMany<{ workflow_id: string; state: TaskState; n: string | number }>();
    for (const r of rows) {
      const c = map.get(r.workflow_id) ?? emptyCounts();
      c[r.state] = Number(r.n);
      map.set(r.workflow_id, c);
    }
    return map;
  }
}
