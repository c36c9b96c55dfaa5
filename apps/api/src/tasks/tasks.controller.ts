import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { ShortcutTaskDto, TaskPatchDto, TaskWaitQuery } from './task.dto.js';
import { toTaskResponse } from './task.mapper.js';
import { TasksService } from './tasks.service.js';

const id = idParam('task');

@ApiTags('tasks')
@Controller('v1/tasks')
export class TasksController {
  constructor(private readonly tasks: TasksService) {}

  /** The single-task shortcut: a sealed one-task workflow. */
  @Post()
  async shortcut(@Body() dto: ShortcutTaskDto) {
    return toTaskResponse(await this.tasks.shortcut(dto));
  }

  /** A task; with `wait_s`, waits until it is finished (or the wait ends) before answering. */
  @Get(':id')
  async get(@Param('id', id) taskId: string, @Query() q: TaskWaitQuery) {
    return toTaskResponse(await this.tasks.getWhenFinished(taskId, q.wait_s));
  }

  /** Every state transition of the task, oldest first. */
  @Get(':id/events')
  events(@Param('id', id) taskId: string) {
    return this.tasks.events(taskId);
  }

  /** Changes a task that has not run yet. */
  @Patch(':id')
  async patch(@Param('id', id) taskId: string, @Body() dto: TaskPatchDto) {
    return toTaskResponse(await this.tasks.patch(taskId, dto));
  }

  /** Removes a task that has not run yet; 409 if another task requires it by name. */
  @Delete(':id') @HttpCode(204)
  async remove(@Param('id', id) taskId: string): Promise<void> {
    await this.tasks.remove(taskId);
  }

  /** Cancels the task; a running one is told so on its next heartbeat. */
  @Post(':id/cancel') @HttpCode(200)
  async cancel(@Param('id', id) taskId: string) {
    return toTaskResponse(await this.tasks.cancel(taskId));
  }

  /** Runs an ERROR task of an unfinished workflow again. */
  @Post(':id/rerun') @HttpCode(200)
  async rerun(@Param('id', id) taskId: string) {
    return toTaskResponse(await this.tasks.rerun(taskId));
  }
}
