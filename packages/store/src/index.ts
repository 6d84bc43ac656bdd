export * from './pool.js';
export * from './copy.js';
export * from './migrate.js';
export * from './site-status.js';
