-- Whether the primary can commit now: with synchronous_standby_names set, a commit waits until a
-- synchronous standby has applied it, and with none connected it waits for ever. The services ask this
-- before they write (and /readyz shows it), so a write answers 503 STANDBY_UNAVAILABLE with Retry-After
-- instead of hanging. pg_stat_replication shows its details to privileged roles only; this function
-- (the owner's) tells the service roles exactly this one fact.
-- reply_age_ms: since the synchronous standby last answered (it reports every second,
-- wal_receiver_status_interval). A standby host that froze or was cut off keeps its walsender "streaming"
-- until wal_sender_timeout; its silence tells sooner.
CREATE FUNCTION fp_sync_standby(OUT required text, OUT connected boolean, OUT reply_age_ms float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT current_setting('synchronous_standby_names'),
         EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')),
         (SELECT extract(epoch FROM clock_timestamp() - max(reply_time)) * 1000 FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum'))
$$;
REVOKE ALL ON FUNCTION fp_sync_standby() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_sync_standby() TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
