import { Body, Controller, Get, Param, Put, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { DataWaitQuery, PutDataDto } from './data.dto.js';
import { DataService } from './data.service.js';
import { LongWait, whenWaitAsked } from '../long-wait/wait-limit.interceptor.js';
import { Allow, AllowLeaseToken, CallerOf, OPERATORS, READERS, type Caller } from '../auth/access.js';

const id = idParam('workflow');

@ApiTags('data space')
@Controller('v1/workflows/:id/data')
export class DataController {
  constructor(private readonly data: DataService) {}

  /** The keys written in the workflow's data space. */
  @Get() @Allow(READERS) @AllowLeaseToken()
  async list(@Param('id', id) workflowId: string, @CallerOf() caller: Caller) {
    await this.leaseHolder(workflowId, caller);
    return this.data.list(workflowId, caller.namespace!);
  }

  /** Blocking read: waits up to `wait_s` for the key; 404 `{"pending": true}` when the wait ends first. */
  @Get(':key') @Allow(READERS) @AllowLeaseToken() @LongWait(whenWaitAsked)
  async get(@Param('id', id) workflowId: string, @Param('key') key: string, @Query() q: DataWaitQuery, @CallerOf() caller: Caller) {
    await this.leaseHolder(workflowId, caller);
    return this.data.get(workflowId, key, q.wait_s, caller.namespace!);
  }

  /** Writes a key (never blocks); wakes readers waiting for it and tasks held on `{{ data.KEY }}`. */
  @Put(':key') @Allow(OPERATORS) @AllowLeaseToken()
  async put(@Param('id', id) workflowId: string, @Param('key') key: string, @Body() dto: PutDataDto, @CallerOf() caller: Caller) {
    const holder = await this.leaseHolder(workflowId, caller);
    if (holder) this.data.checkProduces(holder, key);
    return this.data.put(workflowId, key, dto.value, holder?.id ?? null, caller.namespace!);
  }

  /**
   * A live lease's token opens its own workflow's data space: the task holding it (the
   * lease then acts in that task's namespace), or null for a key.
   */
  private async leaseHolder(workflowId: string, caller: Caller): Promise<{ id: string; name: string; produces: string[] } | null> {
    if (caller.kind !== 'lease') return null;
    try {
      const holder = await this.data.leaseHolder(workflowId, caller.token);
      caller.namespace = holder.namespace;
      return holder;
    } catch (e) {
      // The refusal is recorded in the audit log under the workflow's namespace, not another's.
      caller.namespace = (await this.data.namespaceOf(workflowId)) ?? '-';
      throw e;
    }
  }
}
