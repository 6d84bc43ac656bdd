-- Factory batches: every key line of an accepted manifest, the work list the chunks point into.
-- Rows arrive by COPY during the upload, in the same transaction as the batch row; a refused manifest
-- rolls back and leaves nothing.
CREATE TABLE batch_items (
  batch_id      uuid NOT NULL REFERENCES batches (id),
  seq           integer NOT NULL CHECK (seq >= 0),          -- position in the batch; chunk = seq / chunk_size
  line_no       integer NOT NULL CHECK (line_no > 0),       -- manifest line, for reports
  eui64         bytea NOT NULL CHECK (octet_length(eui64) = 8),
  key_role      text NOT NULL CHECK (key_role IN ('digitalSignature', 'keyAgreement')),
  device_type   text NOT NULL,
  public_key    bytea NOT NULL CHECK (octet_length(public_key) = 91),  -- P-256 SPKI, point checked on upload
  csr           bytea,                                      -- NULL for signed-manifest raw keys; proof checked by the worker
  error_code    text,                                       -- set when the worker refuses the line (e.g. CSR_SIGNATURE_INVALID)
  PRIMARY KEY (batch_id, seq)
);
-- Upload check: is this (device, role) waiting in another unfinished batch?
CREATE INDEX batch_items_by_device ON batch_items (eui64, key_role);

ALTER TABLE batches
  ADD COLUMN chunk_size     integer NOT NULL DEFAULT 1000 CHECK (chunk_size > 0),
  ADD COLUMN item_count     integer NOT NULL DEFAULT 0 CHECK (item_count >= 0),
  ADD COLUMN skipped_lines  integer NOT NULL DEFAULT 0 CHECK (skipped_lines >= 0),
  ADD COLUMN skip_report    jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN signed         boolean NOT NULL DEFAULT false,
  ADD COLUMN created_by     text NOT NULL DEFAULT 'unknown',
  ADD COLUMN started_at     timestamptz;

ALTER TABLE batch_chunks
  ADD COLUMN issued_count  integer NOT NULL DEFAULT 0,
  ADD COLUMN failed_count  integer NOT NULL DEFAULT 0;

-- notBefore of the TBS the intent commits to: a chunk retried after a crash re-signs the same TBS.
ALTER TABLE issuance_intents ADD COLUMN not_before timestamptz;

-- A factory's registered manifest-signing key (P-256 SPKI): raw public keys are accepted only from a
-- manifest signed with it.
ALTER TABLE manufacturers ADD COLUMN manifest_key bytea CHECK (manifest_key IS NULL OR octet_length(manifest_key) = 91);
