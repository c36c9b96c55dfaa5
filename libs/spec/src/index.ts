export * from './validators.js';
export * from './validate.js';
export * from './rule-check.js';
export * from './callback.dto.js';
export * from './task-spec.dto.js';
export * from './workflow-spec.dto.js';
export * from './workflow-checks.js';
