import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { idParam } from '../common/params.js';
import { PageQuery } from '../common/pagination.js';
import { RegisterWorkerDto } from './worker.dto.js';
import { WorkersService } from './workers.service.js';

@Controller('v1/workers')
export class WorkersController {
  constructor(private readonly workers: WorkersService) {}

  @Post()
  register(@Body() dto: RegisterWorkerDto) {
    return this.workers.register(dto);
  }

  @Get()
  list(@Query() q: PageQuery) {
    return this.workers.list(q);
  }

  @Get(':id')
  get(@Param('id', idParam('worker')) id: string) {
    return this.workers.get(id);
  }
}
