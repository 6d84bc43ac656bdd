-- Identities are people, not tokens. A person (an officer, a custodian, an administrator, an auditor,
-- or a factory line's identity) has one role and may hold several credentials (API tokens, client
-- certificates). Dual control counts people: behind a credential stand its holder and whoever created
-- it (an administrator who mints a token could hold it), and the two steps of an approval must have no
-- one in common. These rules live here, in SECURITY DEFINER functions the services call, so a service
-- whose code is subverted still cannot approve for two people (it has no direct write on the tables).

CREATE TABLE people (
  id               uuid PRIMARY KEY,
  name             text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._@/-]{1,64}$'),
  role             text NOT NULL CHECK (role IN ('factory', 'revocation-officer', 'auditor', 'administrator', 'custodian')),
  manufacturer_id  text REFERENCES manufacturers (id),
  created_by       uuid REFERENCES people (id),          -- NULL: installation bootstrap or owner recovery
  created_at       timestamptz NOT NULL DEFAULT now(),
  disabled_at      timestamptz,
  CHECK ((role = 'factory') = (manufacturer_id IS NOT NULL))
);

-- Every existing credential gets its person: one per (name, role, manufacturer). A person has one role
-- and one manufacturer and a unique name, so a name used more than once becomes name/role[/manufacturer];
-- characters a person's name may not hold become '_', and a name that still collides gets a short hash.
CREATE TEMPORARY TABLE legacy_people ON COMMIT DROP AS
WITH kinds AS (
  SELECT DISTINCT name, role, manufacturer_id FROM api_tokens
  UNION SELECT DISTINCT coalesce(substring(subject_dn FROM 'CN=([^,]+)'), encode(serial, 'hex')), role, manufacturer_id FROM organisation_certificates WHERE purpose = 'client'
), named AS (
  SELECT name, role, manufacturer_id,
         left(regexp_replace(CASE WHEN count(*) OVER (PARTITION BY name) > 1 THEN name || '/' || role || coalesce('/' || manufacturer_id, '') ELSE name END, '[^A-Za-z0-9._@/-]', '_', 'g'), 57) AS candidate
    FROM kinds
)
SELECT gen_random_uuid() AS person_id, name, role, manufacturer_id,
       CASE WHEN count(*) OVER (PARTITION BY candidate) > 1 OR candidate = '' THEN candidate || '-' || left(md5(name || '|' || role || '|' || coalesce(manufacturer_id, '')), 6) ELSE candidate END AS person_name
  FROM named;
-- Only factory people belong to a manufacturer (a token of another role may have carried one).
INSERT INTO people (id, name, role, manufacturer_id) SELECT person_id, person_name, role, CASE WHEN role = 'factory' THEN manufacturer_id END FROM legacy_people;

ALTER TABLE api_tokens ADD COLUMN person_id uuid REFERENCES people (id);
ALTER TABLE api_tokens ADD COLUMN created_by uuid REFERENCES people (id);
UPDATE api_tokens t SET person_id = m.person_id FROM legacy_people m
 WHERE m.name = t.name AND m.role = t.role AND m.manufacturer_id IS NOT DISTINCT FROM t.manufacturer_id;
ALTER TABLE api_tokens ALTER COLUMN person_id SET NOT NULL;

ALTER TABLE organisation_certificates ADD COLUMN person_id uuid REFERENCES people (id);
ALTER TABLE organisation_certificates ADD COLUMN created_by uuid REFERENCES people (id);
UPDATE organisation_certificates c SET person_id = m.person_id FROM legacy_people m
 WHERE c.purpose = 'client' AND m.role = c.role AND m.manufacturer_id IS NOT DISTINCT FROM c.manufacturer_id
   AND m.name = coalesce(substring(c.subject_dn FROM 'CN=([^,]+)'), encode(c.serial, 'hex'));
ALTER TABLE organisation_certificates ADD CONSTRAINT organisation_certificates_client_person CHECK (purpose <> 'client' OR person_id IS NOT NULL);

-- Approvals record the person and the credential of each step; creating and re-scoping privileged
-- people are approvals too.
ALTER TABLE approval_requests DROP CONSTRAINT approval_requests_action_check;
ALTER TABLE approval_requests ADD CONSTRAINT approval_requests_action_check CHECK (action IN ('revocation.bulk', 'ca.revoke', 'master-key.rotate', 'site.switchover', 'person.create', 'person.rescope', 'credential.create'));
ALTER TABLE approval_requests ADD COLUMN requested_by_person uuid REFERENCES people (id);
ALTER TABLE approval_requests ADD COLUMN requested_credential_creator uuid REFERENCES people (id);
ALTER TABLE approval_requests ADD COLUMN approved_by_person uuid REFERENCES people (id);
ALTER TABLE approval_requests ADD COLUMN approved_credential_creator uuid REFERENCES people (id);
ALTER TABLE approval_requests ADD COLUMN executed_by_person uuid REFERENCES people (id);
ALTER TABLE approval_requests ADD COLUMN executed_by_name text;
ALTER TABLE approval_requests ADD CONSTRAINT approval_two_people CHECK (approved_by_person IS NULL OR approved_by_person <> requested_by_person);
UPDATE approval_requests a SET requested_by_person = t.person_id, requested_credential_creator = t.created_by FROM api_tokens t WHERE a.requested_by = t.id::text;
UPDATE approval_requests a SET approved_by_person = t.person_id, approved_credential_creator = t.created_by FROM api_tokens t WHERE a.approved_by = t.id::text;

