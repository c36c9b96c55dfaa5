import { Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { createDataSource, Database } from '@tagflow/persistence';
import { Bus, JobQueue, RedisConnections, RedisEpoch, SharedLimits, TagsetRegistry } from '@tagflow/queue';
import { LIMITS } from '@tagflow/domain';
import { AppConfig, redisTarget } from './config/app-config.js';
import { JsonLogger } from './common/logger.js';
import { uiBuilt, uiModule } from './common/ui.js';
import { AuditController } from './auth/audit.controller.js';
import { AuditInterceptor } from './auth/audit.interceptor.js';
import { RateLimiter } from './auth/rate-limiter.js';
import { IdempotencyInterceptor } from './common/idempotency.interceptor.js';
import { AuthGuard } from './auth/auth.guard.js';
import { KeysController } from './auth/keys.controller.js';
import { KeysService } from './auth/keys.service.js';
import { LiveAccess } from './auth/live-access.js';
import { EffectsPublisher } from './dispatch/effects.publisher.js';
import { ReconcilerService } from './dispatch/reconciler.service.js';
import { SettleContinuation } from './dispatch/settle-continuation.js';
import { Engine } from './engine/engine.js';
import { ReferenceResolver } from './engine/reference-resolver.js';
import { EFFECTS_PORT, EngineSettings } from './engine/unit-of-work.js';
import { HAND_OFF_PORT } from './engine/hand-off.js';
import { ParkedPolls } from './dispatch/parked-polls.js';
import { DataController } from './data-space/data.controller.js';
import { DataService } from './data-space/data.service.js';
import { HealthController } from './health/health.controller.js';
import { WaitLimitInterceptor } from './long-wait/wait-limit.interceptor.js';
import { LongWaits } from './long-wait/long-waits.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { MetricsService } from './metrics/metrics.service.js';
import { TasksController } from './tasks/tasks.controller.js';
import { TasksService } from './tasks/tasks.service.js';
import { LeaseService } from './worker-protocol/lease.service.js';
import { PollService } from './worker-protocol/poll.service.js';
import { WorkerProtocolController } from './worker-protocol/worker-protocol.controller.js';
import { WorkersController } from './workers/workers.controller.js';
import { WorkersService } from './workers/workers.service.js';
import { WorkflowsController } from './workflows/workflows.controller.js';
import { WorkflowsService } from './workflows/workflows.service.js';

import { StreamsController } from './streams/streams.controller.js';
import { LimitsController } from './limits/limits.controller.js';
import { LimitsService } from './limits/limits.service.js';
import { SchedulesController } from './schedules/schedules.controller.js';
import { SchedulesService } from './schedules/schedules.service.js';
import { CallbacksController } from './callbacks/callbacks.controller.js';
import { CallbackDispatcher } from './callbacks/dispatcher.js';
import { CallbackTargetsInterceptor } from './callbacks/callback-targets.interceptor.js';
import { LogsService } from './streams/logs.service.js';
import { WorkflowEventsService } from './streams/workflow-events.service.js';
/**
 * One module: the API is small enough that splitting it into Nest modules would add
 * wiring without adding boundaries. The folders are the rooms.
 */
@Module({})
export class AppModule implements OnApplicationShutdown {
  constructor(
    private readonly db: Database,
    private readonly redis: RedisConnections,
    private readonly jobs: JobQueue,
    private readonly bus: Bus,
    private readonly limits: SharedLimits,
  ) {}

  static forRoot(config: AppConfig, logger: JsonLogger): DynamicModule {
    return {
      module: AppModule,
      imports: uiBuilt(config.UI_DIR) ? [uiModule(config.UI_DIR)] : [],
      controllers: [
        WorkflowsController,
        TasksController,
        WorkerProtocolController,
        WorkersController,
        DataController,
        KeysController,
        AuditController,
        HealthController,
        MetricsController,
        StreamsController,
        LimitsController,
        SchedulesController,
        CallbacksController,
      ],
      providers: [
        { provide: AppConfig, useValue: config },
        { provide: JsonLogger, useValue: logger },
        { provide: EngineSettings, useValue: { evaluationBudget: config.EVALUATION_BUDGET } },
        {
          provide: Database,
          useFactory: async () => {
            const source = createDataSource(config.DATABASE_URL, {
              preparedStatements: config.DATABASE_PREPARED_STATEMENTS === 'on',
            });
            const db = new Database(source, {
              checkpointsAside: { warn: (why) => logger.event('warn', 'database', why) },
              plannerStatistics: { warn: (why) => logger.event('warn', 'database', why) },
            });
            await db.initialize();
            return db;
          },
        },
        {
          provide: RedisConnections,
          useFactory: async () => {
            const redis = new RedisConnections({
              target: redisTarget(config),
              prefix: config.QUEUE_PREFIX,
              defaultLockMs: LIMITS.defaultLeaseSeconds * 1000,
            });
            await redis.start();
            return redis;
          },
        },
        {
          provide: TagsetRegistry,
          inject: [RedisConnections],
          useFactory: (redis: RedisConnections) => new TagsetRegistry(redis),
        },
        {
          provide: Bus,
          inject: [RedisConnections, TagsetRegistry],
          useFactory: async (redis: RedisConnections, registry: TagsetRegistry) => {
            const bus = new Bus(redis);
            // Work announced on a tag set means some replica has recorded it.
            bus.onEvent((e) => e.type === 'ready' && registry.markKnown(e.tagset));
            await bus.start();
            return bus;
          },
        },
        {
          provide: JobQueue,
          inject: [RedisConnections, TagsetRegistry],
          useFactory: (redis: RedisConnections, registry: TagsetRegistry) => {
            const jobs = new JobQueue(redis, registry);
            jobs.start();
            return jobs;
          },
        },
        {
          provide: SharedLimits,
          inject: [RedisConnections],
          useFactory: (redis: RedisConnections) => {
            const limits = new SharedLimits(redis);
            limits.start();
            return limits;
          },
        },
        {
          provide: RedisEpoch,
          inject: [RedisConnections, TagsetRegistry],
          useFactory: (redis: RedisConnections, registry: TagsetRegistry) =>
            new RedisEpoch(redis, () => registry.forget()),
        },
        { provide: EFFECTS_PORT, useExisting: EffectsPublisher },
        { provide: HAND_OFF_PORT, useExisting: ParkedPolls },
        ParkedPolls,
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_INTERCEPTOR, useExisting: AuditInterceptor },
        { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
        { provide: APP_INTERCEPTOR, useClass: WaitLimitInterceptor },
        AuditInterceptor,
        KeysService,
        LiveAccess,
        RateLimiter,
        MetricsService,
        EffectsPublisher,
        Engine,
        ReferenceResolver,
        LongWaits,
        LeaseService,
        PollService,
        ReconcilerService,
        SettleContinuation,
        WorkflowsService,
        TasksService,
        WorkersService,
        DataService,
        LogsService,
        WorkflowEventsService,
        LimitsService,
        SchedulesService,
        CallbackDispatcher,
        CallbackTargetsInterceptor,
      ],
    };
  }

  /** Module hooks run after the providers' (the reconciler has stopped by now). */
  async onApplicationShutdown(): Promise<void> {
    this.bus.stop();
    await this.limits.stop();
    await this.jobs.close();
    await this.redis.close();
    await this.db.close();
  }
}
