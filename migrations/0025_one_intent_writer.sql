-- One intent writer for online enrolment and batch chunks (issue 18): fp_record_intents now also takes
-- a chunk's intents (batch, chunk number, each certificate's notBefore), so the rules every intent obeys
-- live in one statement: the device is recorded first (with its batch, when it came in one), an intent
-- counts only if the device is the named manufacturer's (looked up per intent, never joined: see 0024),
-- and one live intent per (device, key role, profile) wins. (The join's cost, which 0024 points to: on
-- an installation whose devices held 23k rows of two other manufacturers, PostgreSQL chose a hash join
-- over a full scan of devices for every chunk, 101 sequential scans reading 7.3M rows in a 100k batch,
-- the primary at 1,086 core-us per certificate against 121 with the lookup.) Online intents are
-- audited one by one with their actor; a chunk's are audited once, by its batch.chunk.intents event (a
-- million rows otherwise).
DROP FUNCTION fp_record_intents(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], text[], text[]);

CREATE FUNCTION fp_record_intents(p_site text, p_actor text[], p_serial bytea[], p_ca_id text[], p_eui64 bytea[], p_key_role text[], p_profile text[], p_tbs bytea[], p_manufacturer text[], p_device_type text[], p_not_before timestamptz[], p_batch_id uuid, p_chunk_no int)
RETURNS SETOF bytea LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO devices (eui64, manufacturer_id, device_type, batch_id)
    SELECT t.eui64, t.manufacturer_id, t.device_type, p_batch_id FROM unnest(p_eui64, p_manufacturer, p_device_type) AS t(eui64, manufacturer_id, device_type)
    ON CONFLICT (eui64) DO NOTHING;
  RETURN QUERY
  WITH t AS (
    SELECT * FROM unnest(p_serial, p_ca_id, p_eui64, p_key_role, p_profile, p_tbs, p_manufacturer, p_actor, p_not_before) AS t(serial, ca_id, eui64, key_role, profile, tbs, manufacturer_id, actor, not_before)
  ), ins AS (
    INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, site, batch_id, chunk_no, not_before)
    SELECT t.serial, t.ca_id, t.eui64, t.key_role, t.profile, t.tbs, p_site, p_batch_id, p_chunk_no, t.not_before FROM t
     WHERE (SELECT d.manufacturer_id FROM devices d WHERE d.eui64 = t.eui64) = t.manufacturer_id
    ON CONFLICT (eui64, key_role, profile) WHERE active DO NOTHING
    RETURNING issuance_intents.serial
  ), audited AS (
    INSERT INTO audit_events (site, actor, action, subject, details)
    SELECT p_site, t.actor, 'issuance.intent', encode(t.serial, 'hex'),
           jsonb_build_object('eui64', upper(encode(t.eui64, 'hex')), 'keyRole', t.key_role, 'profile', t.profile, 'tbsSha256', encode(t.tbs, 'hex'))
      FROM ins JOIN t ON t.serial = ins.serial
     WHERE p_batch_id IS NULL
  )
  SELECT ins.serial FROM ins;
END $$;

REVOKE ALL ON FUNCTION fp_record_intents(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], text[], text[], timestamptz[], uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_record_intents(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], text[], text[], timestamptz[], uuid, int) TO fleetpki_issuer, fleetpki_worker;
