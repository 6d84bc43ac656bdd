-- Issue 36: root rollover (RFC 4210 4.4). A root key is replaced, never edited: the new root gets a
-- CA row of its own, and the link between the two roots is kept here, NewWithOld (the new key
-- certified by the old: a meter with only the old root in firmware reaches the new hierarchy) and
-- OldWithNew (the old key certified by the new). One successor per root and one predecessor per root,
-- so the generations form a chain; the current root is the one no link names as old.
CREATE TABLE root_links (
  old_root_id   text PRIMARY KEY REFERENCES cas (id),
  new_root_id   text NOT NULL UNIQUE REFERENCES cas (id),
  new_with_old  bytea NOT NULL,
  old_with_new  bytea NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (old_root_id <> new_root_id)
);

-- Every service reads the links (EST /cacerts, CMP rootCaKeyUpdate); only the root ceremony, run by
-- custodians as the operator role, adds one. Nobody changes or deletes one: a link a meter may have
-- followed stays as it was.
GRANT SELECT ON root_links TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT INSERT ON root_links TO fleetpki_operator;

-- Re-certifying an issuing CA under the new root changes its parent (same key and subject; its
-- previous certificate goes to ca_certificate_history as for a renewal).
GRANT UPDATE (parent_id) ON cas TO fleetpki_operator;
