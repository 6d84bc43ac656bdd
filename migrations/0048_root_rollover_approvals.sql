-- Issue 36: a root rollover replaces the anchor every meter's firmware holds, so it takes two
-- custodians like a master-key rotation: one requests ca.root-rollover (the new root's id and name),
-- a second approves, one of them runs `ceremony root-rollover --approval <id>` with the root's HSM.
ALTER TABLE approval_requests DROP CONSTRAINT approval_requests_action_check;
ALTER TABLE approval_requests ADD CONSTRAINT approval_requests_action_check CHECK (action IN ('revocation.bulk', 'ca.revoke', 'master-key.rotate', 'site.switchover', 'drill.failover', 'person.create', 'person.rescope', 'credential.create', 'ca.root-rollover'));

-- Who may request and approve each action (the same table as DUAL_CONTROL_ROLES in packages/ca).
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
  END
$$;
