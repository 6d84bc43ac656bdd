// CMP (RFC 9810/4210, Lightweight CMP Profile RFC 9483): reading requests and checking their protection
// and proof of possession. The HTTP endpoint and responses come next (issue 20).
export * from './pki-message.js';
export * from './protection.js';
export * from './responses.js';
export * from './pbm-threads.js';
