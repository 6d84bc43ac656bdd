// Protocols (CMP, EST): the registration authority's logic behind each wire format. Services parse the
// envelope and encode the answer; what is checked, written and audited is decided here.
export * from './store.js';
export * from './postgres-store.js';
export * from './cmp-auth-budget.js';
export * from './cmp-sender.js';
export * from './cmp-server.js';
export * from './cmp-secret-administration.js';
export * from './est-enrolment.js';
export * from './est-requests.js';
export * from './protocol-jobs.js';
