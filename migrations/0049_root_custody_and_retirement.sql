-- Issue 36, after review. Three rules the database keeps for the roots, whoever connects:
-- 1. Copying the root out of its HSM (ceremony root-custody) takes two custodians: ca.root-custody.
-- 2. A root is retired only by fp_root_retire (the operator role has no UPDATE on cas.status since
--    0028): only an active root that has a successor, no active CA under it and no active
--    predecessor (the oldest generation goes first); retirement is final.
-- 3. A root's certificate never changes (its links were checked against it), and neither does the
--    status of a retired root.
ALTER TABLE approval_requests DROP CONSTRAINT approval_requests_action_check;
ALTER TABLE approval_requests ADD CONSTRAINT approval_requests_action_check CHECK (action IN ('revocation.bulk', 'ca.revoke', 'master-key.rotate', 'site.switchover', 'drill.failover', 'person.create', 'person.rescope', 'credential.create', 'ca.root-rollover', 'ca.root-custody'));

CREATE OR REPLACE FUNCTION fp_dual_control_roles(p_action text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE p_action
    WHEN 'revocation.bulk' THEN ARRAY['revocation-officer', 'administrator']
    WHEN 'ca.revoke' THEN ARRAY['revocation-officer', 'administrator']
    WHEN 'master-key.rotate' THEN ARRAY['custodian']
    WHEN 'site.switchover' THEN ARRAY['administrator']
    WHEN 'drill.failover' THEN ARRAY['administrator']
    WHEN 'person.create' THEN ARRAY['administrator']
    WHEN 'person.rescope' THEN ARRAY['administrator']
    WHEN 'credential.create' THEN ARRAY['administrator']
    WHEN 'ca.root-rollover' THEN ARRAY['custodian']
    WHEN 'ca.root-custody' THEN ARRAY['custodian']
  END
$$;

CREATE FUNCTION fp_root_retire(p_root text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  r cas%ROWTYPE;
BEGIN
  SELECT * INTO r FROM cas WHERE id = p_root FOR UPDATE;
  IF NOT FOUND OR r.kind <> 'root' THEN RAISE EXCEPTION 'CA_NOT_FOUND: no root CA %', p_root; END IF;
  IF r.status <> 'active' THEN RAISE EXCEPTION 'CA_NOT_ACTIVE: root % is % already', p_root, r.status; END IF;
  IF NOT EXISTS (SELECT 1 FROM root_links WHERE old_root_id = p_root) THEN
    RAISE EXCEPTION 'CA_ROOT_CURRENT: root % is the current root: it is retired only once a rollover has replaced it', p_root;
  END IF;
  IF EXISTS (SELECT 1 FROM cas WHERE parent_id = p_root AND status = 'active') THEN
    RAISE EXCEPTION 'CA_ROOT_IN_USE: active CAs are still under root % (%): move them first (ceremony renew-ca)', p_root, (SELECT string_agg(id, ', ') FROM cas WHERE parent_id = p_root AND status = 'active');
  END IF;
  IF EXISTS (SELECT 1 FROM root_links l JOIN cas o ON o.id = l.old_root_id WHERE l.new_root_id = p_root AND o.status = 'active') THEN
    RAISE EXCEPTION 'CA_ROOT_IN_USE: root % has an active predecessor: retire the oldest generation first', p_root;
  END IF;
  UPDATE cas SET status = 'retired' WHERE id = p_root;
END
$$;
REVOKE ALL ON FUNCTION fp_root_retire(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_root_retire(text) TO fleetpki_operator;

CREATE FUNCTION cas_roots_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.kind = 'root' AND NEW.certificate IS DISTINCT FROM OLD.certificate THEN
    RAISE EXCEPTION 'CA_ROOT_FROZEN: the certificate of root % never changes (a new root is a rollover)', OLD.id;
  END IF;
  IF OLD.status = 'retired' AND NEW.status IS DISTINCT FROM OLD.status THEN
    RAISE EXCEPTION 'CA_ROOT_FROZEN: root % is retired; retirement is final', OLD.id;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER cas_roots_frozen BEFORE UPDATE ON cas FOR EACH ROW EXECUTE FUNCTION cas_roots_frozen();
