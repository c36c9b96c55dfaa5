import { Injectable } from '@nestjs/common';
import { In } from 'typeorm';
import { canonicalTags, describeCycle, findCycle, isTerminalTask, isTerminalWorkflow, normalizeRetry, tagsetId } from '@tagflow/domain';
import { Database, insertRows, ReservedNameEntity, TaskDepEntity, TaskEntity, TaskEventEntity, TaskTagEntity } from '@tagflow/persistence';
import { conflict, notFound, unprocessable } from '../common/errors.js';
import { decodeCursor, pageOf, type Page } from '../common/pagination.js';
import { checkReferences, depRows, Engine } from '../engine/engine.service.js';
import { handlerNames, normalizeSpec, type NewTask, type TaskSpecLike } from '../engine/task-spec.js';
import type { TxContext } from '../engine/tx-context.js';
import { Transitions } from '../engine/transitions.js';
import { Waiters } from '../dispatch/waiters.js';
import { WorkflowsService } from '../workflows/workflows.service.js';
import type { ShortcutTaskDto, TaskListQuery, TaskPatchDto } from './task.dto.js';
import { toTaskResponse, type TaskResponse } from './task.mapper.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Injectable()
export class TasksService {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    private readonly transitions: Transitions,
    private readonly workflows: WorkflowsService,
    private readonly waiters: Waiters,
  ) {}

  /** Adds tasks to an open workflow, all or none. */
  async add(workflowId: string, specs: TaskSpecLike[]): Promise<TaskEntity[]> {
    return this.engine.inWorkflow(workflowId, (ctx, wf) => this.engine.addTasks(ctx, wf, specs, { kind: 'task' }));
  }

  /** POST /v1/tasks: a sealed workflow holding this one task. */
  async shortcut(dto: ShortcutTaskDto): Promise<TaskEntity> {
    const { workflow_name, ...spec } = dto;
    const wf = await this.workflows.create({
      name: workflow_name ?? spec.name ?? spec.action.type.replace(/[^A-Za-z0-9_.-]/g, '-'),
      sealed: true,
      tasks: [spec],
    });
    const task = await this.db.manager.getRepository(TaskEntity).findOneByOrFail({ workflow_id: wf.id });
    return task;
  }

  async get(id: string): Promise<TaskEntity> {
    const task = UUID.test(id) ? await this.db.manager.getRepository(TaskEntity).findOneBy({ id }) : null;
    if (!task) throw notFound('task', id);
    return task;
  }

  /** Long-poll until the task is terminal or the wait ends; returns it either way. */
  async getWhenFinished(id: string, waitS: number | undefined): Promise<TaskEntity> {
    const first = await this.get(id);
    if (!waitS || isTerminalTask(first.state)) return first;
    const finished = await this.waiters.waitFor(Waiters.task(id), Date.now() + waitS * 1000, async () => {
      const t = await this.get(id);
      return isTerminalTask(t.state) ? t : undefined;
    });
    return finished ?? (await this.get(id));
  }

  async getInWorkflow(workflowId: string, idOrName: string): Promise<TaskEntity> {
    await this.workflows.get(workflowId);
    const repo = this.db.manager.getRepository(TaskEntity);
    const task = (UUID.test(idOrName) ? await repo.findOneBy({ workflow_id: workflowId, id: idOrName }) : null) ??
      (await repo.findOneBy({ workflow_id: workflowId, name: idOrName }));
    if (!task) throw notFound('task', `${idOrName} in workflow ${workflowId}`);
    return task;
  }

  async list(workflowId: string, q: TaskListQuery): Promise<Page<TaskResponse>> {
    await this.workflows.get(workflowId);
    const qb = this.db.manager.getRepository(TaskEntity).createQueryBuilder('t').where('t.workflow_id = :wf', { wf: workflowId });
    if (q.state) qb.andWhere('t.state = :state', { state: q.state });
    if (q.tag) qb.andWhere('EXISTS (SELECT 1 FROM task_tag tt WHERE tt.task_id = t.id AND tt.tag = :tag)', { tag: q.tag });
    const cursor = decodeCursor(q.cursor);
    if (cursor) qb.andWhere('(t.created_at > :c OR (t.created_at = :c AND t.id > :i))', { c: cursor.created_at, i: cursor.id });
    const rows = await qb.orderBy('t.created_at', 'ASC').addOrderBy('t.id', 'ASC').limit(q.limit + 1).getMany();
    return pageOf(rows, q.limit, toTaskResponse);
  }

  async events(id: string) {
    await this.get(id);
    const rows = await this.db.manager.getRepository(TaskEventEntity).find({ where: { task_id: id }, order: { id: 'ASC' } });
    return rows.map((e) => ({ from: e.from_state, to: e.to_state, attempt: e.attempt, reason: e.reason, at: new Date(e.at).toISOString() }));
  }

  /** Changes a task before it runs; its dependencies are evaluated again. */
  async patch(id: string, dto: TaskPatchDto): Promise<TaskEntity> {
    const task = await this.get(id);
    return this.engine.inWorkflow(task.workflow_id, async (ctx, wf) => {
      const t = await ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
      if (t.state !== 'WAITING' && t.state !== 'READY') throw conflict(`task ${id} is ${t.state}; only a WAITING or READY task can be changed`, { state: t.state });
      if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${wf.id} is ${wf.state}`, { state: wf.state });
      const merged = normalizeSpec({
        name: t.name,
        tags: dto.tags ?? t.tags,
        action: dto.action ?? t.action,
        input: dto.input ?? t.input,
        requires: dto.requires ?? t.requires,
        requires_tags: dto.requires_tags ?? t.requires_tags,
        retry: dto.retry ? normalizeRetry(dto.retry) : t.retry,
        timeout_s: dto.timeout_s ?? t.timeout_s ?? undefined,
        lease_s: dto.lease_s ?? t.lease_s,
        on_error: (dto.on_error ?? t.on_error) as unknown as TaskSpecLike['on_error'],
        revert: dto.revert ?? t.revert ?? undefined,
        produces: dto.produces ?? t.produces,
      });
      await this.checkPatch(ctx, wf.id, t, merged);
      if (t.state === 'READY') await this.transitions.tasks(ctx, { ids: [id], from: ['READY'], to: 'WAITING', reason: 'changed before it ran' });
      const tags = canonicalTags(merged.tags);
      await ctx.em.getRepository(TaskEntity).update({ id }, {
        tags, tagset_id: tagsetId(tags), action: merged.action, input: merged.input, requires: merged.requires,
        requires_tags: merged.requires_tags, retry: merged.retry, timeout_s: merged.timeout_s, lease_s: merged.lease_s,
        on_error: merged.on_error, revert: merged.revert, produces: merged.produces, data_requires: merged.data_requires, updated_at: ctx.now,
      });
      const updated = await ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
      await ctx.em.getRepository(TaskTagEntity).delete({ task_id: id });
      if (tags.length) await insertRows(ctx.em, TaskTagEntity, tags.map((tag) => ({ task_id: id, tag, workflow_id: wf.id })));
      await ctx.em.getRepository(TaskDepEntity).delete({ task_id: id });
      const deps = depRows(updated);
      if (deps.length) await insertRows(ctx.em, TaskDepEntity, deps);
      await ctx.em.getRepository(ReservedNameEntity).delete({ owner_task_id: id });
      const reserved = handlerNames(merged);
      if (reserved.length) await insertRows(ctx.em, ReservedNameEntity, reserved.map((name) => ({ workflow_id: wf.id, name, owner_task_id: id })));
      // Its tags may have changed: tasks selecting either old or new tags see a new membership.
      await this.engine.evaluate(ctx, wf, [id, ...(await this.engine.dependentsOf(ctx, wf.id, [updated, { name: t.name, tags: t.tags }]))]);
      await this.engine.checkCompletion(ctx, wf);
      return ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
    });
  }

  /** The submission rules of the engine, for one task changed in place. */
  private async checkPatch(ctx: TxContext, workflowId: string, t: TaskEntity, merged: NewTask): Promise<void> {
    checkReferences(merged);
    const graph = await this.engine.graphOf(ctx, workflowId);
    const names = new Set(graph.map((g) => g.name));
    for (const r of merged.requires) {
      if (r === t.name) throw unprocessable(describeCycle([t.name, t.name]));
      if (!names.has(r)) throw unprocessable(`task ${t.name} requires unknown task ${r}`, [{ field: 'requires', errors: [`unknown task: ${r}`] }]);
    }
    for (const h of handlerNames(merged)) {
      if (names.has(h)) throw unprocessable(`on_error handler name ${h} clashes with an existing task`);
      const owner = await ctx.em.getRepository(ReservedNameEntity).findOneBy({ workflow_id: workflowId, name: h });
      if (owner && owner.owner_task_id !== t.id) throw unprocessable(`on_error handler name ${h} is already reserved by task ${owner.owner_task_id}`);
    }
    const cycle = findCycle(graph.map((g) => (g.name === t.name ? { ...merged, waiting: true } : g)));
    if (cycle) throw unprocessable(describeCycle(cycle), [{ field: 'requires', errors: [describeCycle(cycle)] }]);
  }

  /** Deletes a task before it runs, unless another task requires it by name. */
  async remove(id: string): Promise<void> {
    const task = await this.get(id);
    await this.engine.inWorkflow(task.workflow_id, async (ctx, wf) => {
      const t = await ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
      if (t.state !== 'WAITING' && t.state !== 'READY') throw conflict(`task ${id} is ${t.state}; only a WAITING or READY task can be deleted`, { state: t.state });
      const dependents = await ctx.em.getRepository(TaskDepEntity).find({ where: { workflow_id: wf.id, kind: 'name', dep_key: t.name } });
      const others = dependents.filter((d) => d.task_id !== id);
      if (others.length > 0) {
        const names = await ctx.em.getRepository(TaskEntity).find({ select: { name: true }, where: { id: In(others.map((d) => d.task_id)) } });
        throw conflict(`task ${t.name} is required by ${names.map((n) => n.name).join(', ')}`, { required_by: names.map((n) => n.name) });
      }
      for (const entity of [TaskEventEntity, TaskTagEntity, TaskDepEntity] as const) await ctx.em.getRepository(entity).delete({ task_id: id });
      await ctx.em.getRepository(ReservedNameEntity).delete({ owner_task_id: id });
      await ctx.em.getRepository(TaskEntity).delete({ id });
      // Tasks that selected it by tag no longer wait for it.
      await this.engine.evaluate(ctx, wf, await this.engine.dependentsOf(ctx, wf.id, [t]));
      await this.engine.checkCompletion(ctx, wf);
    });
  }

  /** Cancels a task: at once if it has not started, else through its worker's next heartbeat. */
  async cancel(id: string): Promise<TaskEntity> {
    const task = await this.get(id);
    return this.engine.inWorkflow(task.workflow_id, async (ctx, wf) => {
      const t = await ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
      if (isTerminalTask(t.state)) throw conflict(`task ${id} is ${t.state}`, { state: t.state });
      if (t.state === 'RUNNING') {
        await ctx.em.getRepository(TaskEntity).update({ id, state: 'RUNNING' }, { cancel_requested: true, updated_at: ctx.now });
      } else {
        await this.transitions.tasks(ctx, {
          ids: [id], from: ['WAITING', 'READY'], to: 'CANCELLED',
          set: { error: { code: 'CANCELLED', message: 'cancelled on request' } }, reason: 'cancelled on request',
        });
        await this.engine.afterSettled(ctx, wf, await this.engine.load(ctx, [id]));
      }
      return ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
    });
  }

  /** Runs an ERROR task again as a new attempt, while its workflow is unfinished. */
  async rerun(id: string): Promise<TaskEntity> {
    const task = await this.get(id);
    return this.engine.inWorkflow(task.workflow_id, async (ctx, wf) => {
      const t = await ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
      if (t.state !== 'ERROR') throw conflict(`task ${id} is ${t.state}; only an ERROR task can be rerun`, { state: t.state });
      if (isTerminalWorkflow(wf.state)) throw conflict(`workflow ${wf.id} is ${wf.state}; a finished workflow's tasks cannot be rerun`, { state: wf.state });
      if (t.handling) throw conflict(`task ${id} has on_error handlers running`);
      await this.transitions.tasks(ctx, {
        ids: [id], from: ['ERROR'], to: 'READY',
        set: { attempt: t.attempt + 1, ready_at: ctx.now, handled: false, error: null, output: null, exit_code: null, worker_id: null, finished_at: null, cancel_requested: false },
        reason: 'rerun on request',
      });
      if (wf.state === 'RUNNING') ctx.effects.enqueue.push(this.engine.enqueueItem({ ...t, attempt: t.attempt + 1 }, 0));
      return ctx.em.getRepository(TaskEntity).findOneByOrFail({ id });
    });
  }
}

