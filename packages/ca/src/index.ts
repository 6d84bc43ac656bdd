export * from './ca-ids.js';
export * from './serials.js';
export * from './group-commit.js';
export * from './issuing-ca.js';
export * from './ceremony.js';
export * from './enrolment.js';
export * from './api-tokens.js';
