-- Issue 33 §2: dual control the database can prove.
--
-- The rule functions of 0015 took a credential's identifier ('token:<uuid>'), which every client role
-- could read (api_tokens.id, approvals' requested_by): one administrator with the CLI's role approved her
-- own request "as" a colleague, and the functions wrote no audit row. Now they take proof of possession:
--   'token:<hex SHA-256 of the token's secret>'   (what fp_token_authenticate takes; no role reads
--                                                   api_tokens.token_sha256)
--   'session:<hex SHA-256 of a console cookie>'    (a console session opened with a token; no role reads
--                                                   console_sessions.id_sha256 any more)
-- A client certificate ('cert:<serial>') authenticates a person to the services, but the database cannot
-- check a TLS handshake, so the rule functions refuse it (CREDENTIAL_PROOF_REQUIRED). Records and the
-- audit log keep naming credentials by their public label ('token:<uuid>'). Each rule function writes
-- its own audit row in the caller's transaction, so no client can act without a trace.
--
-- Least privilege besides: the issuer may no longer write organisation certificates of its choosing,
-- console sessions for anyone, or a CA's status (it could un-revoke a CA two people revoked); no service
-- role is a member of pg_monitor (replication state comes through narrow functions).

-- ---------------------------------------------------------------------------------------------------
-- Helpers.

-- The site whose database this is, as the audit log names it: the active one (only it takes writes).
CREATE FUNCTION fp_active_site() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT site FROM site_state WHERE role = 'active' ORDER BY epoch DESC, site LIMIT 1
$$;

