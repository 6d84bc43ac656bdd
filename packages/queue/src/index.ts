export * from './connection.js';
export * from './chunk-queue.js';
export * from './redis-link.js';
export * from './redis-errors.js';
