import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { ApiResponse, ApiTags, type SchemaObject } from '@nestjs/swagger';

/** What /health answers, healthy or not. */
const HEALTH: SchemaObject = {
  type: 'object',
  required: ['status', 'database', 'redis'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    database: { type: 'string', description: '`ok`, or `error: ` and why' },
    redis: { type: 'string', description: '`ok`, or `error: ` and why' },
  },
};
import type { HttpReply } from '../common/http.js';
import { Database } from '@tagflow/persistence';
import { RedisConnections } from '@tagflow/queue';
import { Public } from '../auth/access.js';

@ApiTags('operations')
@Controller()
export class HealthController {
  constructor(
    private readonly db: Database,
    private readonly redis: RedisConnections,
  ) {}

  /** 200 when the database answers and Redis takes writes, else 503 naming the one that does not. */
  @Get('health')
  @Public()
  @ApiResponse({ status: 200, description: 'The database answers and Redis takes writes.', schema: HEALTH })
  @ApiResponse({ status: 503, description: 'One of them does not (named).', schema: HEALTH })
  async health(@Res() res: HttpReply): Promise<void> {
    const check = async (fn: () => Promise<void>) => {
      try {
        await withTimeout(fn(), 2000);
        return 'ok';
      } catch (e) {
        return `error: ${e instanceof Error ? e.message : String(e)}`;
      }
    };
    // Redis must take writes: a demoted master answers PING but refuses every enqueue.
    const [database, redis] = await Promise.all([check(() => this.db.ping()), check(() => this.redis.probeWrite())]);
    const ok = database === 'ok' && redis === 'ok';
    await res
      .status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE)
      .send({ status: ok ? 'ok' : 'unavailable', database, redis });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(resolve, reject).finally(() => clearTimeout(t));
  });
}
