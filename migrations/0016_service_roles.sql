-- One database role per client of the CA's data, each with exactly the grants its code uses:
--   fleetpki_issuer    the issuer API (enrolment, batch intake, revocation requests, approvals, access)
--   fleetpki_worker    batch workers (chunk issuance)
--   fleetpki_status    status responders (OCSP, CRL publication, audit sealing)
--   fleetpki_operator  the operators' CLI (ceremonies, custody, drills' CA rows, manufacturers, TLS)
-- The owner is for migrations and the documented owner-only paths (installation bootstrap, recovery).
-- Nobody but the owner may UPDATE or DELETE revocations (un-revoking a meter), write api_tokens,
-- people or approval_requests directly (only through the fp_* functions of 0015, which check the
-- two-people rule), or change the schema. A table added later gets no grant until a migration says so.

DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['fleetpki_issuer', 'fleetpki_worker', 'fleetpki_status', 'fleetpki_operator'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', r);
    END IF;
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), r);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
  END LOOP;
  -- The single role of before (0013) keeps nothing here.
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetpki_service') THEN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM fleetpki_service', current_database());
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fleetpki_service;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM fleetpki_service;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM fleetpki_service;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM fleetpki_service;
    REVOKE USAGE ON SCHEMA public FROM fleetpki_service;
    REVOKE pg_monitor FROM fleetpki_service;
  END IF;
END $$;

-- Reading: every table but the token hashes (authentication goes through fp_token_authenticate) and
-- the migration ledger.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
REVOKE SELECT ON api_tokens, schema_migrations FROM fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT SELECT (id, name, role, manufacturer_id, created_at, expires_at, revoked_at, person_id, created_by) ON api_tokens TO fleetpki_issuer, fleetpki_operator;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
-- Replication state (pg_stat_replication) for readiness and site status.
GRANT pg_monitor TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;

-- The issuer API.
GRANT INSERT ON issuance_intents, certificates, devices, batches, batch_chunks, batch_items, revocations, crl_dirty, audit_events, device_key_checks TO fleetpki_issuer;
GRANT UPDATE ON batches, batch_items TO fleetpki_issuer;
GRANT DELETE ON batch_items TO fleetpki_issuer;
GRANT UPDATE (status, revoked_at, revocation_reason) ON cas TO fleetpki_issuer;

-- Batch workers.
GRANT INSERT ON issuance_intents, certificates, devices, audit_events TO fleetpki_worker;
GRANT UPDATE ON batch_chunks, batches TO fleetpki_worker;
GRANT UPDATE (error_code) ON batch_items TO fleetpki_worker;

-- Status responders.
GRANT INSERT, UPDATE ON ocsp_responses, crls, crl_numbers TO fleetpki_status;
GRANT DELETE ON crl_dirty TO fleetpki_status;
GRANT INSERT ON audit_events, audit_seals, audit_keys, organisation_certificates TO fleetpki_status;
GRANT UPDATE (chain_hash) ON audit_events TO fleetpki_status;

-- The operators' CLI.
GRANT INSERT ON cas, ca_certificate_history, key_encryption_keys, key_backups, device_master_keys, device_key_checks, manufacturers, organisation_certificates, audit_events, audit_seals, audit_keys, crls, crl_numbers TO fleetpki_operator;
GRANT UPDATE (status, certificate, not_after, revoked_at, revocation_reason) ON cas TO fleetpki_operator;
GRANT UPDATE (status) ON device_master_keys TO fleetpki_operator;
GRANT UPDATE (name, manifest_key, transport_key_spki) ON manufacturers TO fleetpki_operator;
GRANT UPDATE (revoked_at) ON organisation_certificates TO fleetpki_operator;
GRANT UPDATE ON crls, crl_numbers TO fleetpki_operator;
GRANT UPDATE (chain_hash) ON audit_events TO fleetpki_operator;

-- The functions that carry the rules: every client may call them; they decide, with the owner's rights.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_credential_people(text), fp_dual_control_roles(text), fp_privileged(text), fp_token_authenticate(bytea),
  fp_approval_request(uuid, text, jsonb, text, text, integer), fp_approval_approve(uuid, text), fp_approval_claim(uuid, text, text),
  fp_approval_release(uuid), fp_approval_outcome(uuid, jsonb), fp_person_create(uuid, text, text, text, text, uuid),
  fp_person_rescope(uuid, text, text, uuid), fp_token_create(uuid, uuid, text, bytea, timestamptz, text, uuid), fp_token_revoke(uuid, text)
  TO fleetpki_issuer, fleetpki_operator;
GRANT EXECUTE ON FUNCTION fp_credential_people(text), fp_token_authenticate(bytea) TO fleetpki_worker, fleetpki_status;
GRANT EXECUTE ON FUNCTION fp_lock_revocations() TO fleetpki_status, fleetpki_operator;
GRANT EXECUTE ON FUNCTION fp_lock_revocations_for_insert() TO fleetpki_issuer;
