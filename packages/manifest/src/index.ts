export * from './lines.js';
export * from './entries.js';
export * from './signature.js';
export * from './raw-key-statement.js';
export * from './generate.js';
export * from './revocation-list.js';
