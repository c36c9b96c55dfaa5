export * from './client.js';
export * from './errors.js';
export * from './retry-policy.js';
export * from './types.js';
export * from './version.js';
