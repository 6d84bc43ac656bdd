-- Issue 19: enrolment over EST (RFC 7030).

-- Re-enrolment (EST simplereenroll, later CMP kur) supersedes the device's live certificate: its intent
-- is retired (active = false) with renewed_at set. The certificate stays good until it is revoked, by
-- hand or after the configured grace period (FLEETPKI_EST_REVOKE_SUPERSEDED_AFTER_S).
ALTER TABLE issuance_intents ADD COLUMN renewed_at timestamptz;
CREATE INDEX issuance_intents_renewed ON issuance_intents (renewed_at) WHERE renewed_at IS NOT NULL;
GRANT UPDATE (renewed_at) ON issuance_intents TO fleetpki_issuer;

-- EST enrolments held for an administrator's approval (labels in FLEETPKI_EST_APPROVAL_LABELS). The
-- client polls with the same CSR (RFC 7030 4.2.3: 202 + Retry-After), so a request is its CSR's hash
-- under its label; once approved, the next poll enrols and gets the certificate.
CREATE TABLE est_requests (
  id              uuid PRIMARY KEY,
  label           text NOT NULL,
  csr_sha256      bytea NOT NULL CHECK (octet_length(csr_sha256) = 32),
  manufacturer_id text NOT NULL REFERENCES manufacturers (id),
  eui64           bytea NOT NULL CHECK (octet_length(eui64) = 8),
  requested_by    text NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'refused')),
  decided_by      text,
  decided_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (label, csr_sha256),
  CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX est_requests_pending ON est_requests (created_at) WHERE status = 'pending';
GRANT SELECT ON est_requests TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT INSERT, UPDATE (status, decided_by, decided_at) ON est_requests TO fleetpki_issuer;
