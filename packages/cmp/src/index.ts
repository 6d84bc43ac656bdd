// CMP (RFC 9810/4210, Lightweight CMP Profile RFC 9483): reading requests and checking their protection
// and proof of possession, the responses, and the requests a client of this CA sends.
export * from './pki-message.js';
export * from './protection.js';
export * from './responses.js';
export * from './pbm-threads.js';
export * from './requests.js';
export * from './root-ca-key-update.js';
