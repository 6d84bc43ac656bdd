-- The deployment's own TLS certificates (issue 34, `fleetpki tls internal`): the organisation CA issues
-- each host's pair for a part (PostgreSQL, Redis, etcd, ...), purpose internal-server or internal-client.
-- Such a certificate stands for a part of one host, never for a person: it has no role and no person, and
-- everything that takes a client certificate as a person's credential already asks for purpose 'client'.
ALTER TABLE organisation_certificates DROP CONSTRAINT organisation_certificates_purpose_check;
ALTER TABLE organisation_certificates ADD CONSTRAINT organisation_certificates_purpose_check
  CHECK (purpose IN ('server', 'client', 'audit', 'cmp', 'internal-server', 'internal-client'));
ALTER TABLE organisation_certificate_intents DROP CONSTRAINT organisation_certificate_intents_purpose_check;
ALTER TABLE organisation_certificate_intents ADD CONSTRAINT organisation_certificate_intents_purpose_check
  CHECK (purpose IN ('server', 'client', 'audit', 'cmp', 'internal-server', 'internal-client'));

-- Which host's which part it serves, and (after a rotation) which certificate took its place. A
-- superseded certificate is not revoked: the running process presents it until it is restarted.
ALTER TABLE organisation_certificates
  ADD COLUMN tls_part text CHECK (tls_part IN ('api', 'status', 'postgres', 'redis', 'etcd', 'etcdPeer', 'etcdClient')),
  ADD COLUMN tls_host text CHECK (tls_host IN ('a', 'b', 'witness')),
  ADD COLUMN superseded_at timestamptz,
  -- Deferred: the new certificate is stored in the same transaction, after the old one is marked.
  ADD COLUMN superseded_by bytea REFERENCES organisation_certificates (serial) DEFERRABLE INITIALLY DEFERRED,
  ADD CONSTRAINT organisation_certificates_internal_part CHECK ((purpose IN ('internal-server', 'internal-client')) = (tls_part IS NOT NULL AND tls_host IS NOT NULL)),
  ADD CONSTRAINT organisation_certificates_internal_person CHECK (purpose NOT IN ('internal-server', 'internal-client') OR (role IS NULL AND person_id IS NULL)),
  ADD CONSTRAINT organisation_certificates_supersession CHECK ((superseded_at IS NULL) = (superseded_by IS NULL) AND (superseded_at IS NULL OR tls_part IS NOT NULL));

-- One current certificate per host and part: two rotations at once cannot both leave theirs current.
CREATE UNIQUE INDEX organisation_certificates_current_internal ON organisation_certificates (tls_host, tls_part) WHERE tls_part IS NOT NULL AND superseded_at IS NULL;

-- A supersession, like a revocation, is final.
CREATE FUNCTION organisation_certificate_supersession_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.superseded_at IS NOT NULL AND (NEW.superseded_at, NEW.superseded_by) IS DISTINCT FROM (OLD.superseded_at, OLD.superseded_by) THEN
    RAISE EXCEPTION 'CERTIFICATE_SUPERSEDED: organisation certificate % was superseded at %; a supersession is final', encode(OLD.serial, 'hex'), OLD.superseded_at USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER organisation_certificate_supersession_is_final BEFORE UPDATE ON organisation_certificates FOR EACH ROW EXECUTE FUNCTION organisation_certificate_supersession_is_final();

-- The operators' CLI issues and rotates them (it already inserts organisation certificates).
GRANT UPDATE (superseded_at, superseded_by) ON organisation_certificates TO fleetpki_operator;
