import { Body, Controller, Get, Param, Put, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { DataWaitQuery, PutDataDto } from './data.dto.js';
import { DataService } from './data.service.js';
import { LongWait, whenWaitAsked } from '../long-wait/wait-limit.interceptor.js';
import { Allow, AllowLeaseToken, CallerOf, OPERATORS, READERS, type Caller } from '../auth/access.js';
import { AccessEnds } from '../auth/live-access.js';
import { workflowCheckFor } from '../auth/grants.js';

const id = idParam('workflow');

@ApiTags('data space')
@Controller('v1/workflows/:id/data')
export class DataController {
  constructor(private readonly data: DataService) {}

  /** The keys written in the workflow's data space. */
  @Get()
  @Allow(READERS)
  @AllowLeaseToken()
  list(@Param('id', id) workflowId: string, @CallerOf() caller: Caller) {
    return this.data.list(workflowId, caller.namespace);
  }

  /** Blocking read: waits up to `wait_s` for the key; 404 `{"pending": true}` when the wait ends first. */
  @Get(':key')
  @Allow(READERS)
  @AllowLeaseToken()
  @LongWait(whenWaitAsked)
  get(
    @Param('id', id) workflowId: string,
    @Param('key') key: string,
    @Query() q: DataWaitQuery,
    @CallerOf() caller: Caller,
    @AccessEnds() ends: AbortSignal,
  ) {
    return this.data.get(workflowId, key, q.wait_s, caller.namespace, ends);
  }

  /** Writes a key (never blocks); wakes readers waiting for it and tasks held on `{{ data.KEY }}`. */
  @Put(':key')
  @Allow(OPERATORS)
  @AllowLeaseToken()
  put(
    @Param('id', id) workflowId: string,
    @Param('key') key: string,
    @Body() dto: PutDataDto,
    @CallerOf() caller: Caller,
  ) {
    // A lease (checked by the guard: live, of a running task of this workflow) writes only what its task produces.
    const holder = caller.kind === 'lease' ? caller.task : null;
    if (holder) this.data.checkProduces(holder, key);
    return this.data.put(
      workflowId,
      key,
      dto.value,
      holder?.id ?? null,
      caller.namespace,
      workflowCheckFor(caller, 'write the data space of'),
    );
  }
}
