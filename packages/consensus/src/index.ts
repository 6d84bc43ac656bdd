export * from './ca-site.js';
