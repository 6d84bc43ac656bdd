export * from './probes.js';
export * from './failover-drill.js';
export * from './switchover-drill.js';
export * from './takeover-runs.js';
export * from './one-drill-at-a-time.js';
export * from './restore-drill.js';
export * from './disaster-drill.js';
