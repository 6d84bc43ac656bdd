-- Issue 33 §2, last bullet: the two-administrator checks of `sites unprotect` and `sites failover --force`
-- lived in the CLI's process only, and anyone who could write to etcd set the keys directly. etcd now
-- has authentication (packages/consensus/src/etcd-auth.ts): only the site agents may write `unprotected`
-- or revoke a candidacy's lease. The CLI records the decision here, through this rule function (proofs of
-- possession of two distinct administrators' credentials, as 0026/0028), then asks in etcd
-- (orders/<id>); the agent that must act reads the row from its own database and acts only on a row
-- that exists, names the same action, is fresh and was not executed yet.

CREATE TABLE site_orders (
  id uuid PRIMARY KEY,
  action text NOT NULL CHECK (action IN ('site.unprotect', 'site.protect', 'site.failover')),
  payload jsonb NOT NULL DEFAULT '{}',
  -- Who decided: person names, and the credentials' public labels ('token:<id>').
  people text[] NOT NULL,
  credentials text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set by the executing agent (its owner's connection), where it can write: on the primary.
  executed_at timestamptz,
  outcome jsonb
);

REVOKE ALL ON site_orders FROM PUBLIC;
-- The CLI shows what became of an order; nobody but the rule function inserts, only the agent updates.
GRANT SELECT ON site_orders TO fleetpki_operator;

-- Orders for the unsafe directions take two administrators with nobody in common; restoring protection
-- takes one (it was one before; the agent makes the standby eligible only once it has caught up).
CREATE FUNCTION fp_site_order(p_id uuid, p_action text, p_payload jsonb, p_proof1 text, p_proof2 text) RETURNS SETOF site_orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE first record; second record; second_name text; second_credential text; r site_orders;
BEGIN
  IF p_action NOT IN ('site.unprotect', 'site.protect', 'site.failover') THEN
    RAISE EXCEPTION 'SITE_ORDER_INVALID: no site order %', p_action;
  END IF;
  SELECT * INTO first FROM fp_credential_people(p_proof1);
  IF first.role <> 'administrator' THEN
    RAISE EXCEPTION 'ROLE_FORBIDDEN: % is for administrators; the credential is a %''s', p_action, first.role;
  END IF;
  IF p_action <> 'site.protect' OR p_proof2 IS NOT NULL THEN
    IF p_proof2 IS NULL THEN
      RAISE EXCEPTION 'DUAL_CONTROL_REQUIRED: % takes two administrators together', p_action;
    END IF;
    SELECT * INTO second FROM fp_credential_people(p_proof2);
    IF second.role <> 'administrator' THEN
      RAISE EXCEPTION 'ROLE_FORBIDDEN: % is for administrators; the second credential is a %''s', p_action, second.role;
    END IF;
    IF first.person_id = second.person_id OR fp_people_behind(first.person_id, first.creator) && fp_people_behind(second.person_id, second.creator) THEN
      RAISE EXCEPTION 'APPROVAL_SAME_PEOPLE: the two credentials have someone in common (a holder, or who created them or their holders); % takes two distinct administrators', p_action;
    END IF;
    second_name := second.person_name;
    second_credential := second.credential;
  END IF;
  INSERT INTO site_orders (id, action, payload, people, credentials)
    VALUES (p_id, p_action, coalesce(p_payload, '{}'),
            array_remove(ARRAY[first.person_name, second_name], NULL), array_remove(ARRAY[first.credential, second_credential], NULL))
    RETURNING * INTO r;
  PERFORM fp_audit_write(array_to_string(ARRAY(SELECT 'person:' || n FROM unnest(r.people) AS n), ' + '), 'site.order', p_id::text,
                         jsonb_build_object('action', p_action, 'payload', r.payload, 'credentials', to_jsonb(r.credentials)));
  RETURN NEXT r;
END $$;

REVOKE ALL ON FUNCTION fp_site_order(uuid, text, jsonb, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_site_order(uuid, text, jsonb, text, text) TO fleetpki_operator;

-- Its audit rows are the rule function's alone (as 0028 §6 for the approvals').
CREATE OR REPLACE FUNCTION fp_audit_append(p_site text[], p_actor text[], p_action text[], p_subject text[], p_details jsonb[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE reserved text;
BEGIN
  SELECT a INTO reserved FROM unnest(p_action) AS a
   WHERE a IN ('approval.request', 'approval.approve', 'approval.execute', 'approval.release', 'person.create', 'person.rescope', 'token.create', 'token.revoke', 'site.order') LIMIT 1;
  IF reserved IS NOT NULL THEN
    RAISE EXCEPTION 'AUDIT_ACTION_RESERVED: % rows are written by the database''s rule functions only', reserved;
  END IF;
  INSERT INTO audit_events (site, actor, action, subject, details)
  SELECT s, a, x, j, coalesce(d, '{}') FROM unnest(p_site, p_actor, p_action, p_subject, p_details) AS t(s, a, x, j, d);
END $$;
