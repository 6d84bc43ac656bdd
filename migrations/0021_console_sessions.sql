-- Issue 21: the operator console. A browser signs in once (API token or client certificate) and gets a
-- session cookie; the session names the person and the credential used, and is only as good as that
-- credential: revoking the token, the certificate or disabling the person ends it at the next request.
-- Only the SHA-256 of the cookie's secret is stored (a copy of this table opens no session).
CREATE TABLE console_sessions (
  id_sha256     bytea PRIMARY KEY CHECK (octet_length(id_sha256) = 32),
  person_id     uuid NOT NULL REFERENCES people (id),
  token_id      uuid REFERENCES api_tokens (id),
  cert_serial   bytea,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  ended_at      timestamptz,
  CHECK ((token_id IS NULL) <> (cert_serial IS NULL))
);
CREATE INDEX console_sessions_live ON console_sessions (expires_at) WHERE ended_at IS NULL;
GRANT SELECT, INSERT, UPDATE (last_seen_at, ended_at) ON console_sessions TO fleetpki_issuer;
GRANT SELECT ON console_sessions TO fleetpki_operator;
