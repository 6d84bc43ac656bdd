-- Issue 40 §3: no service can break the audit chain.
--
-- 0016 let every service role INSERT into audit_events with every column, so OVERRIDING SYSTEM VALUE
-- chose seq, at and chain_hash: a far-ahead, old-looking row was sealed and every later row stayed
-- unchained for good; fleetpki_status and fleetpki_operator could INSERT audit_seals, and a forged seal
-- far ahead stopped all sealing. Now services append only through fp_audit_append (the database assigns
-- seq and time; the row starts unchained), and only fp_audit_seal writes chain hashes and seals, after
-- checking that the seal continues the last one and chains every row inside it.

CREATE FUNCTION fp_audit_append(p_site text[], p_actor text[], p_action text[], p_subject text[], p_details jsonb[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO audit_events (site, actor, action, subject, details)
  SELECT s, a, x, j, coalesce(d, '{}') FROM unnest(p_site, p_actor, p_action, p_subject, p_details) AS t(s, a, x, j, d)
$$;

-- A seal: the chain hashes of rows p_seqs (ascending) and the seal at the last of them. It must start
-- after the last seal and leave out no row between that seal and its end (a row still in an open
-- transaction is invisible here; the sealer's settle time is for those).
CREATE FUNCTION fp_audit_seal(p_seqs bigint[], p_hashes bytea[], p_key_id bytea, p_signature bytea) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE n integer := coalesce(array_length(p_seqs, 1), 0); last_seq bigint; skipped bigint; chained integer;
BEGIN
  IF n = 0 THEN RETURN; END IF;
  IF coalesce(array_length(p_hashes, 1), 0) <> n THEN RAISE EXCEPTION 'AUDIT_SEAL_INVALID: % rows and % chain hashes', n, coalesce(array_length(p_hashes, 1), 0); END IF;
  PERFORM pg_advisory_xact_lock(hashtext('fleetpki-audit-seal'));
  SELECT coalesce(max(seq), 0) INTO last_seq FROM audit_seals;
  IF p_seqs[1] <= last_seq THEN
    RAISE EXCEPTION 'AUDIT_SEAL_INVALID: the seal starts at seq %, not after the last seal (seq %)', p_seqs[1], last_seq;
  END IF;
  IF EXISTS (SELECT 1 FROM generate_subscripts(p_seqs, 1) AS i WHERE i > 1 AND p_seqs[i] <= p_seqs[i - 1]) THEN
    RAISE EXCEPTION 'AUDIT_SEAL_INVALID: the rows of a seal are in ascending seq order';
  END IF;
  SELECT min(e.seq) INTO skipped FROM audit_events e WHERE e.seq > last_seq AND e.seq <= p_seqs[n] AND e.seq <> ALL (p_seqs);
  IF skipped IS NOT NULL THEN
    RAISE EXCEPTION 'AUDIT_SEAL_GAP: row % lies between the last seal (seq %) and this one (seq %) but is not chained in it', skipped, last_seq, p_seqs[n];
  END IF;
  UPDATE audit_events e SET chain_hash = t.h FROM unnest(p_seqs, p_hashes) AS t(s, h) WHERE e.seq = t.s AND e.chain_hash IS NULL;
  GET DIAGNOSTICS chained = ROW_COUNT;
  IF chained <> n THEN RAISE EXCEPTION 'AUDIT_SEAL_INVALID: % of the % rows to seal are missing or already chained', n - chained, n; END IF;
  INSERT INTO audit_seals (seq, chain_hash, rows, key_id, signature) VALUES (p_seqs[n], p_hashes[n], n, p_key_id, p_signature);
END $$;

-- The group-commit functions of 0024/0025 write their audit rows themselves; they ran with the caller's
-- rights, which no longer include INSERT on audit_events. They run as the owner now (their grants stay
-- with the issuer and the workers, and what they write is fixed by their text).
ALTER FUNCTION fp_record_intents(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], text[], text[], timestamptz[], uuid, int) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION fp_store_certificates(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], timestamptz[], timestamptz[], int[]) SECURITY DEFINER SET search_path = public, pg_temp;

REVOKE INSERT ON audit_events FROM fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
REVOKE UPDATE ON audit_events FROM fleetpki_status, fleetpki_operator;
REVOKE INSERT ON audit_seals FROM fleetpki_status, fleetpki_operator;
REVOKE ALL ON FUNCTION fp_audit_append(text[], text[], text[], text[], jsonb[]), fp_audit_seal(bigint[], bytea[], bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_audit_append(text[], text[], text[], text[], jsonb[]) TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT EXECUTE ON FUNCTION fp_audit_seal(bigint[], bytea[], bytea, bytea) TO fleetpki_status, fleetpki_operator;
