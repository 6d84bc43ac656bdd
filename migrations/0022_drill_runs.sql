-- Issue 21: drill history for the console (and auditors): every failover, switchover and failback drill
-- leaves a row with its figures and its timeline (kill, promotion, acknowledgements), on the site that
-- is active afterwards (and, replicated, on its standby).
CREATE TABLE drill_runs (
  id           uuid PRIMARY KEY,
  kind         text NOT NULL CHECK (kind IN ('failover', 'switchover', 'failback')),
  from_site    text,
  to_site      text,
  finished_at  timestamptz NOT NULL DEFAULT now(),
  rto_s        numeric,
  rpo_lost     integer,
  report       jsonb NOT NULL
);
CREATE INDEX drill_runs_recent ON drill_runs (finished_at DESC);
GRANT SELECT ON drill_runs TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT INSERT ON drill_runs TO fleetpki_operator;
