import { Injectable } from '@nestjs/common';
import { isTerminalTask } from '@tagflow/domain';
import { Database, type CreatedBy, type TaskEntity, type WorkflowEntity } from '@tagflow/persistence';
import { notFound } from '../common/errors.js';
import { decodeCursor, pageOf, type Page } from '../common/pagination.js';
import { cancelTask, deleteTask, rerun } from '../engine/control.js';
import type { WorkflowCheck } from '../auth/grants.js';
import { Engine } from '../engine/engine.js';
import { addTasks, patchTask } from '../engine/submission.js';
import type { TaskSpecLike } from '../engine/task-spec.js';
import type { UnitOfWork } from '../engine/unit-of-work.js';
import { LongWaits } from '../long-wait/long-waits.js';
import { WorkflowsService } from '../workflows/workflows.service.js';
import type { ShortcutTaskDto, TaskListQuery, TaskPatchDto } from './task.dto.js';
import { toTaskResponse, type TaskResponse } from './task.mapper.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Injectable()
export class TasksService {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
    private readonly workflows: WorkflowsService,
    private readonly waits: LongWaits,
  ) {}

  /** Adds tasks to an open workflow, all or none; answers them as they are once evaluated. */
  async add(
    workflowId: string,
    specs: TaskSpecLike[],
    createdBy: CreatedBy | null,
    namespace: string,
    check?: WorkflowCheck,
  ): Promise<TaskEntity[]> {
    return this.engine.inWorkflow(
      workflowId,
      async (uow, wf) => {
        await check?.(uow.repos, wf);
        const rows = await addTasks(uow, wf, specs, { kind: 'task', createdBy });
        await uow.settle();
        // Rows that became READY followed along; one that ended may have taken others with it.
        return uow.endedAny ? uow.repos.tasks.load(rows.map((r) => r.id)) : rows;
      },
      namespace,
    );
  }

  /** POST /v1/tasks: a sealed workflow holding this one task. */
  async shortcut(dto: ShortcutTaskDto, createdBy: CreatedBy | null, namespace: string): Promise<TaskEntity> {
    const { workflow_name, ...spec } = dto;
    const wf = await this.workflows.create(
      {
        name: workflow_name ?? spec.name ?? spec.action.type.replace(/[^A-Za-z0-9_.-]/g, '-'),
        sealed: true,
        tasks: [spec],
      },
      createdBy,
      namespace,
    );
    return (await this.db.read().tasks.firstOf(wf.id))!;
  }

  /** The task; 404 unless it lives in `namespace`. */
  async get(id: string, namespace: string): Promise<TaskEntity> {
    const task = UUID.test(id) ? await this.db.read().tasks.get(id, namespace) : null;
    if (!task) throw notFound('task', id);
    return task;
  }

  /** Long-poll until the task is terminal or the wait ends (or `stop` aborts); returns it either way. */
  async getWhenFinished(
    id: string,
    waitS: number | undefined,
    namespace: string,
    stop?: AbortSignal,
  ): Promise<TaskEntity> {
    const first = await this.get(id, namespace);
    if (!waitS || isTerminalTask(first.state)) return first;
    const finished = await this.waits.until(
      LongWaits.task(id),
      Date.now() + waitS * 1000,
      async () => {
        const t = await this.get(id, namespace);
        return isTerminalTask(t.state) ? t : undefined;
      },
      undefined,
      stop,
    );
    return finished ?? (await this.get(id, namespace));
  }

  async getInWorkflow(workflowId: string, idOrName: string, namespace: string): Promise<TaskEntity> {
    await this.workflows.get(workflowId, namespace);
    const task = await this.db.read().tasks.getInWorkflow(workflowId, idOrName, UUID.test(idOrName));
    if (!task) throw notFound('task', `${idOrName} in workflow ${workflowId}`);
    return task;
  }

  async list(workflowId: string, q: TaskListQuery, namespace: string): Promise<Page<TaskResponse>> {
    await this.workflows.get(workflowId, namespace);
    const rows = await this.db
      .read()
      .tasks.page(workflowId, { state: q.state, tag: q.tag, after: decodeCursor(q.cursor), limit: q.limit });
    return pageOf(rows, q.limit, toTaskResponse);
  }

  async events(id: string, namespace: string) {
    await this.get(id, namespace);
    const rows = await this.db.read().events.ofTask(id);
    return rows.map((e) => ({
      from: e.from_state,
      to: e.to_state,
      attempt: e.attempt,
      reason: e.reason,
      at: new Date(e.at).toISOString(),
    }));
  }

  /** Changes a task before it runs; its dependencies are evaluated again. */
  patch(id: string, dto: TaskPatchDto, namespace: string, check?: WorkflowCheck): Promise<TaskEntity> {
    return this.inTaskWorkflow(id, namespace, async (uow, wf, t) => {
      await check?.(uow.repos, wf);
      await patchTask(uow, wf, t, dto);
    });
  }

  /** Deletes a task before it runs, unless another task requires it by name. */
  async remove(id: string, namespace: string): Promise<void> {
    await this.inTaskWorkflow(id, namespace, deleteTask, false);
  }

  /** Cancels a task: at once if it has not started, else through its worker's next heartbeat. */
  cancel(id: string, namespace: string): Promise<TaskEntity> {
    return this.inTaskWorkflow(id, namespace, cancelTask);
  }

  /** Runs an ERROR task again as a new attempt (and the tasks skipped for its failure wait again). */
  rerun(id: string, namespace: string, check?: WorkflowCheck): Promise<TaskEntity> {
    return this.inTaskWorkflow(id, namespace, async (uow, wf, t) => {
      await check?.(uow.repos, wf);
      await rerun(uow, wf, t);
    });
  }

  /** Runs `op` on the task under its workflow's lock; answers the task as it is once everything settled. */
  private async inTaskWorkflow(
    id: string,
    namespace: string,
    op: (uow: UnitOfWork, wf: WorkflowEntity, t: TaskEntity) => Promise<void>,
    reread = true,
  ): Promise<TaskEntity> {
    const task = await this.get(id, namespace);
    return this.engine.inWorkflow(
      task.workflow_id,
      async (uow, wf) => {
        const t = await uow.repos.tasks.get(id);
        if (!t) throw notFound('task', id);
        await op(uow, wf, t);
        await uow.settle();
        return reread ? ((await uow.repos.tasks.get(id)) ?? t) : t;
      },
      namespace,
    );
  }
}
