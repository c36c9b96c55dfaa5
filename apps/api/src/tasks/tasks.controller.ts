import { ChecksCallbacks } from '../callbacks/callback-targets.interceptor.js';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { Idempotent } from '../common/idempotency.interceptor.js';
import { ApiTags } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { ShortcutTaskDto, TaskPatchDto, TaskWaitQuery } from './task.dto.js';
import { toTaskResponse } from './task.mapper.js';
import { TasksService } from './tasks.service.js';
import { LongWait, whenWaitAsked } from '../long-wait/wait-limit.interceptor.js';
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
import { checkSubmitGrants, checkTaskGrants, workflowCheckFor } from '../auth/grants.js';
import { AccessEnds } from '../auth/live-access.js';

const id = idParam('task');

@ApiTags('tasks')
@Controller('v1/tasks')
export class TasksController {
  constructor(private readonly tasks: TasksService) {}

  /** The single-task shortcut: a sealed one-task workflow. */
  @Post()
  @Idempotent()
  @Allow(OPERATORS)
  @ChecksCallbacks()
  async shortcut(@Body() dto: ShortcutTaskDto, @CallerOf() caller: Caller) {
    checkSubmitGrants(caller, [dto]);
    return toTaskResponse(await this.tasks.shortcut(dto, createdByOf(caller), namespaceOf(caller)));
  }

  /** A task; with `wait_s`, waits until it is finished (or the wait ends) before answering. */
  @Get(':id')
  @Allow(READERS)
  @LongWait(whenWaitAsked)
  async get(
    @Param('id', id) taskId: string,
    @Query() q: TaskWaitQuery,
    @NamespaceOf() ns: string,
    @AccessEnds() ends: AbortSignal,
  ) {
    return toTaskResponse(await this.tasks.getWhenFinished(taskId, q.wait_s, ns, ends));
  }

  /** Every state transition of the task, oldest first. */
  @Get(':id/events')
  @Allow(READERS)
  events(@Param('id', id) taskId: string, @NamespaceOf() ns: string) {
    return this.tasks.events(taskId, ns);
  }

  /** Changes a task that has not run yet. */
  @Patch(':id')
  @Allow(OPERATORS)
  @ChecksCallbacks()
  async patch(@Param('id', id) taskId: string, @Body() dto: TaskPatchDto, @CallerOf() caller: Caller) {
    // The task as it is must be the caller's to change, and as it will be (tags and handlers kept) its to submit.
    const ns = namespaceOf(caller);
    const current = await this.tasks.get(taskId, ns);
    checkTaskGrants(caller, current);
    checkSubmitGrants(caller, [
      { name: current.name, tags: dto.tags ?? current.tags, on_error: dto.on_error ?? current.on_error },
    ]);
    // What it writes to the data space, and its handlers (which may run on other tags), are
    // the workflow's business: changing them needs grants covering the whole workflow.
    const workflowWide = dto.produces !== undefined || dto.on_error !== undefined;
    const check = workflowWide
      ? workflowCheckFor(caller, 'change what a task writes or runs on failure in')
      : undefined;
    return toTaskResponse(await this.tasks.patch(taskId, dto, ns, check));
  }

  /** Removes a task that has not run yet; 409 if another task requires it by name. */
  @Delete(':id')
  @HttpCode(204)
  @Allow(OPERATORS)
  async remove(@Param('id', id) taskId: string, @CallerOf() caller: Caller): Promise<void> {
    const ns = namespaceOf(caller);
    checkTaskGrants(caller, await this.tasks.get(taskId, ns));
    await this.tasks.remove(taskId, ns);
  }

  /** Cancels the task; a running one is told so on its next heartbeat. */
  @Post(':id/cancel')
  @HttpCode(200)
  @Allow(OPERATORS)
  async cancel(@Param('id', id) taskId: string, @CallerOf() caller: Caller) {
    const ns = namespaceOf(caller);
    checkTaskGrants(caller, await this.tasks.get(taskId, ns));
    return toTaskResponse(await this.tasks.cancel(taskId, ns));
  }

  /**
   * Runs an ERROR task of an unfinished workflow again. A DEADLOCK task (its dependencies
   * could not be met) waits again and is evaluated: it runs once they are, or fails again.
   */
  @Post(':id/rerun')
  @HttpCode(200)
  @Allow(OPERATORS)
  async rerun(@Param('id', id) taskId: string, @CallerOf() caller: Caller) {
    const ns = namespaceOf(caller);
    checkTaskGrants(caller, await this.tasks.get(taskId, ns));
    return toTaskResponse(await this.tasks.rerun(taskId, ns, workflowCheckFor(caller, 'rerun a task of')));
  }
}
