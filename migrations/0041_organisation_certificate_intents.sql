-- Organisation certificates are recorded before the organisation CA's key signs them, as device
-- certificates are (issuance intents): the serial, the purpose and the SHA-256 of the linted TBS commit
-- first, with the issuance's audit row, so the HSM never signs a certificate the database does not know
-- of. The certificate itself is stored in organisation_certificates once signed, as before.
CREATE TABLE organisation_certificate_intents (
  serial      bytea PRIMARY KEY,
  purpose     text NOT NULL CHECK (purpose IN ('server', 'client', 'audit', 'cmp')),
  tbs_sha256  bytea NOT NULL CHECK (length(tbs_sha256) = 32),
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every role that issues organisation certificates records their intents through this one function
-- (the CLI as operator: servers and clients; the issuer API: its CMP key's; the status daemons: their
-- audit key's); none writes the table itself. A service role records only its own kinds (cmp, audit), as
-- fp_service_certificate_record (0026) stores only those: a stolen service credential cannot plant
-- intents for client or server certificates. The issuance's audit row comes with the certificate.
CREATE FUNCTION fp_organisation_intent_record(p_serial bytea, p_purpose text, p_tbs_sha256 bytea) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_purpose NOT IN ('cmp', 'audit') AND NOT pg_has_role(session_user, 'fleetpki_operator', 'MEMBER') THEN
    RAISE EXCEPTION 'ROLE_FORBIDDEN: a service records intents only for its own CMP or audit certificate, not a % certificate', p_purpose;
  END IF;
  INSERT INTO organisation_certificate_intents (serial, purpose, tbs_sha256) VALUES (p_serial, p_purpose, p_tbs_sha256);
END $$;
REVOKE ALL ON FUNCTION fp_organisation_intent_record(bytea, text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_organisation_intent_record(bytea, text, bytea) TO fleetpki_issuer, fleetpki_status, fleetpki_operator;
REVOKE ALL ON organisation_certificate_intents FROM PUBLIC;
GRANT SELECT ON organisation_certificate_intents TO fleetpki_operator;
