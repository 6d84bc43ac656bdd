-- Online enrolment commits a group of concurrent requests' intents, and later their certificates, in
-- one statement each: one round trip and one implicit transaction, where it took five (BEGIN, devices,
-- intents, audit, COMMIT). Each statement inside a PL/pgSQL function takes a new snapshot (READ
-- COMMITTED), so the rules are the same as the five statements had: an intent sees the devices row the
-- statement before inserted, or another transaction committed meanwhile. Both run with the caller's
-- rights (the issuer role's grants on these tables).

-- Records the intents whose device is (now) the manufacturer's and whose (device, role, profile) has no
-- live intent; audits each with its own actor. Returns the serials recorded.
CREATE FUNCTION fp_record_intents(p_site text, p_actor text[], p_serial bytea[], p_ca_id text[], p_eui64 bytea[], p_key_role text[], p_profile text[], p_tbs bytea[], p_manufacturer text[], p_device_type text[])
RETURNS SETOF bytea LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO devices (eui64, manufacturer_id, device_type)
    SELECT * FROM unnest(p_eui64, p_manufacturer, p_device_type) ON CONFLICT (eui64) DO NOTHING;
  -- The manufacturer is looked up per intent (an index probe each), never joined: a join can become a
  -- full scan of devices, and this plan is cached (recordChunkIntents in store/repositories/batches.ts
  -- says what the join cost there).
  RETURN QUERY
  WITH t AS (
    SELECT * FROM unnest(p_serial, p_ca_id, p_eui64, p_key_role, p_profile, p_tbs, p_manufacturer, p_actor) AS t(serial, ca_id, eui64, key_role, profile, tbs, manufacturer_id, actor)
  ), ins AS (
    INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, site)
    SELECT t.serial, t.ca_id, t.eui64, t.key_role, t.profile, t.tbs, p_site FROM t
     WHERE (SELECT d.manufacturer_id FROM devices d WHERE d.eui64 = t.eui64) = t.manufacturer_id
    ON CONFLICT (eui64, key_role, profile) WHERE active DO NOTHING
    RETURNING issuance_intents.serial
  ), audited AS (
    INSERT INTO audit_events (site, actor, action, subject, details)
    SELECT p_site, t.actor, 'issuance.intent', encode(t.serial, 'hex'),
           jsonb_build_object('eui64', upper(encode(t.eui64, 'hex')), 'keyRole', t.key_role, 'profile', t.profile, 'tbsSha256', encode(t.tbs, 'hex'))
      FROM ins JOIN t ON t.serial = ins.serial
  )
  SELECT ins.serial FROM ins;
END $$;

-- Stores certificates whose intents are still active, locking those intents first (FOR SHARE: a
-- release and a store of one intent never both go through); audits each stored one with its actor.
-- Returns the serials not stored because their intent was released meanwhile.
CREATE FUNCTION fp_store_certificates(p_site text, p_actor text[], p_serial bytea[], p_ca_id text[], p_eui64 bytea[], p_key_role text[], p_profile text[], p_der bytea[], p_not_before timestamptz[], p_not_after timestamptz[], p_crl_shard int[])
RETURNS SETOF bytea LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM issuance_intents WHERE serial = ANY (p_serial) AND active ORDER BY serial FOR SHARE;
  WITH t AS (
    SELECT * FROM unnest(p_serial, p_ca_id, p_eui64, p_key_role, p_profile, p_der, p_not_before, p_not_after, p_crl_shard, p_actor)
      AS t(serial, ca_id, eui64, key_role, profile, der, not_before, not_after, crl_shard, actor)
     WHERE EXISTS (SELECT 1 FROM issuance_intents i WHERE i.serial = t.serial AND i.active)
  ), ins AS (
    INSERT INTO certificates (serial, ca_id, eui64, key_role, profile, der, not_before, not_after, crl_shard)
    SELECT t.serial, t.ca_id, t.eui64, t.key_role, t.profile, t.der, t.not_before, t.not_after, t.crl_shard FROM t
    ON CONFLICT (serial) DO NOTHING
    RETURNING certificates.serial
  )
  INSERT INTO audit_events (site, actor, action, subject, details)
  SELECT p_site, t.actor, 'issuance.certificate', encode(t.serial, 'hex'), '{}'::jsonb FROM ins JOIN t ON t.serial = ins.serial;
  RETURN QUERY SELECT s.serial FROM unnest(p_serial) AS s(serial)
    WHERE NOT EXISTS (SELECT 1 FROM issuance_intents i WHERE i.serial = s.serial AND i.active);
END $$;

REVOKE ALL ON FUNCTION fp_record_intents(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION fp_store_certificates(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], timestamptz[], timestamptz[], int[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fp_record_intents(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], text[], text[]) TO fleetpki_issuer;
GRANT EXECUTE ON FUNCTION fp_store_certificates(text, text[], bytea[], text[], bytea[], text[], text[], bytea[], timestamptz[], timestamptz[], int[]) TO fleetpki_issuer;
