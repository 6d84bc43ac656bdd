-- Issue 35: restore drills (a backup restored into a scratch cluster, what it gave back) are recorded
-- beside the site drills, and so are disaster drills (both sites' data rebuilt from the repository).
ALTER TABLE drill_runs DROP CONSTRAINT drill_runs_kind_check;
ALTER TABLE drill_runs ADD CONSTRAINT drill_runs_kind_check CHECK (kind IN ('failover', 'switchover', 'failback', 'restore', 'disaster'));
