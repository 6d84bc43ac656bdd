-- fleetpki initial schema. Forward-only: later changes come as new NNNN_name.sql files.
-- Text columns with CHECK constraints instead of ENUM types: adding a value later is a plain migration.

-- Certification authorities. Private keys stay in the HSM; key_uri (RFC 7512) says where.
CREATE TABLE cas (
  id            text PRIMARY KEY,                  -- 'root', 'device-issuing-1', 'organisation'
  kind          text NOT NULL CHECK (kind IN ('root', 'device-issuing', 'organisation')),
  parent_id     text REFERENCES cas (id),
  subject_dn    text NOT NULL,
  key_uri       text NOT NULL,
  key_id        bytea NOT NULL,                    -- subjectKeyIdentifier, copied into issued AKIs
  certificate   bytea NOT NULL,                    -- DER
  not_after     timestamptz NOT NULL,
  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired', 'revoked')),
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- Meter makers; a factory's tokens and batches are scoped to one.
CREATE TABLE manufacturers (
  id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name          text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batches (
  id                uuid PRIMARY KEY,
  manufacturer_id   text NOT NULL REFERENCES manufacturers (id),
  idempotency_key   text NOT NULL,                 -- client's key, or the manifest's SHA-256
  manifest_sha256   bytea NOT NULL CHECK (octet_length(manifest_sha256) = 32),
  profile           text NOT NULL,
  status            text NOT NULL CHECK (status IN ('accepted', 'issuing', 'complete', 'failed', 'cancelled')),
  device_count      integer NOT NULL CHECK (device_count >= 0),
  certificate_count integer NOT NULL CHECK (certificate_count >= 0),
  chunk_count       integer NOT NULL CHECK (chunk_count >= 0),
  created_at        timestamptz NOT NULL DEFAULT now(),
  completed_at      timestamptz,
  UNIQUE (manufacturer_id, idempotency_key)
);

-- The chunks are the outbox: a reconciler enqueues every chunk not 'done'; Redis holds only that work list.
CREATE TABLE batch_chunks (
  batch_id      uuid NOT NULL REFERENCES batches (id),
  chunk_no      integer NOT NULL CHECK (chunk_no >= 0),
  device_count  integer NOT NULL CHECK (device_count > 0),
  state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
  attempts      integer NOT NULL DEFAULT 0,
  done_by_site  text CHECK (done_by_site IN ('a', 'b')),
  completed_at  timestamptz,
  last_error    text,
  PRIMARY KEY (batch_id, chunk_no)
);
CREATE INDEX batch_chunks_unfinished ON batch_chunks (batch_id, chunk_no) WHERE state <> 'done';

CREATE TABLE devices (
  eui64           bytea PRIMARY KEY CHECK (octet_length(eui64) = 8),
  manufacturer_id text NOT NULL REFERENCES manufacturers (id),
  device_type     text NOT NULL,
  batch_id        uuid REFERENCES batches (id),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_by_batch ON devices (batch_id) WHERE batch_id IS NOT NULL;

-- Recorded (and replicated) before the HSM signs: nothing is signed that is not accounted for.
CREATE TABLE issuance_intents (
  serial        bytea PRIMARY KEY CHECK (octet_length(serial) BETWEEN 9 AND 20),
  ca_id         text NOT NULL REFERENCES cas (id),
  eui64         bytea NOT NULL CHECK (octet_length(eui64) = 8),
  key_role      text NOT NULL CHECK (key_role IN ('digitalSignature', 'keyAgreement')),
  profile       text NOT NULL,
  tbs_sha256    bytea NOT NULL CHECK (octet_length(tbs_sha256) = 32),
  batch_id      uuid REFERENCES batches (id),
  chunk_no      integer,
  site          text NOT NULL CHECK (site IN ('a', 'b')),
  active        boolean NOT NULL DEFAULT true,     -- false once an operator re-issues
  created_at    timestamptz NOT NULL DEFAULT now()
);
-- Exactly one live certificate per (device, key role, profile): retries converge on this row.
CREATE UNIQUE INDEX issuance_intents_one_live ON issuance_intents (eui64, key_role, profile) WHERE active;
CREATE INDEX issuance_intents_by_chunk ON issuance_intents (batch_id, chunk_no) WHERE batch_id IS NOT NULL;

CREATE TABLE certificates (
  serial        bytea PRIMARY KEY REFERENCES issuance_intents (serial),
  ca_id         text NOT NULL REFERENCES cas (id),
  eui64         bytea NOT NULL CHECK (octet_length(eui64) = 8),
  key_role      text NOT NULL CHECK (key_role IN ('digitalSignature', 'keyAgreement')),
  profile       text NOT NULL,
  der           bytea NOT NULL,
  not_before    timestamptz NOT NULL,
  not_after     timestamptz NOT NULL,
  crl_shard     integer NOT NULL CHECK (crl_shard >= 0),  -- fixed at issuance, written into the CRL DP
  batch_id      uuid REFERENCES batches (id),
  issued_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificates_by_device ON certificates (eui64);
CREATE INDEX certificates_by_batch ON certificates (batch_id) WHERE batch_id IS NOT NULL;

-- RFC 5280 5.3.1 reason codes; 7 is unused by the standard.
CREATE TABLE revocations (
  serial        bytea PRIMARY KEY REFERENCES certificates (serial),
  ca_id         text NOT NULL REFERENCES cas (id),
  crl_shard     integer NOT NULL,
  reason        smallint NOT NULL CHECK (reason BETWEEN 0 AND 10 AND reason <> 7),
  revoked_at    timestamptz NOT NULL DEFAULT now(),
  requested_by  text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revocations_by_shard ON revocations (ca_id, crl_shard, serial);

-- Appended in the same transaction as the change it records; the hash chain and signed checkpoints
-- (chain_hash) are filled by the audit writer.
CREATE TABLE audit_events (
  seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at            timestamptz NOT NULL DEFAULT now(),
  site          text NOT NULL CHECK (site IN ('a', 'b')),
  actor         text NOT NULL,
  action        text NOT NULL,
  subject       text,
  details       jsonb NOT NULL DEFAULT '{}',
  chain_hash    bytea
);

-- Which site is active. epoch grows on every promotion, so a writer holding an older epoch is fenced.
CREATE TABLE site_state (
  site          text PRIMARY KEY CHECK (site IN ('a', 'b')),
  role          text NOT NULL CHECK (role IN ('active', 'standby', 'fenced')),
  epoch         bigint NOT NULL CHECK (epoch > 0),
  changed_at    timestamptz NOT NULL DEFAULT now(),
  note          text
);
INSERT INTO site_state (site, role, epoch, note) VALUES
  ('a', 'active', 1, 'initial topology'),
  ('b', 'standby', 1, 'initial topology');
