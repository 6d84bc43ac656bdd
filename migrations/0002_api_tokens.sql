-- API tokens: random secrets shown once, stored as SHA-256 only, scoped to a role and (for factories)
-- a manufacturer. The full role model (ARCHITECTURE.md, users) builds on these columns.
CREATE TABLE api_tokens (
  id               uuid PRIMARY KEY,
  name             text NOT NULL,
  token_sha256     bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
  role             text NOT NULL CHECK (role IN ('factory', 'revocation-officer', 'auditor', 'administrator', 'custodian')),
  manufacturer_id  text REFERENCES manufacturers (id),
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz,
  revoked_at       timestamptz,
  CHECK (role <> 'factory' OR manufacturer_id IS NOT NULL)
);

-- Serial prefix byte per site (ARCHITECTURE.md: two sites never collide, even in split brain).
ALTER TABLE site_state ADD COLUMN serial_prefix smallint CHECK (serial_prefix BETWEEN 1 AND 127);
UPDATE site_state SET serial_prefix = CASE site WHEN 'a' THEN 10 ELSE 11 END;
ALTER TABLE site_state ALTER COLUMN serial_prefix SET NOT NULL;
ALTER TABLE site_state ADD CONSTRAINT site_state_serial_prefix_unique UNIQUE (serial_prefix);
