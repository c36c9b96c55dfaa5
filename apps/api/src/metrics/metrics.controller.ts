import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { MetricsService } from './metrics.service.js';
import { Public } from '../auth/access.js';

@ApiTags('operations')
@Controller()
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  /** Prometheus text format. */
  @Get('metrics')
  @Public()
  @Header('content-type', 'text/plain; version=0.0.4')
  @ApiOkResponse({
    description: 'Counters and gauges of this replica.',
    content: { 'text/plain; version=0.0.4': { schema: { type: 'string' } } },
  })
  render(): string {
    return this.metrics.render();
  }
}
