import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { LIMITS } from '@tagflow/domain';
import { idParam } from '../common/params.js';
import { LeaseService } from '../dispatch/lease.service.js';
import { PollService } from '../dispatch/poll.service.js';
import { WorkersService } from '../workers/workers.service.js';
import { CompleteDto, FailDto, HeartbeatDto, PollDto, ShortcutTaskDto, TaskPatchDto, TaskWaitQuery } from './task.dto.js';
import { toTaskResponse } from './task.mapper.js';
import { TasksService } from './tasks.service.js';

const id = idParam('task');

@ApiTags('tasks')
@Controller('v1/tasks')
export class TasksController {
  constructor(
    private readonly tasks: TasksService,
    private readonly leases: LeaseService,
    private readonly polls: PollService,
    private readonly workers: WorkersService,
  ) {}

  /** The single-task shortcut: a sealed one-task workflow. */
  @Post()
  async shortcut(@Body() dto: ShortcutTaskDto) {
    return toTaskResponse(await this.tasks.shortcut(dto));
  }

  /**
   * Long-poll for READY tasks whose tags include every tag named; each comes with a lease.
   * An empty list when the wait ends first.
   */
  @ApiTags('worker protocol')
  @Post('poll') @HttpCode(200)
  async poll(@Body() dto: PollDto) {
    const workerId = dto.worker_id ?? null;
    if (workerId) await this.workers.touch(workerId);
    const taken = await this.polls.poll({
      tags: dto.tags,
      workerId,
      waitMs: (dto.wait_s ?? LIMITS.pollWaitDefaultSeconds) * 1000,
      maxTasks: dto.max_tasks ?? 1,
    });
    return {
      tasks: taken.map(({ task, lease }) => ({
        ...toTaskResponse(task),
        lease: { token: lease.token, expires_at: new Date(lease.expires_at).toISOString() },
      })),
    };
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

  /** Extends the lease; answers whether a cancel was requested. */
  @ApiTags('worker protocol')
  @Post(':id/heartbeat') @HttpCode(200)
  async heartbeat(@Param('id', id) taskId: string, @Body() dto: HeartbeatDto) {
    const r = await this.leases.heartbeat(taskId, dto);
    return { expires_at: new Date(r.expires_at).toISOString(), cancel_requested: r.cancel_requested };
  }

  /**
   * Reports success with the current lease token. A stale token gets 409 and changes
   * nothing; the same report sent twice is answered the same way twice.
   */
  @ApiTags('worker protocol')
  @Post(':id/complete') @HttpCode(200)
  async complete(@Param('id', id) taskId: string, @Body() dto: CompleteDto) {
    return toTaskResponse(await this.leases.complete(taskId, dto));
  }

  /** Reports failure with the current lease token; retried by the task's policy, then on_error. */
  @ApiTags('worker protocol')
  @Post(':id/fail') @HttpCode(200)
  async fail(@Param('id', id) taskId: string, @Body() dto: FailDto) {
    return toTaskResponse(await this.leases.fail(taskId, dto));
  }
}
