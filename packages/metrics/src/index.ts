export type { Registry } from 'prom-client';
export * from './registry.js';
export * from './server.js';
export * from './hsm.js';
export * from './issuance.js';
export * from './status.js';
export * from './collected-gauge.js';
export * from './site.js';
export * from './batch.js';