CREATE FUNCTION fp_audit_write(p_actor text, p_action text, p_subject text, p_details jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO audit_events (site, actor, action, subject, details) VALUES (coalesce(fp_active_site(), 'a'), p_actor, p_action, p_subject, coalesce(p_details, '{}'))
$$;

-- The people behind a proof: its holder, the holder's name and role, who created the credential, and
-- the credential's public label. Anything else is AUTH_INVALID, a certificate CREDENTIAL_PROOF_REQUIRED.
DROP FUNCTION fp_credential_people(text);
CREATE FUNCTION fp_credential_people(p_proof text, OUT person_id uuid, OUT person_name text, OUT role text, OUT creator uuid, OUT credential text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE hash bytea;
BEGIN
  IF p_proof ~ '^token:[0-9a-f]{64}$' THEN
    hash := decode(substring(p_proof FROM 7), 'hex');
    SELECT p.id, p.name, p.role, t.created_by, 'token:' || t.id INTO person_id, person_name, role, creator, credential
      FROM api_tokens t JOIN people p ON p.id = t.person_id
     WHERE t.token_sha256 = hash AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND p.disabled_at IS NULL;
  ELSIF p_proof ~ '^session:[0-9a-f]{64}$' THEN
    hash := decode(substring(p_proof FROM 9), 'hex');
    SELECT p.id, p.name, p.role, t.created_by, 'token:' || t.id INTO person_id, person_name, role, creator, credential
      FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id JOIN people p ON p.id = s.person_id
     WHERE s.id_sha256 = hash AND s.ended_at IS NULL AND s.expires_at > now()
       AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND p.disabled_at IS NULL;
  ELSIF p_proof LIKE 'cert:%' THEN
    RAISE EXCEPTION 'CREDENTIAL_PROOF_REQUIRED: a client certificate authenticates you to the API, but the database cannot check it; approving, executing and managing people take your API token (or a console session signed in with it)';
  END IF;
  IF person_id IS NULL THEN
    RAISE EXCEPTION 'AUTH_INVALID: the credential is unknown, revoked or expired';
  END IF;
END $$;

-- ---------------------------------------------------------------------------------------------------
-- The approval rules, now on proofs, each writing its audit row.

CREATE OR REPLACE FUNCTION fp_approval_request(p_id uuid, p_action text, p_payload jsonb, p_summary text, p_credential text, p_ttl_seconds integer)
RETURNS SETOF approval_requests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record; r approval_requests;
BEGIN
  SELECT * INTO who FROM fp_credential_people(p_credential);
  IF NOT who.role = ANY (fp_dual_control_roles(p_action)) THEN
    RAISE EXCEPTION 'ROLE_FORBIDDEN: role % may not request %; needs %', who.role, p_action, array_to_string(fp_dual_control_roles(p_action), ' or ');
  END IF;
  INSERT INTO approval_requests (id, action, payload, summary, requested_by, requested_by_name, requested_by_person, requested_credential_creator, expires_at)
    VALUES (p_id, p_action, p_payload, p_summary, who.credential, who.person_name, who.person_id, who.creator, now() + make_interval(secs => p_ttl_seconds))
    RETURNING * INTO r;
  PERFORM fp_audit_write('person:' || who.person_name, 'approval.request', p_id::text,
    jsonb_build_object('action', p_action, 'summary', p_summary, 'credential', who.credential, 'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
  RETURN NEXT r;
END $$;

CREATE OR REPLACE FUNCTION fp_approval_approve(p_id uuid, p_credential text) RETURNS SETOF approval_requests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record; r approval_requests;
BEGIN
  SELECT * INTO r FROM approval_requests WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN RAISE EXCEPTION 'APPROVAL_NOT_FOUND: no approval request %', p_id; END IF;
  SELECT * INTO who FROM fp_credential_people(p_credential);
  IF NOT who.role = ANY (fp_dual_control_roles(r.action)) THEN
    RAISE EXCEPTION 'ROLE_FORBIDDEN: role % may not approve %; needs %', who.role, r.action, array_to_string(fp_dual_control_roles(r.action), ' or ');
  END IF;
  IF r.requested_by_person IS NULL THEN
    RAISE EXCEPTION 'APPROVAL_NOT_PENDING: approval request % was made before approvals named people; request it again', p_id;
  END IF;
  IF who.person_id = r.requested_by_person THEN
    RAISE EXCEPTION 'APPROVAL_SELF: % requested %; a second, distinct person must approve it', who.person_name, p_id;
  END IF;
  IF who.person_id = r.requested_credential_creator OR who.creator = r.requested_by_person OR (who.creator IS NOT NULL AND who.creator = r.requested_credential_creator) THEN
    RAISE EXCEPTION 'APPROVAL_SAME_PEOPLE: the approving and the requesting credentials were created by or for the same person; a second, distinct person must approve %', p_id;
  END IF;
  IF r.executed_at IS NOT NULL OR r.approved_at IS NOT NULL THEN
    RAISE EXCEPTION 'APPROVAL_NOT_PENDING: approval request % is already %', p_id, CASE WHEN r.executed_at IS NOT NULL THEN 'executed' ELSE 'approved' END;
  END IF;
  IF r.expires_at <= now() THEN
    RAISE EXCEPTION 'APPROVAL_EXPIRED: approval request % expired at %; request it again', p_id, r.expires_at;
  END IF;
  UPDATE approval_requests SET approved_by = who.credential, approved_by_name = who.person_name, approved_by_person = who.person_id, approved_credential_creator = who.creator, approved_at = now()
    WHERE id = p_id RETURNING * INTO r;
  PERFORM fp_audit_write('person:' || who.person_name, 'approval.approve', p_id::text, jsonb_build_object('action', r.action, 'requestedBy', r.requested_by_name, 'credential', who.credential));
  RETURN NEXT r;
END $$;

CREATE OR REPLACE FUNCTION fp_approval_claim(p_id uuid, p_action text, p_credential text) RETURNS SETOF approval_requests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record; r approval_requests; other_person uuid; other_creator uuid;
BEGIN
  SELECT * INTO r FROM approval_requests WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN RAISE EXCEPTION 'APPROVAL_NOT_FOUND: no approval request %', p_id; END IF;
  IF r.action <> p_action THEN RAISE EXCEPTION 'APPROVAL_ACTION_MISMATCH: approval request % is for %, not %', p_id, r.action, p_action; END IF;
  SELECT * INTO who FROM fp_credential_people(p_credential);
  IF r.executed_at IS NOT NULL THEN RAISE EXCEPTION 'APPROVAL_NOT_PENDING: approval request % was executed at %', p_id, r.executed_at; END IF;
  IF r.expires_at <= now() THEN RAISE EXCEPTION 'APPROVAL_EXPIRED: approval request % expired at % without being executed; request it again', p_id, r.expires_at; END IF;
  IF r.approved_at IS NULL THEN RAISE EXCEPTION 'APPROVAL_NOT_APPROVED: approval request % waits for a second person''s approval', p_id; END IF;
  IF who.person_id = r.requested_by_person THEN
    other_person := r.approved_by_person; other_creator := r.approved_credential_creator;
  ELSIF who.person_id = r.approved_by_person THEN
    other_person := r.requested_by_person; other_creator := r.requested_credential_creator;
  ELSE
    RAISE EXCEPTION 'APPROVAL_EXECUTOR_INVALID: only the requesting or the approving person may execute %', p_id;
  END IF;
  IF who.creator = other_person OR (who.creator IS NOT NULL AND who.creator = other_creator) OR who.person_id = other_creator THEN
    RAISE EXCEPTION 'APPROVAL_SAME_PEOPLE: the executing credential was created by or for the other party of %', p_id;
  END IF;
  UPDATE approval_requests SET executed_by = who.credential, executed_by_person = who.person_id, executed_by_name = who.person_name, executed_at = now()
    WHERE id = p_id RETURNING * INTO r;
  PERFORM fp_audit_write('person:' || who.person_name, 'approval.execute', p_id::text,
    jsonb_build_object('action', p_action, 'requestedBy', r.requested_by_name, 'approvedBy', r.approved_by_name, 'credential', who.credential));
  RETURN NEXT r;
END $$;

-- The claim given back (the operation failed; it may run again), and the outcome noted: both only by
-- the person who holds the claim, proven like every other step.
DROP FUNCTION fp_approval_release(uuid);
CREATE FUNCTION fp_approval_release(p_id uuid, p_credential text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record; n integer;
BEGIN
  SELECT * INTO who FROM fp_credential_people(p_credential);
  UPDATE approval_requests SET executed_by = NULL, executed_by_person = NULL, executed_by_name = NULL, executed_at = NULL
   WHERE id = p_id AND outcome IS NULL AND executed_by_person = who.person_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN RAISE EXCEPTION 'APPROVAL_EXECUTOR_INVALID: % holds no open claim on approval request %', who.person_name, p_id; END IF;
  PERFORM fp_audit_write('person:' || who.person_name, 'approval.release', p_id::text, jsonb_build_object('credential', who.credential));
END $$;

DROP FUNCTION fp_approval_outcome(uuid, jsonb);
CREATE FUNCTION fp_approval_outcome(p_id uuid, p_outcome jsonb, p_credential text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record;
BEGIN
  SELECT * INTO who FROM fp_credential_people(p_credential);
  UPDATE approval_requests SET outcome = p_outcome WHERE id = p_id AND executed_at IS NOT NULL AND outcome IS NULL AND executed_by_person = who.person_id;
END $$;

-- ---------------------------------------------------------------------------------------------------
-- People and credentials, on proofs, each writing its audit row.

CREATE OR REPLACE FUNCTION fp_person_create(p_id uuid, p_name text, p_role text, p_manufacturer text, p_actor_credential text, p_approval uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE actor record; a approval_requests;
BEGIN
  SELECT * INTO actor FROM fp_credential_people(p_actor_credential);
  IF actor.role <> 'administrator' THEN RAISE EXCEPTION 'ROLE_FORBIDDEN: only administrators create people'; END IF;
  IF fp_privileged(p_role) THEN
    SELECT * INTO a FROM approval_requests WHERE id = p_approval FOR UPDATE;
    IF NOT FOUND OR a.action <> 'person.create' OR a.executed_by_person IS DISTINCT FROM actor.person_id OR a.outcome IS NOT NULL
       OR a.payload->>'name' IS DISTINCT FROM p_name OR a.payload->>'role' IS DISTINCT FROM p_role THEN
      RAISE EXCEPTION 'APPROVAL_REQUIRED: creating % (a %) needs an approved person.create request for exactly that, executed by you', p_name, p_role;
    END IF;
  END IF;
  INSERT INTO people (id, name, role, manufacturer_id, created_by) VALUES (p_id, p_name, p_role, p_manufacturer, actor.person_id);
  PERFORM fp_audit_write('person:' || actor.person_name, 'person.create', p_id::text,
    jsonb_build_object('name', p_name, 'role', p_role, 'manufacturerId', p_manufacturer, 'approval', p_approval, 'credential', actor.credential));
END $$;

CREATE OR REPLACE FUNCTION fp_person_rescope(p_person uuid, p_role text, p_actor_credential text, p_approval uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE actor record; a approval_requests; before people;
BEGIN
  SELECT * INTO actor FROM fp_credential_people(p_actor_credential);
  IF actor.role <> 'administrator' THEN RAISE EXCEPTION 'ROLE_FORBIDDEN: only administrators re-scope people'; END IF;
  IF actor.person_id = p_person THEN RAISE EXCEPTION 'APPROVAL_SELF: nobody changes their own role'; END IF;
  SELECT * INTO a FROM approval_requests WHERE id = p_approval FOR UPDATE;
  IF NOT FOUND OR a.action <> 'person.rescope' OR a.executed_by_person IS DISTINCT FROM actor.person_id OR a.outcome IS NOT NULL
     OR a.payload->>'person' IS DISTINCT FROM p_person::text OR a.payload->>'role' IS DISTINCT FROM p_role THEN
    RAISE EXCEPTION 'APPROVAL_REQUIRED: re-scoping a person needs an approved person.rescope request for exactly that, executed by you';
  END IF;
  SELECT * INTO before FROM people WHERE id = p_person;
  UPDATE people SET role = p_role, manufacturer_id = NULL WHERE id = p_person;
  UPDATE api_tokens SET role = p_role, manufacturer_id = NULL WHERE person_id = p_person;
  PERFORM fp_audit_write('person:' || actor.person_name, 'person.rescope', p_person::text,
    jsonb_build_object('name', before.name, 'from', before.role, 'to', p_role, 'approval', p_approval, 'credential', actor.credential));
END $$;

CREATE OR REPLACE FUNCTION fp_token_create(p_id uuid, p_person uuid, p_name text, p_sha256 bytea, p_expires timestamptz, p_actor_credential text, p_approval uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE actor record; p people; a approval_requests;
BEGIN
  SELECT * INTO actor FROM fp_credential_people(p_actor_credential);
  IF actor.role <> 'administrator' THEN RAISE EXCEPTION 'ROLE_FORBIDDEN: only administrators create credentials'; END IF;
  SELECT * INTO p FROM people WHERE id = p_person AND disabled_at IS NULL;
  IF NOT FOUND THEN RAISE EXCEPTION 'PERSON_NOT_FOUND: no person %', p_person; END IF;
  IF fp_privileged(p.role) THEN
    SELECT * INTO a FROM approval_requests WHERE id = p_approval;
    IF NOT FOUND OR a.executed_by_person IS DISTINCT FROM actor.person_id OR a.outcome IS NOT NULL
       OR NOT ((a.action = 'credential.create' AND a.payload->>'person' = p.id::text) OR (a.action = 'person.create' AND a.payload->>'name' = p.name)) THEN
      RAISE EXCEPTION 'APPROVAL_REQUIRED: a credential for % (a %) needs an approved credential.create request for them, executed by you', p.name, p.role;
    END IF;
  END IF;
  INSERT INTO api_tokens (id, name, token_sha256, role, manufacturer_id, expires_at, person_id, created_by)
    VALUES (p_id, p_name, p_sha256, p.role, p.manufacturer_id, p_expires, p.id, actor.person_id);
  PERFORM fp_audit_write('person:' || actor.person_name, 'token.create', p_id::text,
    jsonb_build_object('person', p.name, 'role', p.role, 'approval', p_approval, 'credential', actor.credential));
END $$;

CREATE OR REPLACE FUNCTION fp_token_revoke(p_id uuid, p_actor_credential text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE actor record; n integer;
BEGIN
  SELECT * INTO actor FROM fp_credential_people(p_actor_credential);
  IF actor.role <> 'administrator' THEN RAISE EXCEPTION 'ROLE_FORBIDDEN: only administrators revoke credentials'; END IF;
  UPDATE api_tokens SET revoked_at = now() WHERE id = p_id AND revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 1 THEN PERFORM fp_audit_write('person:' || actor.person_name, 'token.revoke', p_id::text, jsonb_build_object('credential', actor.credential)); END IF;
  RETURN n = 1;
END $$;

-- ---------------------------------------------------------------------------------------------------
-- Console sessions: opened, found and ended through functions; nobody reads the cookie hashes.

CREATE FUNCTION fp_console_session_open(p_sha256 bytea, p_credential text, p_max_age_seconds integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record; cert organisation_certificates; token_ref uuid;
BEGIN
  IF p_credential LIKE 'cert:%' THEN
    -- The issuer terminated TLS and checked the chain; the database can only check that this is a live
    -- client certificate of a person. Such a session is no proof for the rule functions (above).
    SELECT * INTO cert FROM organisation_certificates
     WHERE serial = decode(lpad(substring(p_credential FROM 6), (length(substring(p_credential FROM 6)) + 1) / 2 * 2, '0'), 'hex')
       AND purpose = 'client' AND revoked_at IS NULL AND not_after > now() AND person_id IS NOT NULL;
    IF NOT FOUND THEN RAISE EXCEPTION 'AUTH_INVALID: the client certificate is unknown, revoked or expired'; END IF;
    INSERT INTO console_sessions (id_sha256, person_id, cert_serial, expires_at) VALUES (p_sha256, cert.person_id, cert.serial, now() + make_interval(secs => p_max_age_seconds));
  ELSE
    SELECT * INTO who FROM fp_credential_people(p_credential);
    IF who.credential NOT LIKE 'token:%' THEN RAISE EXCEPTION 'AUTH_INVALID: a console session is opened with an API token or a client certificate'; END IF;
    token_ref := substring(who.credential FROM 7)::uuid;
    INSERT INTO console_sessions (id_sha256, person_id, token_id, expires_at) VALUES (p_sha256, who.person_id, token_ref, now() + make_interval(secs => p_max_age_seconds));
  END IF;
END $$;

-- The principal behind a live, not idle session whose credential and person are still usable; touches it.
CREATE FUNCTION fp_console_session_find(p_sha256 bytea, p_idle_seconds integer)
RETURNS TABLE (person_id uuid, name text, role text, manufacturer_id text, token_id uuid, cert_serial bytea)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE console_sessions s SET last_seen_at = now()
    FROM people p
   WHERE s.id_sha256 = p_sha256 AND s.ended_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => p_idle_seconds)
     AND p.id = s.person_id AND p.disabled_at IS NULL
     AND (
       (s.token_id IS NOT NULL AND EXISTS (SELECT 1 FROM api_tokens k WHERE k.id = s.token_id AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())))
       OR (s.cert_serial IS NOT NULL AND EXISTS (SELECT 1 FROM organisation_certificates c WHERE c.serial = s.cert_serial AND c.revoked_at IS NULL AND c.not_after > now()))
     )
  RETURNING p.id, p.name, p.role, p.manufacturer_id, s.token_id, s.cert_serial
$$;

CREATE FUNCTION fp_console_session_end(p_sha256 bytea) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE console_sessions SET ended_at = now() WHERE id_sha256 = p_sha256 AND ended_at IS NULL
$$;

REVOKE ALL ON console_sessions FROM fleetpki_issuer, fleetpki_operator;
GRANT SELECT (person_id, token_id, cert_serial, created_at, last_seen_at, expires_at, ended_at) ON console_sessions TO fleetpki_issuer, fleetpki_operator;

-- ---------------------------------------------------------------------------------------------------
-- Organisation certificates the services record for themselves (CMP protection, audit keys): through a
-- function that takes no person and no role, so no service writes a client credential for anyone.
CREATE FUNCTION fp_service_certificate_record(p_serial bytea, p_purpose text, p_subject_dn text, p_key_id bytea, p_certificate bytea, p_not_after timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_purpose NOT IN ('cmp', 'audit') THEN
    RAISE EXCEPTION 'ROLE_FORBIDDEN: a service records only its own CMP or audit certificate, not a % certificate', p_purpose;
  END IF;
  INSERT INTO organisation_certificates (serial, purpose, subject_dn, key_id, certificate, not_after) VALUES (p_serial, p_purpose, p_subject_dn, p_key_id, p_certificate, p_not_after);
END $$;
REVOKE INSERT ON organisation_certificates FROM fleetpki_issuer, fleetpki_status;

-- ---------------------------------------------------------------------------------------------------
-- A CA's status: revoked only as the execution of an approved ca.revoke for it, and never back.
CREATE FUNCTION fp_ca_revoke(p_ca text, p_reason smallint, p_approval uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE a approval_requests;
BEGIN
  SELECT * INTO a FROM approval_requests WHERE id = p_approval;
  IF NOT FOUND OR a.action <> 'ca.revoke' OR a.executed_at IS NULL OR a.outcome IS NOT NULL OR a.payload->>'caId' IS DISTINCT FROM p_ca THEN
    RAISE EXCEPTION 'APPROVAL_REQUIRED: revoking CA % needs an approved ca.revoke request for it, being executed', p_ca;
  END IF;
  UPDATE cas SET status = 'revoked', revoked_at = coalesce(revoked_at, date_trunc('second', now())), revocation_reason = coalesce(revocation_reason, p_reason) WHERE id = p_ca;
END $$;
REVOKE UPDATE ON cas FROM fleetpki_issuer;

CREATE FUNCTION cas_revocation_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'revoked' AND NEW.status IS DISTINCT FROM 'revoked' THEN
    RAISE EXCEPTION 'CA_REVOKED: CA % was revoked at %; a revoked CA is never un-revoked (make a new one: ceremony new-ca)', OLD.id, OLD.revoked_at USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER cas_revocation_is_final BEFORE UPDATE ON cas FOR EACH ROW EXECUTE FUNCTION cas_revocation_is_final();

-- ---------------------------------------------------------------------------------------------------
-- Replication state without pg_monitor (which also reads every setting and every session's query).
CREATE FUNCTION fp_wal_receiver()
RETURNS TABLE (status text, age_ms float8, lag_bytes bigint, replay_lsn text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT (SELECT w.status::text FROM pg_stat_wal_receiver w),
         (SELECT (extract(epoch FROM clock_timestamp() - w.last_msg_receipt_time) * 1000)::float8 FROM pg_stat_wal_receiver w),
         pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
         pg_last_wal_replay_lsn()::text
$$;
REVOKE pg_monitor FROM fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;

-- ---------------------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION fp_active_site(), fp_audit_write(text, text, text, jsonb), fp_credential_people(text), fp_approval_release(uuid, text), fp_approval_outcome(uuid, jsonb, text),
  fp_console_session_open(bytea, text, integer), fp_console_session_find(bytea, integer), fp_console_session_end(bytea),
  fp_service_certificate_record(bytea, text, text, bytea, bytea, timestamptz), fp_ca_revoke(text, smallint, uuid), fp_wal_receiver() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_credential_people(text), fp_approval_release(uuid, text), fp_approval_outcome(uuid, jsonb, text) TO fleetpki_issuer, fleetpki_operator;
GRANT EXECUTE ON FUNCTION fp_credential_people(text) TO fleetpki_worker, fleetpki_status;
GRANT EXECUTE ON FUNCTION fp_console_session_open(bytea, text, integer), fp_console_session_find(bytea, integer), fp_console_session_end(bytea), fp_ca_revoke(text, smallint, uuid) TO fleetpki_issuer;
GRANT EXECUTE ON FUNCTION fp_service_certificate_record(bytea, text, text, bytea, bytea, timestamptz) TO fleetpki_issuer, fleetpki_status, fleetpki_operator;
GRANT EXECUTE ON FUNCTION fp_wal_receiver() TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
