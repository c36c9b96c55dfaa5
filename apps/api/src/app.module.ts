import { Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { createDataSource, Database } from '@tagflow/persistence';
import { TaskQueue } from '@tagflow/queue';
import { LIMITS } from '@tagflow/domain';
import { AppConfig } from './config/app-config.js';
import { JsonLogger } from './common/logger.js';
import { LeaseService } from './dispatch/lease.service.js';
import { PollService } from './dispatch/poll.service.js';
import { QueueService, TASK_QUEUE } from './dispatch/queue.service.js';
import { ReconcilerService } from './dispatch/reconciler.service.js';
import { Waiters } from './dispatch/waiters.js';
import { Engine } from './engine/engine.service.js';
import { ReferenceResolver } from './engine/reference-resolver.js';
import { Transitions } from './engine/transitions.js';
import { DataController } from './data-space/data.controller.js';
import { DataService } from './data-space/data.service.js';
import { HealthController } from './health/health.controller.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { MetricsService } from './metrics/metrics.service.js';
import { TasksController } from './tasks/tasks.controller.js';
import { TasksService } from './tasks/tasks.service.js';
import { WorkersController } from './workers/workers.controller.js';
import { WorkersService } from './workers/workers.service.js';
import { WorkflowsController } from './workflows/workflows.controller.js';
import { WorkflowsService } from './workflows/workflows.service.js';

/**
 * One module: the API is small enough that splitting it into Nest modules would add
 * wiring without adding boundaries. The folders are the rooms.
 */
@Module({})
export class AppModule implements OnApplicationShutdown {
  constructor(private readonly db: Database) {}

  static forRoot(config: AppConfig, logger: JsonLogger): DynamicModule {
    return {
      module: AppModule,
      controllers: [WorkflowsController, TasksController, WorkersController, DataController, HealthController, MetricsController],
      providers: [
        { provide: AppConfig, useValue: config },
        { provide: JsonLogger, useValue: logger },
        {
          provide: Database,
          useFactory: async () => {
            const db = new Database(createDataSource(config.DATABASE_URL));
            await db.initialize();
            return db;
          },
        },
        {
          provide: TASK_QUEUE,
          useFactory: async () => {
            const queue = new TaskQueue({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX, defaultLockMs: LIMITS.defaultLeaseSeconds * 1000 });
            await queue.start();
            return queue;
          },
        },
        MetricsService, QueueService, Transitions, Engine, ReferenceResolver, LeaseService, PollService, Waiters, ReconcilerService,
        WorkflowsService, TasksService, WorkersService, DataService,
      ],
    };
  }

  /** Module hooks run after the providers' (the reconciler has stopped by now). */
  async onApplicationShutdown(): Promise<void> {
    await this.db.close();
  }
}
