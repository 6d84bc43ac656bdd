// The CA's capabilities, one folder each: issuance (online and batch, one path), status (revocation,
// CRLs, OCSP), access (who may do what: tokens, certificates, two people), custody (keys and
// ceremonies), audit (the tamper-evident log) and sites (which site may act).
export * from './ca-ids.js';
export * from './issuance/serials.js';
export * from './issuance/group-commit.js';
export * from './issuance/issuing-ca.js';
export * from './issuance/prepare-issuance.js';
export * from './issuance/enrolment.js';
export * from './issuance/device-ownership.js';
export * from './issuance/raw-key-statement.js';
export * from './issuance/enrolment-labels.js';
export * from './issuance/batch-intake.js';
export * from './issuance/upload-admission.js';
export * from './issuance/batch-chunk.js';
export * from './issuance/site-issuer.js';
export * from './issuance/store.js';
export * from './issuance/postgres-store.js';
export * from './status/revocation.js';
export * from './status/crl-publisher.js';
export * from './status/ocsp-responder.js';
export * from './access/api-tokens.js';
export * from './access/client-certificates.js';
export * from './access/dual-control.js';
export * from './access/access-administration.js';
export * from './access/organisation-issuer.js';
export * from './access/console-sessions.js';
export * from './access/cmp-credentials.js';
export * from './access/manufacturers.js';
export * from './access/owner-recovery.js';
export * from './custody/ceremony.js';
export * from './custody/root-ceremonies.js';
export * from './custody/key-custody.js';
export * from './custody/device-key-service.js';
export * from './audit/audit-chain.js';
export * from './sites/site-guard.js';
export * from './sites/site-lease.js';