-- Who revoked what, without approval, for the cumulative dual-control threshold per person.
ALTER TABLE revocations ADD COLUMN requested_by_person uuid REFERENCES people (id);
ALTER TABLE revocations ADD COLUMN approval_id uuid REFERENCES approval_requests (id);
CREATE INDEX revocations_unapproved_by_person ON revocations (requested_by_person, created_at) WHERE approval_id IS NULL;

-- ---------------------------------------------------------------------------------------------------
-- The functions. Errors are raised as "CODE: message"; the services map CODE to their stable error.

-- The people behind a credential ('token:<uuid>' or 'cert:<serial hex>'): its holder and its creator.
CREATE FUNCTION fp_credential_people(p_credential text, OUT person_id uuid, OUT person_name text, OUT role text, OUT creator uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_credential LIKE 'token:%' THEN
    SELECT p.id, p.name, p.role, t.created_by INTO person_id, person_name, role, creator
      FROM api_tokens t JOIN people p ON p.id = t.person_id
     WHERE t.id::text = substring(p_credential FROM 7) AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND p.disabled_at IS NULL;
  ELSIF p_credential LIKE 'cert:%' THEN
    SELECT p.id, p.name, p.role, c.created_by INTO person_id, person_name, role, creator
      FROM organisation_certificates c JOIN people p ON p.id = c.person_id
     WHERE c.serial = decode(lpad(substring(p_credential FROM 6), (length(substring(p_credential FROM 6)) + 1) / 2 * 2, '0'), 'hex')
       AND c.purpose = 'client' AND c.revoked_at IS NULL AND c.not_after > now() AND p.disabled_at IS NULL;
  END IF;
  IF person_id IS NULL THEN
    RAISE EXCEPTION 'AUTH_INVALID: the credential is unknown, revoked or expired';
  END IF;
END $$;

-- Who may request and approve each action (the same table as DUAL_CONTROL_ROLES in packages/ca).
CREATE FUNCTION fp_dual_control_roles(p_action text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE p_action
    WHEN 'revocation.bulk' THEN ARRAY['revocation-officer', 'administrator']
    WHEN 'ca.revoke' THEN ARRAY['revocation-officer', 'administrator']
    WHEN 'master-key.rotate' THEN ARRAY['custodian']
    WHEN 'site.switchover' THEN ARRAY['administrator']
    WHEN 'person.create' THEN ARRAY['administrator']
    WHEN 'person.rescope' THEN ARRAY['administrator']
    WHEN 'credential.create' THEN ARRAY['administrator']
  END
$$;

CREATE FUNCTION fp_approval_request(p_id uuid, p_action text, p_payload jsonb, p_summary text, p_credential text, p_ttl_seconds integer)
RETURNS SETOF approval_requests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE who record;
BEGIN
  SELECT * INTO who FROM fp_credential_people(p_credential);
  IF NOT who.role = ANY (fp_dual_control_roles(p_action)) THEN
    RAISE EXCEPTION 'ROLE_FORBIDDEN: role % may not request %; needs %', who.role, p_action, array_to_string(fp_dual_control_roles(p_action), ' or ');
  END IF;
  RETURN QUERY INSERT INTO approval_requests (id, action, payload, summary, requested_by, requested_by_name, requested_by_person, requested_credential_creator, expires_at)
    VALUES (p_id, p_action, p_payload, p_summary, p_credential, who.person_name, who.person_id, who.creator, now() + make_interval(secs => p_ttl_seconds))
    RETURNING *;
END $$;

-- The second person's approval. Nobody behind the requesting credential (its holder or its creator)
-- may stand behind the approving one.
CREATE FUNCTION fp_approval_approve(p_id uuid, p_credential text) RETURNS SETOF approval_requests
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
  RETURN QUERY UPDATE approval_requests SET approved_by = p_credential, approved_by_name = who.person_name, approved_by_person = who.person_id, approved_credential_creator = who.creator, approved_at = now()
    WHERE id = p_id RETURNING *;
END $$;

-- The claim to execute, committed before the operation runs. The executor is the requester or the
-- approver, and nobody behind the executing credential may stand behind the other party's.
CREATE FUNCTION fp_approval_claim(p_id uuid, p_action text, p_credential text) RETURNS SETOF approval_requests
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
  RETURN QUERY UPDATE approval_requests SET executed_by = p_credential, executed_by_person = who.person_id, executed_by_name = who.person_name, executed_at = now()
    WHERE id = p_id RETURNING *;
END $$;

-- The claim given back when the operation failed (it may run again); the outcome noted when it ran.
CREATE FUNCTION fp_approval_release(p_id uuid) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE approval_requests SET executed_by = NULL, executed_by_person = NULL, executed_by_name = NULL, executed_at = NULL WHERE id = p_id AND outcome IS NULL;
$$;
CREATE FUNCTION fp_approval_outcome(p_id uuid, p_outcome jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE approval_requests SET outcome = p_outcome WHERE id = p_id AND executed_at IS NOT NULL AND outcome IS NULL;
$$;

-- Roles whose holders can switch meters off, hand keys out or approve: creating such a person, or
-- moving someone into such a role, is itself an approval (person.create / person.rescope).
CREATE FUNCTION fp_privileged(p_role text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT p_role IN ('administrator', 'revocation-officer', 'custodian', 'auditor')
$$;

-- Creates a person. A privileged one only as the execution of an approved person.create naming them
-- (claimed, not yet used); a factory identity by an administrator alone.
CREATE FUNCTION fp_person_create(p_id uuid, p_name text, p_role text, p_manufacturer text, p_actor_credential text, p_approval uuid) RETURNS void
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
END $$;

-- Moves a person to another role: into a privileged role only as the execution of person.rescope.
CREATE FUNCTION fp_person_rescope(p_person uuid, p_role text, p_actor_credential text, p_approval uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE actor record; a approval_requests;
BEGIN
  SELECT * INTO actor FROM fp_credential_people(p_actor_credential);
  IF actor.role <> 'administrator' THEN RAISE EXCEPTION 'ROLE_FORBIDDEN: only administrators re-scope people'; END IF;
  IF actor.person_id = p_person THEN RAISE EXCEPTION 'APPROVAL_SELF: nobody changes their own role'; END IF;
  SELECT * INTO a FROM approval_requests WHERE id = p_approval FOR UPDATE;
  IF NOT FOUND OR a.action <> 'person.rescope' OR a.executed_by_person IS DISTINCT FROM actor.person_id OR a.outcome IS NOT NULL
     OR a.payload->>'person' IS DISTINCT FROM p_person::text OR a.payload->>'role' IS DISTINCT FROM p_role THEN
    RAISE EXCEPTION 'APPROVAL_REQUIRED: re-scoping a person needs an approved person.rescope request for exactly that, executed by you';
  END IF;
  UPDATE people SET role = p_role, manufacturer_id = NULL WHERE id = p_person;
  UPDATE api_tokens SET role = p_role, manufacturer_id = NULL WHERE person_id = p_person;
END $$;

-- A new API token for an existing person, by an administrator, who is recorded as its creator (an
-- approval it requests cannot be approved by them). For a privileged person it is the execution of an
-- approved credential.create (or of the person.create that made them): whoever holds a credential can
-- act as its person. The secret never reaches the database, only its SHA-256.
CREATE FUNCTION fp_token_create(p_id uuid, p_person uuid, p_name text, p_sha256 bytea, p_expires timestamptz, p_actor_credential text, p_approval uuid) RETURNS void
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
END $$;

CREATE FUNCTION fp_token_revoke(p_id uuid, p_actor_credential text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE actor record; n integer;
BEGIN
  SELECT * INTO actor FROM fp_credential_people(p_actor_credential);
  IF actor.role <> 'administrator' THEN RAISE EXCEPTION 'ROLE_FORBIDDEN: only administrators revoke credentials'; END IF;
  UPDATE api_tokens SET revoked_at = now() WHERE id = p_id AND revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n = 1;
END $$;

-- Authentication without read access to the token table: the service hands in the SHA-256 of what
-- it was given and gets the person back, never another token's hash.
CREATE FUNCTION fp_token_authenticate(p_sha256 bytea)
RETURNS TABLE (token_id uuid, person_id uuid, person_name text, role text, manufacturer_id text, expires_at timestamptz, revoked_at timestamptz, created_by uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT t.id, p.id, p.name, p.role, p.manufacturer_id, t.expires_at, coalesce(t.revoked_at, p.disabled_at), t.created_by
    FROM api_tokens t JOIN people p ON p.id = t.person_id WHERE t.token_sha256 = p_sha256
$$;

-- The CRL publisher's consistent view: revocations locked against new rows while shards are read.
-- LOCK ... IN SHARE MODE needs UPDATE, DELETE or TRUNCATE on the table, which no service may hold on
-- revocations; this function takes the lock for the caller's transaction instead.
CREATE FUNCTION fp_lock_revocations() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  LOCK TABLE revocations IN SHARE MODE;
END $$;

-- Revocations commit one at a time (SHARE ROW EXCLUSIVE conflicts with itself), so a later commit
-- always carries a later created_at (the OCSP feed's cursor never steps over one) and a person's
-- cumulative dual-control count is checked without a race. The issuer may take this lock, not more.
CREATE FUNCTION fp_lock_revocations_for_insert() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE;
END $$;
