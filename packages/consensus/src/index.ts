export * from './ca-site.js';
export * from './drill-lock.js';
export * from './etcd-auth.js';
export * from './etcd-tls.js';
export * from './site-orders.js';
