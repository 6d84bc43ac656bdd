-- Issue 33 section 3: a label's hold (FLEETPKI_APPROVAL_LABELS, formerly FLEETPKI_EST_APPROVAL_LABELS)
-- is a property of the label (its profile and key role), enforced by the enrolment service for every
-- protocol: the JSON API and CMP issued a held label's certificates at once, EST alone waited.
-- est_requests keeps its name (and /v1/est/requests its path) but holds every protocol's requests.
-- A request is now its device key under its label for its manufacturer, not its CSR's hash: CMP's
-- CRMF templates and the JSON API's raw keys have no CSR, and a client that signs a new CSR for the
-- same key polls the same request. One manufacturer's request cannot stand in another's way.
-- Requests recorded before this migration have no key hash and match no poll: a client still polling
-- one gets a new request to approve.
ALTER TABLE est_requests DROP CONSTRAINT est_requests_label_csr_sha256_key;
ALTER TABLE est_requests ALTER COLUMN csr_sha256 DROP NOT NULL;
ALTER TABLE est_requests ADD COLUMN public_key_sha256 bytea CHECK (octet_length(public_key_sha256) = 32);
ALTER TABLE est_requests ADD COLUMN protocol text NOT NULL DEFAULT 'est' CHECK (protocol IN ('api', 'est', 'cmp'));
CREATE UNIQUE INDEX est_requests_one_per_key ON est_requests (label, manufacturer_id, eui64, public_key_sha256) WHERE public_key_sha256 IS NOT NULL;
