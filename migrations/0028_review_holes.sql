-- What an outside review of 0026/0027 found still open to a holder of a database role (issue 33 §2,
-- issue 40 §3). Each is tried by test/database-roles.test.ts or test/credential-proofs.test.ts.

-- 1. The CLI's role could revoke a CA by hand (0016 granted it UPDATE of cas.status), and the trigger of
--    0026 then made one person's change final. A CA is revoked only by fp_ca_revoke, executing an
--    approved ca.revoke; the operator keeps what renew-ca needs.
REVOKE UPDATE (status, revoked_at, revocation_reason) ON cas FROM fleetpki_operator;

-- 2. "Nobody in common" followed credentials one creator deep: an administrator who had a second
--    administrator created (and minted their token), then a third through the second, approved her own
--    requests as the third. Now everyone behind a credential counts: its holder, whoever created the
--    credential, and whoever created each of them, up the chain.
CREATE FUNCTION fp_people_behind(p_person uuid, p_creator uuid) RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH RECURSIVE chain(id, depth) AS (
    SELECT x, 0 FROM unnest(ARRAY[p_person, p_creator]) AS x WHERE x IS NOT NULL
    UNION
    SELECT p.created_by, c.depth + 1 FROM people p JOIN chain c ON p.id = c.id WHERE p.created_by IS NOT NULL AND c.depth < 64
  )
  SELECT coalesce(array_agg(DISTINCT id), '{}') FROM chain
$$;

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
  IF fp_people_behind(who.person_id, who.creator) && fp_people_behind(r.requested_by_person, r.requested_credential_creator) THEN
    RAISE EXCEPTION 'APPROVAL_SAME_PEOPLE: the approving and the requesting credentials have someone in common (a holder, or who created them or their holders); a second, distinct person must approve %', p_id;
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
  IF fp_people_behind(who.person_id, who.creator) && fp_people_behind(other_person, other_creator) THEN
    RAISE EXCEPTION 'APPROVAL_SAME_PEOPLE: the executing credential has someone in common with the other party of %', p_id;
  END IF;
  UPDATE approval_requests SET executed_by = who.credential, executed_by_person = who.person_id, executed_by_name = who.person_name, executed_at = now()
    WHERE id = p_id RETURNING * INTO r;
  PERFORM fp_audit_write('person:' || who.person_name, 'approval.execute', p_id::text,
    jsonb_build_object('action', p_action, 'requestedBy', r.requested_by_name, 'approvedBy', r.approved_by_name, 'credential', who.credential));
  RETURN NEXT r;
END $$;

