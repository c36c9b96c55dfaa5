export * from './states.js';
export * from './limits.js';
export * from './retry.js';
export * from './on-error.js';
export * from './tagset.js';
export * from './dependencies.js';
export * from './time.js';
export * from './tagset-index.js';
