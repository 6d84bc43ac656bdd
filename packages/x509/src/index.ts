export * from './der.js';
export * from './oids.js';
export * from './profiles.js';
export * from './public-key.js';
export * from './csr.js';
export * from './device-template.js';
export * from './lint.js';
export * from './ca-certificate.js';
