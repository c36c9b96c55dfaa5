export * from './entities/columns.js';
export * from './entities/task.entity.js';
export * from './entities/workflow.entity.js';
export * from './entities/worker.entity.js';
export * from './entities/data-entry.entity.js';
export * from './data-source.js';
export * from './database.js';
export type { ClaimJob } from './dialect.js';
export * from './repositories/index.js';
