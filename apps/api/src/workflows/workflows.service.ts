import { Injectable } from '@nestjs/common';
import { canonicalTags, isTerminalWorkflow, newId } from '@tagflow/domain';
import { Database, type CreatedBy, type WorkflowEntity } from '@tagflow/persistence';
import { conflict, notFound } from '../common/errors.js';
import { decodeCursor, pageOf, type Page } from '../common/pagination.js';
import { cancelWorkflow, createWorkflow, pause, resume, seal } from '../engine/control.js';
import { Engine } from '../engine/engine.js';
import type { TaskSpecLike } from '../engine/task-spec.js';
import type { UnitOfWork } from '../engine/unit-of-work.js';
import type { WorkflowCheck } from '../auth/grants.js';
import type { CreateWorkflowDto, WorkflowListQuery } from './workflow.dto.js';
import { emptyCounts, toWorkflowResponse, type TaskCounts } from './workflow.mapper.js';

export type WorkflowResponse = ReturnType<typeof toWorkflowResponse>;

@Injectable()
export class WorkflowsService {
  constructor(
    private readonly db: Database,
    private readonly engine: Engine,
  ) {}

  /** Creates the workflow and its inline tasks atomically. */
  async create(dto: CreateWorkflowDto, createdBy: CreatedBy | null, namespace: string): Promise<WorkflowEntity> {
    const wf = newWorkflowRow(dto, createdBy, namespace, Date.now());
    // A copy per attempt: the transaction changes the row it is given, and may run again (Engine.run).
    await this.engine.inTransaction((uow) =>
      createWorkflow(uow, { ...wf }, (dto.tasks ?? []) as unknown as TaskSpecLike[]),
    );
    return (await this.get(wf.id, namespace)).entity;
  }

  /** The workflow with its task counts; 404 unless it lives in `namespace`. */
  async get(id: string, namespace: string): Promise<{ entity: WorkflowEntity; counts: TaskCounts }> {
    const repos = this.db.read();
    const entity = await repos.workflows.get(id, namespace);
    if (!entity) throw notFound('workflow', id);
    return { entity, counts: { ...emptyCounts(), ...(await repos.tasks.countsByState([id])).get(id) } };
  }

  async view(id: string, namespace: string): Promise<WorkflowResponse> {
    const { entity, counts } = await this.get(id, namespace);
    return toWorkflowResponse(entity, counts);
  }

  async list(q: WorkflowListQuery, namespace: string): Promise<Page<WorkflowResponse>> {
    const repos = this.db.read();
    const rows = await repos.workflows.page({
      namespace,
      state: q.state,
      name: q.name,
      tag: q.tag,
      before: decodeCursor(q.cursor),
      limit: q.limit,
    });
    const counts = await repos.tasks.countsByState(rows.slice(0, q.limit).map((r) => r.id));
    return pageOf(rows, q.limit, (w) => toWorkflowResponse(w, { ...emptyCounts(), ...counts.get(w.id) }));
  }

  async remove(id: string, namespace: string, check?: WorkflowCheck): Promise<void> {
    await this.engine.inWorkflow(
      id,
      async (uow, wf) => {
        await check?.(uow.repos, wf);
        if (!isTerminalWorkflow(wf.state))
          throw conflict(`workflow ${id} is ${wf.state}; only a finished workflow can be deleted (cancel it first)`, {
            state: wf.state,
          });
        await uow.repos.workflows.deleteWithEverything(id);
      },
      namespace,
    );
  }

  seal(id: string, namespace: string, check?: WorkflowCheck): Promise<WorkflowResponse> {
    return this.change(id, namespace, seal, check);
  }

  cancel(id: string, namespace: string, check?: WorkflowCheck): Promise<WorkflowResponse> {
    return this.change(id, namespace, cancelWorkflow, check);
  }

  pause(id: string, namespace: string, check?: WorkflowCheck): Promise<WorkflowResponse> {
    return this.change(id, namespace, pause, check);
  }

  resume(id: string, namespace: string, check?: WorkflowCheck): Promise<WorkflowResponse> {
    return this.change(id, namespace, resume, check);
  }

  /** Runs `op` under the workflow's lock, after `check` (the caller's grants: see workflowCheckFor). */
  private async change(
    id: string,
    namespace: string,
    op: (uow: UnitOfWork, wf: WorkflowEntity) => Promise<void>,
    check?: WorkflowCheck,
  ): Promise<WorkflowResponse> {
    await this.engine.inWorkflow(
      id,
      async (uow, wf) => {
        await check?.(uow.repos, wf);
        await op(uow, wf);
      },
      namespace,
    );
    return this.view(id, namespace);
  }
}

/** The row of a new workflow as `POST /v1/workflows` (or a schedule's tick) asks for it. */
export function newWorkflowRow(
  dto: CreateWorkflowDto,
  createdBy: CreatedBy | null,
  namespace: string,
  now: number,
): WorkflowEntity {
  return {
    id: newId(now),
    name: dto.name,
    namespace,
    description: dto.description ?? null,
    tags: canonicalTags(dto.tags ?? []),
    input: dto.input ?? {},
    state: 'RUNNING',
    sealed: dto.sealed ?? false,
    on_failure: dto.on_failure ?? 'fail',
    retention_days: dto.retention_days ?? null,
    limits: dto.limits ?? {},
    callback: dto.callback
      ? { url: dto.callback.url, ...(dto.callback.secret ? { secret: dto.callback.secret } : {}) }
      : null,
    rollback_started: false,
    settle_pending: false,
    settle_after: '',
    created_by: createdBy,
    created_at: now,
    updated_at: now,
    finished_at: null,
  };
}
