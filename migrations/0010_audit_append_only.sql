-- The audit log is append-only for everyone who does not own the table: rows can be inserted, and the
-- sealer may set chain_hash once (NULL -> value, nothing else changing); any other UPDATE, any DELETE
-- and TRUNCATE are refused. Disabling the triggers takes the table owner (a DBA, not a service), and
-- even then the hash chain and the checkpoint file outside the database show what was done.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.chain_hash IS NULL AND NEW.chain_hash IS NOT NULL
     AND (NEW.seq, NEW.at, NEW.site, NEW.actor, NEW.action, NEW.subject, NEW.details)
         IS NOT DISTINCT FROM (OLD.seq, OLD.at, OLD.site, OLD.actor, OLD.action, OLD.subject, OLD.details) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Seals are the chain's anchors: the same rule, no change at all once written.
CREATE FUNCTION audit_seals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_seals is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals
  FOR EACH ROW EXECUTE FUNCTION audit_seals_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
  FOR EACH STATEMENT EXECUTE FUNCTION audit_seals_append_only();
