import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { Idempotent } from '../common/idempotency.interceptor.js';
import { ApiTags } from '@nestjs/swagger';
import { idParam } from '../common/params.js';
import { PageQuery } from '../common/pagination.js';
import { RegisterWorkerDto } from './worker.dto.js';
import { WorkersService } from './workers.service.js';
import { Allow, CallerOf, NamespaceOf, READERS, WORKERS, type Caller } from '../auth/access.js';

@ApiTags('worker protocol')
@Controller('v1/workers')
export class WorkersController {
  constructor(private readonly workers: WorkersService) {}

  /** Registers a worker; polls that pass its id keep its last_seen_at and running tasks current. */
  @Post() @Idempotent() @Allow(WORKERS)
  register(@Body() dto: RegisterWorkerDto, @NamespaceOf() ns: string, @CallerOf() caller: Caller) {
    return this.workers.register(dto, ns, caller.kind === 'key' ? caller.keyId : null);
  }

  /** Workers, newest first, with the tasks each is running; cursor-paginated. */
  @Get() @Allow(READERS)
  list(@Query() q: PageQuery, @NamespaceOf() ns: string) {
    return this.workers.list(q, ns);
  }

  /** One worker. */
  @Get(':id') @Allow(READERS)
  get(@Param('id', idParam('worker')) id: string, @NamespaceOf() ns: string) {
    return this.workers.get(id, ns);
  }
}
