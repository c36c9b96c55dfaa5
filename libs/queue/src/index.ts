export * from './redis.js';
export * from './bus.js';
export * from './job-queue.js';
export * from './tagset-registry.js';
export * from './redis-epoch.js';
export * from './shared-limits.js';
