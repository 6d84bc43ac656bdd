-- Dual control: the dangerous operations (bulk revocation, revoking a CA, rotating a master key, a
-- planned switchover) run only after a second, distinct officer approved the exact request. A row is
-- requested, then approved, then executed once; it expires if not executed in time. Status is derived
-- from the timestamps, so there is no status column to get out of step.
CREATE TABLE approval_requests (
  id                 uuid PRIMARY KEY,
  action             text NOT NULL CHECK (action IN ('revocation.bulk', 'ca.revoke', 'master-key.rotate', 'site.switchover')),
  payload            jsonb NOT NULL,
  summary            text NOT NULL,
  requested_by       text NOT NULL,
  requested_by_name  text NOT NULL,
  requested_at       timestamptz NOT NULL DEFAULT now(),
  expires_at         timestamptz NOT NULL,
  approved_by        text,
  approved_by_name   text,
  approved_at        timestamptz,
  executed_by        text,
  executed_at        timestamptz,
  outcome            jsonb,
  CHECK (approved_by IS NULL OR approved_by <> requested_by),
  CHECK (approved_by_name IS NULL OR approved_by_name <> requested_by_name),
  CHECK (executed_at IS NULL OR approved_at IS NOT NULL)
);
CREATE INDEX approval_requests_open ON approval_requests (requested_at) WHERE executed_at IS NULL;
