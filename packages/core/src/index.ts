export * from './errors.js';
export * from './eui64.js';
export * from './key-role.js';
export * from './config.js';
export * from './device-key-bundle.js';
export * from './run-service.js';
export * from './worker-pool.js';
export * from './progress-deadline.js';
