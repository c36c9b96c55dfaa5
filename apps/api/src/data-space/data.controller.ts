import { Body, Controller, Get, Param, Put, Query, Req } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { leaseTokenOf } from '../common/auth.middleware.js';
import { idParam } from '../common/params.js';
import { DataWaitQuery, PutDataDto } from './data.dto.js';
import { DataService } from './data.service.js';

const id = idParam('workflow');

@ApiTags('data space')
@Controller('v1/workflows/:id/data')
export class DataController {
  constructor(private readonly data: DataService) {}

  /** The keys written in the workflow's data space. */
  @Get()
  async list(@Param('id', id) workflowId: string, @Req() req: Request) {
    await this.authorize(workflowId, req);
    return this.data.list(workflowId);
  }

  /** Blocking read: waits up to `wait_s` for the key; 404 `{"pending": true}` when the wait ends first. */
  @Get(':key')
  async get(@Param('id', id) workflowId: string, @Param('key') key: string, @Query() q: DataWaitQuery, @Req() req: Request) {
    await this.authorize(workflowId, req);
    return this.data.get(workflowId, key, q.wait_s);
  }

  /** Writes a key (never blocks); wakes readers waiting for it and tasks held on `{{ data.KEY }}`. */
  @Put(':key')
  async put(@Param('id', id) workflowId: string, @Param('key') key: string, @Body() dto: PutDataDto, @Req() req: Request) {
    const taskId = await this.authorize(workflowId, req);
    return this.data.put(workflowId, key, dto.value, taskId);
  }

  /** A running task's lease token may use its own workflow's data space; returns that task's id. */
  private async authorize(workflowId: string, req: Request): Promise<string | null> {
    const token = leaseTokenOf(req);
    return token ? this.data.leaseHolder(workflowId, token) : null;
  }
}