-- 3. An approval's lifetime was the caller's choice (a request valid for ten years): bounded here.
CREATE OR REPLACE FUNCTION fp_approval_request(p_id uuid, p_action text, p_payload jsonb, p_summary text, p_credential text, p_ttl_seconds integer)
RETURNS SETOF approval_requests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record; r approval_requests;
BEGIN
  SELECT * INTO who FROM fp_credential_people(p_credential);
  IF NOT who.role = ANY (fp_dual_control_roles(p_action)) THEN
    RAISE EXCEPTION 'ROLE_FORBIDDEN: role % may not request %; needs %', who.role, p_action, array_to_string(fp_dual_control_roles(p_action), ' or ');
  END IF;
  IF p_ttl_seconds IS NULL OR p_ttl_seconds < 60 OR p_ttl_seconds > 7 * 86400 THEN
    RAISE EXCEPTION 'APPROVAL_TTL_INVALID: an approval request lives between a minute and seven days, not % seconds', p_ttl_seconds;
  END IF;
  INSERT INTO approval_requests (id, action, payload, summary, requested_by, requested_by_name, requested_by_person, requested_credential_creator, expires_at)
    VALUES (p_id, p_action, p_payload, p_summary, who.credential, who.person_name, who.person_id, who.creator, now() + make_interval(secs => p_ttl_seconds))
    RETURNING * INTO r;
  PERFORM fp_audit_write('person:' || who.person_name, 'approval.request', p_id::text,
    jsonb_build_object('action', p_action, 'summary', p_summary, 'credential', who.credential, 'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
  RETURN NEXT r;
END $$;

-- 4. A person.create approval for "carol, auditor" minted a token for an existing administrator called
--    carol: the person must be the one that approval created (its name and role, created by the
--    executor after the approval was executed).
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
       OR NOT (
         (a.action = 'credential.create' AND a.payload->>'person' = p.id::text)
         OR (a.action = 'person.create' AND a.payload->>'name' = p.name AND a.payload->>'role' = p.role AND p.created_by = actor.person_id AND p.created_at >= a.executed_at)
       ) THEN
      RAISE EXCEPTION 'APPROVAL_REQUIRED: a credential for % (a %) needs an approved credential.create request for them, executed by you', p.name, p.role;
    END IF;
  END IF;
  INSERT INTO api_tokens (id, name, token_sha256, role, manufacturer_id, expires_at, person_id, created_by)
    VALUES (p_id, p_name, p_sha256, p.role, p.manufacturer_id, p_expires, p.id, actor.person_id);
  PERFORM fp_audit_write('person:' || actor.person_name, 'token.create', p_id::text,
    jsonb_build_object('person', p.name, 'role', p.role, 'approval', p_approval, 'credential', actor.credential));
END $$;

-- 5. fp_audit_seal stored the caller's chain hashes as given: a sealer role could chain rows with
--    random hashes and every later verification reported them "modified". The function now computes
--    each row's hash itself (the canonical form of packages/ca/src/audit/audit-chain.ts: a JSON array of
--    seq, at, site, actor, action, subject and details as PostgreSQL's text, SHA-256 over the previous
--    hash and it) and refuses a given hash that differs; once seals are signed, an unsigned one is refused.
CREATE OR REPLACE FUNCTION fp_audit_seal(p_seqs bigint[], p_hashes bytea[], p_key_id bytea, p_signature bytea) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE n integer := coalesce(array_length(p_seqs, 1), 0); last_seq bigint; previous bytea; skipped bigint; chained integer; e audit_events; computed bytea;
BEGIN
  IF n = 0 THEN RETURN; END IF;
  IF coalesce(array_length(p_hashes, 1), 0) <> n THEN RAISE EXCEPTION 'AUDIT_SEAL_INVALID: % rows and % chain hashes', n, coalesce(array_length(p_hashes, 1), 0); END IF;
  PERFORM pg_advisory_xact_lock(hashtext('fleetpki-audit-seal'));
  SELECT seq, chain_hash INTO last_seq, previous FROM audit_seals ORDER BY seq DESC LIMIT 1;
  last_seq := coalesce(last_seq, 0);
  previous := coalesce(previous, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
  IF p_signature IS NULL AND EXISTS (SELECT 1 FROM audit_seals WHERE signature IS NOT NULL) THEN
    RAISE EXCEPTION 'AUDIT_SEAL_UNSIGNED: seals are signed by the site''s audit key since seq %; an unsigned seal is refused', (SELECT min(seq) FROM audit_seals WHERE signature IS NOT NULL);
  END IF;
  IF p_seqs[1] <= last_seq THEN
    RAISE EXCEPTION 'AUDIT_SEAL_INVALID: the seal starts at seq %, not after the last seal (seq %)', p_seqs[1], last_seq;
  END IF;
  IF EXISTS (SELECT 1 FROM generate_subscripts(p_seqs, 1) AS i WHERE i > 1 AND p_seqs[i] <= p_seqs[i - 1]) THEN
    RAISE EXCEPTION 'AUDIT_SEAL_INVALID: the rows of a seal are in ascending seq order';
  END IF;
  SELECT min(x.seq) INTO skipped FROM audit_events x WHERE x.seq > last_seq AND x.seq <= p_seqs[n] AND x.seq <> ALL (p_seqs);
  IF skipped IS NOT NULL THEN
    RAISE EXCEPTION 'AUDIT_SEAL_GAP: row % lies between the last seal (seq %) and this one (seq %) but is not chained in it', skipped, last_seq, p_seqs[n];
  END IF;
  FOR i IN 1 .. n LOOP
    SELECT * INTO e FROM audit_events WHERE seq = p_seqs[i] AND chain_hash IS NULL;
    IF NOT FOUND THEN RAISE EXCEPTION 'AUDIT_SEAL_INVALID: row % is missing or already chained', p_seqs[i]; END IF;
    computed := sha256(previous || convert_to('[' || to_json(e.seq::text)::text || ',' || to_json(e.at::text)::text || ',' || to_json(e.site)::text || ',' || to_json(e.actor)::text || ','
      || to_json(e.action)::text || ',' || coalesce(to_json(e.subject)::text, 'null') || ',' || to_json(e.details::text)::text || ']', 'UTF8'));
    IF computed <> p_hashes[i] THEN RAISE EXCEPTION 'AUDIT_SEAL_INVALID: the chain hash given for row % does not match its content', p_seqs[i]; END IF;
    previous := computed;
  END LOOP;
  UPDATE audit_events x SET chain_hash = t.h FROM unnest(p_seqs, p_hashes) AS t(s, h) WHERE x.seq = t.s AND x.chain_hash IS NULL;
  GET DIAGNOSTICS chained = ROW_COUNT;
  IF chained <> n THEN RAISE EXCEPTION 'AUDIT_SEAL_INVALID: % of the % rows to seal are missing or already chained', n - chained, n; END IF;
  INSERT INTO audit_seals (seq, chain_hash, rows, key_id, signature) VALUES (p_seqs[n], p_hashes[n], n, p_key_id, p_signature);
END $$;

-- 6. Any service could append rows that only the rule functions write ("approval.approve by alice"):
--    those actions are theirs alone.
CREATE OR REPLACE FUNCTION fp_audit_append(p_site text[], p_actor text[], p_action text[], p_subject text[], p_details jsonb[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE reserved text;
BEGIN
  SELECT a INTO reserved FROM unnest(p_action) AS a
   WHERE a IN ('approval.request', 'approval.approve', 'approval.execute', 'approval.release', 'person.create', 'person.rescope', 'token.create', 'token.revoke') LIMIT 1;
  IF reserved IS NOT NULL THEN
    RAISE EXCEPTION 'AUDIT_ACTION_RESERVED: % rows are written by the database''s rule functions only', reserved;
  END IF;
  INSERT INTO audit_events (site, actor, action, subject, details)
  SELECT s, a, x, j, coalesce(d, '{}') FROM unnest(p_site, p_actor, p_action, p_subject, p_details) AS t(s, a, x, j, d);
END $$;

-- 7. The CLI's role could set a revoked client certificate's revoked_at back to NULL, and anyone with
--    UPDATE on crls could put an older CRL back (a revoked meter missing from it). Both only move forward.
CREATE FUNCTION organisation_certificate_revocation_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
    RAISE EXCEPTION 'CERTIFICATE_REVOKED: organisation certificate % was revoked at %; a revocation is final', encode(OLD.serial, 'hex'), OLD.revoked_at USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER organisation_certificate_revocation_is_final BEFORE UPDATE ON organisation_certificates FOR EACH ROW EXECUTE FUNCTION organisation_certificate_revocation_is_final();

CREATE FUNCTION crls_only_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The number only: thisUpdate comes from the publishing host's clock, which may differ between sites.
  IF NEW.crl_number < OLD.crl_number THEN
    RAISE EXCEPTION 'CRL_BACKWARDS: CRL % of %/% may not be replaced by an older one (number %, thisUpdate %)', OLD.crl_number, OLD.ca_id, OLD.shard, NEW.crl_number, NEW.this_update USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER crls_only_forward BEFORE UPDATE ON crls FOR EACH ROW EXECUTE FUNCTION crls_only_forward();

-- 8. A transaction of the status responder or the CLI left open while holding fp_lock_revocations held
--    every revocation back for as long as it stayed open: such sessions end after 10 s idle in a
--    transaction (neither role's code leaves a transaction idle; revocation writers give up waiting for
--    the lock after 30 s with a clear error, REVOCATIONS_BUSY).
ALTER ROLE fleetpki_status SET idle_in_transaction_session_timeout = '10s';
ALTER ROLE fleetpki_operator SET idle_in_transaction_session_timeout = '10s';

REVOKE ALL ON FUNCTION fp_people_behind(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_people_behind(uuid, uuid) TO fleetpki_issuer, fleetpki_operator;

-- 9. The console's overview (issuer role) read pg_stat_replication, whose columns a role outside
--    pg_monitor sees as NULL since 0026: the standbys as the primary sees them, through a function.
CREATE FUNCTION fp_replication_standbys()
RETURNS TABLE (application_name text, state text, sync_state text, lag_bytes bigint, lag_s float8, reply_s float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT r.application_name::text, r.state::text, r.sync_state::text,
         pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint,
         extract(epoch FROM r.replay_lag)::float8,
         extract(epoch FROM clock_timestamp() - r.reply_time)::float8
    FROM pg_stat_replication r ORDER BY r.application_name
$$;
REVOKE ALL ON FUNCTION fp_replication_standbys() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_replication_standbys() TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
