import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { idParam } from '../common/params.js';
import { validateBody } from '../common/validation.js';
import { TaskBatchDto, TaskListQuery, TaskSpecDto } from '../tasks/task.dto.js';
import { toTaskResponse } from '../tasks/task.mapper.js';
import { TasksService } from '../tasks/tasks.service.js';
import { CreateWorkflowDto, WorkflowListQuery } from './workflow.dto.js';
import { WorkflowsService } from './workflows.service.js';

const id = idParam('workflow');

@Controller('v1/workflows')
export class WorkflowsController {
  constructor(
    private readonly workflows: WorkflowsService,
    private readonly tasks: TasksService,
  ) {}

  @Post()
  async create(@Body() dto: CreateWorkflowDto) {
    const wf = await this.workflows.create(dto);
    return this.workflows.view(wf.id);
  }

  @Get()
  list(@Query() q: WorkflowListQuery) {
    return this.workflows.list(q);
  }

  @Get(':id')
  get(@Param('id', id) wfId: string) {
    return this.workflows.view(wfId);
  }

  @Delete(':id')
  @HttpCode(204)
  async remove(@Param('id', id) wfId: string): Promise<void> {
    await this.workflows.remove(wfId);
  }

  @Post(':id/seal') @HttpCode(200)
  seal(@Param('id', id) wfId: string) {
    return this.workflows.seal(wfId);
  }

  @Post(':id/cancel') @HttpCode(200)
  cancel(@Param('id', id) wfId: string) {
    return this.workflows.cancel(wfId);
  }

  @Post(':id/pause') @HttpCode(200)
  pause(@Param('id', id) wfId: string) {
    return this.workflows.pause(wfId);
  }

  @Post(':id/resume') @HttpCode(200)
  resume(@Param('id', id) wfId: string) {
    return this.workflows.resume(wfId);
  }

  /** One TaskSpec, or `{"tasks": [TaskSpec, ...]}` added atomically. */
  @Post(':id/tasks')
  async addTasks(@Param('id', id) wfId: string, @Body() body: unknown) {
    const isBatch = typeof body === 'object' && body !== null && 'tasks' in body;
    if (isBatch) {
      const dto = await validateBody(TaskBatchDto, body);
      const created = await this.tasks.add(wfId, dto.tasks);
      return { tasks: created.map(toTaskResponse) };
    }
    const dto = await validateBody(TaskSpecDto, body);
    const [created] = await this.tasks.add(wfId, [dto]);
    return toTaskResponse(created);
  }

  @Get(':id/tasks')
  listTasks(@Param('id', id) wfId: string, @Query() q: TaskListQuery) {
    return this.tasks.list(wfId, q);
  }

  @Get(':id/tasks/:task')
  async getTask(@Param('id', id) wfId: string, @Param('task') idOrName: string) {
    return toTaskResponse(await this.tasks.getInWorkflow(wfId, idOrName));
  }
}
