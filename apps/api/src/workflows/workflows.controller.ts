import { ChecksCallbacks } from '../callbacks/callback-targets.interceptor.js';
import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { Idempotent } from '../common/idempotency.interceptor.js';
import { ApiBody, ApiExtraModels, ApiTags, getSchemaPath } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { validateBody } from '../common/validation.js';
import { TaskBatchDto, TaskListQuery, TaskSpecDto } from '../tasks/task.dto.js';
import { toTaskResponse } from '../tasks/task.mapper.js';
import { TasksService } from '../tasks/tasks.service.js';
import { CreateWorkflowDto, WorkflowListQuery } from './workflow.dto.js';
import { WorkflowsService } from './workflows.service.js';
import {
  Allow,
  CallerOf,
  createdByOf,
  NamespaceOf,
  namespaceOf,
  OPERATORS,
  READERS,
  type Caller,
} from '../auth/access.js';
import { checkSubmitGrants, workflowCheckFor } from '../auth/grants.js';

const id = idParam('workflow');

@ApiTags('workflows')
@Controller('v1/workflows')
export class WorkflowsController {
  constructor(
    private readonly workflows: WorkflowsService,
    private readonly tasks: TasksService,
  ) {}

  /** Creates a workflow, with its first tasks if given; sealed unless `sealed: false`. */
  @Post()
  @Idempotent()
  @Allow(OPERATORS)
  @ChecksCallbacks()
  async create(@Body() dto: CreateWorkflowDto, @CallerOf() caller: Caller) {
    checkSubmitGrants(caller, dto.tasks ?? []);
    const ns = namespaceOf(caller);
    const wf = await this.workflows.create(dto, createdByOf(caller), ns);
    return this.workflows.view(wf.id, ns);
  }

  /** Workflows, newest first, filtered by state, tag or name; cursor-paginated. */
  @Get()
  @Allow(READERS)
  list(@Query() q: WorkflowListQuery, @NamespaceOf() ns: string) {
    return this.workflows.list(q, ns);
  }

  /** A workflow with its task counts by state. */
  @Get(':id')
  @Allow(READERS)
  get(@Param('id', id) wfId: string, @NamespaceOf() ns: string) {
    return this.workflows.view(wfId, ns);
  }

  /** Deletes a finished workflow with its tasks and data; 409 while it runs. */
  @Delete(':id')
  @Allow(OPERATORS)
  @HttpCode(204)
  async remove(@Param('id', id) wfId: string, @CallerOf() caller: Caller): Promise<void> {
    await this.workflows.remove(wfId, namespaceOf(caller), workflowCheckFor(caller, 'delete'));
  }

  /** No more tasks will be added: the workflow can finish once its tasks have. */
  @Post(':id/seal')
  @HttpCode(200)
  @Allow(OPERATORS)
  seal(@Param('id', id) wfId: string, @CallerOf() caller: Caller) {
    return this.workflows.seal(wfId, namespaceOf(caller), workflowCheckFor(caller, 'seal'));
  }

  /** Cancels every unfinished task of the workflow. */
  @Post(':id/cancel')
  @HttpCode(200)
  @Allow(OPERATORS)
  cancel(@Param('id', id) wfId: string, @CallerOf() caller: Caller) {
    return this.workflows.cancel(wfId, namespaceOf(caller), workflowCheckFor(caller, 'cancel'));
  }

  /** Stops handing out the workflow's tasks; running ones finish. */
  @Post(':id/pause')
  @HttpCode(200)
  @Allow(OPERATORS)
  pause(@Param('id', id) wfId: string, @CallerOf() caller: Caller) {
    return this.workflows.pause(wfId, namespaceOf(caller), workflowCheckFor(caller, 'pause'));
  }

  /** Hands out the workflow's tasks again. */
  @Post(':id/resume')
  @HttpCode(200)
  @Allow(OPERATORS)
  resume(@Param('id', id) wfId: string, @CallerOf() caller: Caller) {
    return this.workflows.resume(wfId, namespaceOf(caller), workflowCheckFor(caller, 'resume'));
  }

  /** One TaskSpec, or `{"tasks": [TaskSpec, ...]}` added atomically. */
  @ApiExtraModels(TaskSpecDto, TaskBatchDto)
  @ApiBody({ schema: { oneOf: [{ $ref: getSchemaPath(TaskSpecDto) }, { $ref: getSchemaPath(TaskBatchDto) }] } })
  @Post(':id/tasks')
  @Idempotent()
  @Allow(OPERATORS)
  @ChecksCallbacks()
  async addTasks(@Param('id', id) wfId: string, @Body() body: unknown, @CallerOf() caller: Caller) {
    const isBatch = typeof body === 'object' && body !== null && 'tasks' in body;
    if (isBatch) {
      const dto = await validateBody(TaskBatchDto, body);
      checkSubmitGrants(caller, dto.tasks);
      const created = await this.tasks.add(
        wfId,
        dto.tasks,
        createdByOf(caller),
        namespaceOf(caller),
        workflowCheckFor(caller, 'add tasks to'),
      );
      return { tasks: created.map(toTaskResponse) };
    }
    const dto = await validateBody(TaskSpecDto, body);
    checkSubmitGrants(caller, [dto]);
    const [created] = await this.tasks.add(
      wfId,
      [dto],
      createdByOf(caller),
      namespaceOf(caller),
      workflowCheckFor(caller, 'add tasks to'),
    );
    return toTaskResponse(created);
  }

  /** The workflow's tasks, filtered by state or tag; cursor-paginated. */
  @Get(':id/tasks')
  @Allow(READERS)
  listTasks(@Param('id', id) wfId: string, @Query() q: TaskListQuery, @NamespaceOf() ns: string) {
    return this.tasks.list(wfId, q, ns);
  }

  /** One task of the workflow, by id or by name. */
  @Get(':id/tasks/:task')
  @Allow(READERS)
  async getTask(@Param('id', id) wfId: string, @Param('task') idOrName: string, @NamespaceOf() ns: string) {
    return toTaskResponse(await this.tasks.getInWorkflow(wfId, idOrName, ns));
  }
}
