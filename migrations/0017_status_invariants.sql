-- Status answers never fresher than the data behind them (RFC 6960, RFC 5019), and a lease for the
-- site that may act as the CA.

-- A revocation generation, bumped in every revocation's transaction. It is transactional (a sequence
-- would show a new value before the revocation commits): an OCSP responder that read a status at
-- generation G may serve that answer while the generation it reads now is still G.
CREATE TABLE revocation_generation (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  generation  bigint NOT NULL
);
INSERT INTO revocation_generation (generation) VALUES (1);

-- The active site's lease, renewed through the synchronous standby (ca/site-lease.ts).
ALTER TABLE site_state ADD COLUMN lease_until timestamptz;

-- A stored "good" response for a revoked certificate must never be served or produced again.
CREATE INDEX ocsp_responses_by_serial ON ocsp_responses (serial);

-- Online intents that never got their certificate (a crash, an HSM error, a commit with an unknown
-- outcome) are released by the reconciler so the device can enrol again; the row stays, accounted for.
ALTER TABLE issuance_intents ADD COLUMN released_at timestamptz;
ALTER TABLE issuance_intents ADD COLUMN released_reason text;
CREATE INDEX issuance_intents_online_open ON issuance_intents (created_at) WHERE batch_id IS NULL AND active;

GRANT UPDATE ON revocation_generation TO fleetpki_issuer;
GRANT SELECT ON revocation_generation TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT DELETE ON ocsp_responses TO fleetpki_issuer;
GRANT UPDATE (lease_until) ON site_state TO fleetpki_issuer, fleetpki_worker, fleetpki_status;
GRANT UPDATE (active, released_at, released_reason) ON issuance_intents TO fleetpki_issuer;
