export * from './connection.js';
export * from './chunk-queue.js';
