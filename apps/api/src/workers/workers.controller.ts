import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { Idempotent } from '../common/idempotency.interceptor.js';
import { ApiTags } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { PageQuery } from '../common/pagination.js';
import { RegisterWorkerDto, WorkerHeartbeatDto, type LeaseBeatDto } from './worker.dto.js';
import { LeaseService } from '../worker-protocol/lease.service.js';
import { itemRefusal } from '../common/errors.js';
import { WorkersService } from './workers.service.js';
import { Allow, CallerOf, NamespaceOf, READERS, WORKERS, type Caller } from '../auth/access.js';

@ApiTags('worker protocol')
@Controller('v1/workers')
export class WorkersController {
  constructor(
    private readonly workers: WorkersService,
    private readonly leases: LeaseService,
  ) {}

  /** Registers a worker; polls that pass its id keep its last_seen_at and running tasks current. */
  @Post()
  @Idempotent()
  @Allow(WORKERS)
  register(@Body() dto: RegisterWorkerDto, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    return this.workers.register(dto, ns, caller.kind === 'key' ? caller.keyId : null);
  }

  /**
   * Extends every lease the worker holds, in one request. Each lease is judged alone, in
   * order: `status` 200 with `expires_at` and `cancel_requested`, or 404 / 409 with the
   * reason (the task moved on: stop it, do not report it). The worker must be this key's
   * (404 otherwise) and not stopping (409).
   */
  @Post(':id/heartbeat')
  @HttpCode(200)
  @Allow(WORKERS)
  async heartbeat(
    @Param('id', idParam('worker')) id: string,
    @Body() dto: WorkerHeartbeatDto,
    @NamespaceOf() ns: string,
    @CallerOf() caller: Caller,
  ) {
    await this.workers.touch(id, ns, caller.kind === 'key' ? caller.keyId : null);
    return { leases: await Promise.all(dto.leases.map((l) => this.beat(l, ns))) };
  }

  private async beat(l: LeaseBeatDto, ns: string) {
    try {
      const r = await this.leases.heartbeat(l.task_id, { lease_token: l.lease_token, progress: l.progress }, ns);
      return {
        task_id: l.task_id,
        status: 200,
        expires_at: new Date(r.expires_at).toISOString(),
        cancel_requested: r.cancel_requested,
      };
    } catch (e) {
      return { task_id: l.task_id, ...itemRefusal(e) };
    }
  }

  /** Workers, newest first, with the tasks each is running; cursor-paginated. */
  @Get()
  @Allow(READERS)
  list(@Query() q: PageQuery, @NamespaceOf() ns: string) {
    return this.workers.list(q, ns);
  }

  /** One worker. */
  @Get(':id')
  @Allow(READERS)
  get(@Param('id', idParam('worker')) id: string, @NamespaceOf() ns: string) {
    return this.workers.get(id, ns);
  }
}
