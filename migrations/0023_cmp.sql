-- Issue 20: enrolment over CMP (RFC 9810/4210, Lightweight CMP Profile RFC 9483).

-- Each site's CMP protection key (in its HSM, never extractable) is certified by the organisation CA
-- with id-kp-cmcRA; the issuer API asks for that certificate the first time it answers a CMP request.
ALTER TABLE organisation_certificates DROP CONSTRAINT organisation_certificates_purpose_check;
ALTER TABLE organisation_certificates ADD CONSTRAINT organisation_certificates_purpose_check CHECK (purpose IN ('server', 'client', 'audit', 'cmp'));
GRANT INSERT ON organisation_certificates TO fleetpki_issuer;

-- A factory's reference for password-based MAC protection (first contact, RFC 9483 4.1.1). The secret
-- itself is not stored: it is derived in the HSM from the active device MAC master key, the reference
-- and the version (packages/ca/src/access/cmp-secrets.ts), so both sites derive the same value and the
-- database never holds it. A new version (a re-issue) makes the previous secret useless.
CREATE TABLE cmp_secrets (
  reference       text PRIMARY KEY CHECK (reference ~ '^[A-Za-z0-9._-]{1,64}$'),
  manufacturer_id text NOT NULL REFERENCES manufacturers (id),
  master_label    text NOT NULL,
  version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_by      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  revoked_at      timestamptz
);
GRANT SELECT ON cmp_secrets TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
-- The issuer API (POST /v1/cmp/secrets) and the operators' CLI (`fleetpki cmp secret`) issue them.
GRANT INSERT, UPDATE (master_label, version, created_by, created_at, revoked_at) ON cmp_secrets TO fleetpki_issuer, fleetpki_operator;

-- One row per CMP transaction that asked for something (ir/cr/p10cr/kur/rr): the transactionID is
-- unique (a replayed request is refused with transactionIdInUse) and a certificate waits here for its
-- certConf (RFC 9483 4.1.1: implicit confirmation is off unless configured).
CREATE TABLE cmp_transactions (
  transaction_id     bytea PRIMARY KEY CHECK (octet_length(transaction_id) BETWEEN 1 AND 64),
  body_type          text NOT NULL CHECK (body_type IN ('ir', 'cr', 'p10cr', 'kur', 'rr')),
  sender             text NOT NULL,
  status             text NOT NULL CHECK (status IN ('open', 'waiting', 'confirmed', 'rejected', 'unconfirmed', 'refused', 'done')),
  certificate_serial bytea,
  certificate_sha256 bytea CHECK (certificate_sha256 IS NULL OR octet_length(certificate_sha256) = 32),
  -- Our senderNonce in the answer: the certConf must carry it as its recipNonce.
  response_nonce     bytea,
  site               text NOT NULL CHECK (site IN ('a', 'b')),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cmp_transactions_waiting ON cmp_transactions (updated_at) WHERE status = 'waiting';
GRANT SELECT ON cmp_transactions TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT INSERT, UPDATE (status, certificate_serial, certificate_sha256, response_nonce, updated_at) ON cmp_transactions TO fleetpki_issuer;
