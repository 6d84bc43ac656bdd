-- Keys are named by label and CKA_ID together (RFC 7512 object= and id=): the id tells one generation
-- of a key from another under the same label, so a restore or a signer can never take the wrong one.
-- Key URIs (cas.key_uri) carry it as id=; master keys and custody backups record it here. Rows from
-- before have none and are found by label alone (which must then be unique in the token).
ALTER TABLE device_master_keys ADD COLUMN key_object_id bytea;
ALTER TABLE key_backups ADD COLUMN key_object_id bytea;

-- The offline root publishes a CRL of the CA certificates it signed (an ARL, RFC 5280 5.2.5
-- onlyContainsCACerts), stored like a shard CRL of CA 'root' (shard 0, kind full).
COMMENT ON TABLE crls IS 'Current CRLs: device CRL shards (full, delta) per issuing CA, and the root''s ARL (ca_id = the root, shard 0)';

-- A revoked CA keeps when and why, for the ARL entry that lists its certificate (RFC 5280 5.3.1).
ALTER TABLE cas ADD COLUMN revoked_at timestamptz;
ALTER TABLE cas ADD COLUMN revocation_reason smallint CHECK (revocation_reason BETWEEN 0 AND 10 AND revocation_reason <> 7);

-- A CA's earlier certificates (renewed by the offline root with the same key): the ARL lists every
-- certificate of a revoked CA, not only its current one.
CREATE TABLE ca_certificate_history (
  ca_id        text NOT NULL REFERENCES cas (id),
  certificate  bytea NOT NULL,
  replaced_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (ca_id, replaced_at)
);
