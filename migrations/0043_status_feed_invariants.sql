-- Values the OCSP responders trust are the database's to assign, not a writer's (an outside review of
-- issue 37). A holder of fleetpki_status could set one row's stored_seq to the bigint maximum and every
-- responder's feed (0042) would jump past all later rows; a holder of fleetpki_issuer could insert a
-- revocation without bumping the generation (a cached "good" kept being served), backdate it past the
-- responders' revocation cursor, or set the generation to the maximum so every later bump fails.

-- The feed position: assigned on every insert and update, whatever the statement says.
CREATE FUNCTION ocsp_responses_feed_position() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.stored_seq := nextval('ocsp_response_feed');
  RETURN NEW;
END $$;
CREATE TRIGGER ocsp_responses_feed_position BEFORE INSERT OR UPDATE ON ocsp_responses
  FOR EACH ROW EXECUTE FUNCTION ocsp_responses_feed_position();

-- A revocation's created_at is the transaction's time (the column's default), never a given one: the
-- responders' revocation watcher follows (created_at, serial).
CREATE FUNCTION revocations_created_now() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  NEW.created_at := now();
  RETURN NEW;
END $$;
CREATE TRIGGER revocations_created_now BEFORE INSERT ON revocations
  FOR EACH ROW EXECUTE FUNCTION revocations_created_now();

-- The generation moves by one in the transaction of every statement that inserted revocations (the
-- application no longer bumps it itself), and nobody else may write it.
CREATE FUNCTION revocations_bump_generation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM inserted_revocations) THEN
    UPDATE revocation_generation SET generation = generation + 1;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER revocations_bump_generation AFTER INSERT ON revocations
  REFERENCING NEW TABLE AS inserted_revocations
  FOR EACH STATEMENT EXECUTE FUNCTION revocations_bump_generation();
REVOKE UPDATE ON revocation_generation FROM fleetpki_issuer;
