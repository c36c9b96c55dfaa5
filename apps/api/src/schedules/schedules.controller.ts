import { ChecksCallbacks } from '../callbacks/callback-targets.interceptor.js';
import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
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
import { checkSubmitGrants } from '../auth/grants.js';
import { Idempotent } from '../common/idempotency.interceptor.js';
import { PageQuery } from '../common/pagination.js';
import { idParam } from '../common/params.js';
import { WorkflowsService } from '../workflows/workflows.service.js';
import { CreateScheduleDto } from './schedule.dto.js';
import { SchedulesService } from './schedules.service.js';

const id = idParam('schedule');

@ApiTags('flow control')
@Controller('v1/schedules')
export class SchedulesController {
  constructor(
    private readonly schedules: SchedulesService,
    private readonly workflows: WorkflowsService,
  ) {}

  /**
   * Creates a schedule: its workflow is created on each tick of `cron` in `timezone`. An
   * operator's key must be granted the tags of its tasks, as for creating the workflow.
   */
  @Post()
  @Idempotent()
  @Allow(OPERATORS)
  @ChecksCallbacks()
  create(@Body() dto: CreateScheduleDto, @CallerOf() caller: Caller) {
    checkSubmitGrants(caller, dto.workflow.tasks ?? []);
    return this.schedules.create(dto, createdByOf(caller), namespaceOf(caller));
  }

  /** The namespace's schedules by name; cursor-paginated. */
  @Get()
  @Allow(READERS)
  list(@Query() q: PageQuery, @NamespaceOf() ns: string) {
    return this.schedules.list(ns, q.cursor, q.limit);
  }

  /** A schedule with its latest runs (tick, outcome, workflow). */
  @Get(':id')
  @Allow(READERS)
  get(@Param('id', id) scheduleId: string, @NamespaceOf() ns: string) {
    return this.schedules.view(scheduleId, ns);
  }

  /** Deletes a schedule; the workflows it created stay. */
  @Delete(':id')
  @HttpCode(204)
  @Allow(OPERATORS)
  async remove(
    @Param('id', id) scheduleId: string,
    @NamespaceOf() ns: string,
    @CallerOf() caller: Caller,
  ): Promise<void> {
    await this.granted(scheduleId, ns, caller);
    await this.schedules.remove(scheduleId, ns);
  }

  /** Stops its ticks until it is resumed (a trigger still runs it). */
  @Post(':id/pause')
  @HttpCode(200)
  @Allow(OPERATORS)
  async pause(@Param('id', id) scheduleId: string, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    await this.granted(scheduleId, ns, caller);
    return this.schedules.pause(scheduleId, ns);
  }

  /** Runs it again from its next tick, acting from now on with the resuming key (whose grants must cover its tasks). */
  @Post(':id/resume')
  @HttpCode(200)
  @Allow(OPERATORS)
  async resume(@Param('id', id) scheduleId: string, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    await this.granted(scheduleId, ns, caller);
    return this.schedules.resume(scheduleId, ns, createdByOf(caller));
  }

  /** Runs it once now (its cron ticks go on as before) → 201 with the workflow it created. */
  @Post(':id/trigger')
  @Idempotent()
  @Allow(OPERATORS)
  async trigger(@Param('id', id) scheduleId: string, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    await this.granted(scheduleId, ns, caller);
    return this.workflows.view(await this.schedules.trigger(scheduleId, ns, createdByOf(caller)), ns);
  }

  /** An operator acts on a schedule only when its key is granted the tags of the schedule's tasks. */
  private async granted(scheduleId: string, ns: string, caller: Caller): Promise<void> {
    const s = await this.schedules.find(scheduleId, ns);
    checkSubmitGrants(caller, (s.workflow as { tasks?: { name?: string; tags?: string[] }[] }).tasks ?? []);
  }
}
