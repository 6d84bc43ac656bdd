export * from './topology.js';
export * from './hsm-tokens.js';
export * from './postgres-cluster.js';
export * from './redis-server.js';
export * from './state-dir.js';
export * from './topology-file.js';
export * from './failover.js';
export * from './service-process.js';
