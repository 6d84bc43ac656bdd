-- Revocation status artefacts: CRL shards (full and delta), their numbers, and pre-produced OCSP
-- responses. All in PostgreSQL, so the standby site serves what the active site published.

-- clock_timestamp(), not now(): the CRL publisher locks revocations while it reads them, so a row
-- inserted after the lock is released always carries a later time than the CRL's covers_until.
ALTER TABLE revocations ALTER COLUMN created_at SET DEFAULT clock_timestamp();
CREATE INDEX revocations_by_time ON revocations (ca_id, crl_shard, created_at);

-- CRL numbers never go backwards (RFC 5280 5.2.3), across a failover too: each is
-- greatest(last + 1, unix seconds), so a site that takes over continues above anything published.
CREATE TABLE crl_numbers (
  ca_id        text PRIMARY KEY REFERENCES cas (id),
  last_number  bigint NOT NULL CHECK (last_number > 0)
);

-- The current full and delta CRL of each shard.
CREATE TABLE crls (
  ca_id         text NOT NULL REFERENCES cas (id),
  shard         integer NOT NULL CHECK (shard >= 0),
  kind          text NOT NULL CHECK (kind IN ('full', 'delta')),
  crl_number    bigint NOT NULL,
  base_number   bigint,                        -- delta: the full CRL it completes
  this_update   timestamptz NOT NULL,
  next_update   timestamptz NOT NULL,
  covers_until  timestamptz NOT NULL,          -- every revocation created up to here is in it
  entries       integer NOT NULL,
  der           bytea NOT NULL,
  published_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (ca_id, shard, kind),
  CHECK ((kind = 'delta') = (base_number IS NOT NULL))
);

-- Shards with revocations not yet in a published CRL; written with the revocation, cleared by the publisher.
CREATE TABLE crl_dirty (
  ca_id  text NOT NULL REFERENCES cas (id),
  shard  integer NOT NULL,
  since  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (ca_id, shard)
);

-- Pre-produced OCSP responses (RFC 9919), one per certificate and CertID hash algorithm.
CREATE TABLE ocsp_responses (
  serial        bytea NOT NULL REFERENCES certificates (serial),
  hash_alg      text NOT NULL CHECK (hash_alg IN ('sha1', 'sha256')),
  status        text NOT NULL CHECK (status IN ('good', 'revoked')),
  this_update   timestamptz NOT NULL,
  next_update   timestamptz NOT NULL,
  der           bytea NOT NULL,
  PRIMARY KEY (serial, hash_alg)
);
CREATE INDEX ocsp_responses_by_expiry ON ocsp_responses (next_update);

-- Batch progress lists the first refused lines; without this it scanned every item of the batch.
CREATE INDEX batch_items_refused ON batch_items (batch_id, seq) WHERE error_code IS NOT NULL;
