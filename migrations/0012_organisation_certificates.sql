-- End-entity certificates from the organisation CA: TLS servers, mTLS clients (factories, officers)
-- and each site's audit key. A client certificate maps to a role like an API token does.
CREATE TABLE organisation_certificates (
  serial          bytea PRIMARY KEY,
  purpose         text NOT NULL CHECK (purpose IN ('server', 'client', 'audit')),
  subject_dn      text NOT NULL,
  role            text CHECK (role IS NULL OR role IN ('factory', 'revocation-officer', 'auditor', 'administrator', 'custodian')),
  manufacturer_id text REFERENCES manufacturers (id),
  key_id          bytea NOT NULL,
  certificate     bytea NOT NULL,
  not_after       timestamptz NOT NULL,
  revoked_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CHECK ((purpose = 'client') = (role IS NOT NULL)),
  CHECK (role IS DISTINCT FROM 'factory' OR manufacturer_id IS NOT NULL)
);

-- Each site signs its audit checkpoints with a key in its own HSM, certified by the organisation CA.
CREATE TABLE audit_keys (
  key_id       bytea PRIMARY KEY,           -- subjectKeyIdentifier of the certificate
  site         text NOT NULL,
  key_label    text NOT NULL,
  certificate  bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- A seal carries the HSM signature over its statement; seals written before this have none.
ALTER TABLE audit_seals ADD COLUMN key_id bytea, ADD COLUMN signature bytea;
