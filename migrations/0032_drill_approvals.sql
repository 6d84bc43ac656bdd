-- Issue 33: a failover drill started over the API (test deployments, FLEETPKI_CONSOLE_DRILLS=on) kills
-- the active site, so it takes two administrators like a planned switchover: one requests
-- drill.failover, a second approves, one of them starts it with POST /v1/drills. One drill at a time is
-- an etcd lease (packages/consensus drill-lock.ts), not a row here: the drill outlives the database it
-- kills.
ALTER TABLE approval_requests DROP CONSTRAINT approval_requests_action_check;
ALTER TABLE approval_requests ADD CONSTRAINT approval_requests_action_check CHECK (action IN ('revocation.bulk', 'ca.revoke', 'master-key.rotate', 'site.switchover', 'drill.failover', 'person.create', 'person.rescope', 'credential.create'));

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
  END
$$;
