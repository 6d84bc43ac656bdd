-- Tamper evidence for the audit log. The sealer links committed rows in seq order into a hash chain
-- (chain_hash = SHA-256(previous chain_hash || the row's canonical form)) and records each seal; the
-- same seals are appended to a file outside the database, so deleting the tail is detected too.
CREATE TABLE audit_seals (
  seq         bigint PRIMARY KEY,          -- the last audit_events.seq this seal covers
  chain_hash  bytea NOT NULL CHECK (octet_length(chain_hash) = 32),
  rows        integer NOT NULL,
  sealed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_unsealed ON audit_events (seq) WHERE chain_hash IS NULL;
