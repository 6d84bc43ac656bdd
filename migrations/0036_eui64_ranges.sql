-- EUI-64 ranges per manufacturer (issue 40 §6). Until now the first intent for an unclaimed device id
-- won, so any factory could claim another manufacturer's meters. A manufacturer now holds ranges of
-- device ids (an IEEE OUI, MA-M or MA-S block, or any first..last), no two manufacturers' ranges
-- overlap, and a device id is claimed, and an intent recorded, only inside its manufacturer's ranges:
-- the one intent writer (fp_record_intents: online, EST, CMP and batch chunks) enforces it, batch intake
-- and device-key bundles check it first to name the refused ids. A manufacturer with no range enrols
-- nothing. Devices enrolled before keep their certificates and status; a new certificate for one needs
-- its manufacturer's range registered.

-- An EUI-64 as the unsigned 64-bit number it is (numeric: int8range could not hold FF-..-FF inclusive).
CREATE FUNCTION fp_eui64_number(p_eui64 bytea) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT ('x' || encode(p_eui64, 'hex'))::bit(64)::bigint::numeric + CASE WHEN get_byte(p_eui64, 0) >= 128 THEN 18446744073709551616 ELSE 0 END
$$;

CREATE TABLE manufacturer_eui64_ranges (
  manufacturer_id text NOT NULL REFERENCES manufacturers (id),
  first_eui64     bytea NOT NULL CHECK (octet_length(first_eui64) = 8),
  last_eui64      bytea NOT NULL CHECK (octet_length(last_eui64) = 8),
  created_by      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (manufacturer_id, first_eui64),
  CHECK (first_eui64 <= last_eui64),
  -- One device id, one manufacturer: ranges never overlap, whoever holds them.
  CONSTRAINT manufacturer_eui64_ranges_no_overlap EXCLUDE USING gist ((numrange(fp_eui64_number(first_eui64), fp_eui64_number(last_eui64), '[]')) WITH &&)
);

-- Whether a manufacturer's ranges hold a device id (the primary key finds the range by its first id).
CREATE FUNCTION fp_eui64_in_ranges(p_manufacturer text, p_eui64 bytea) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT EXISTS (SELECT 1 FROM manufacturer_eui64_ranges r WHERE r.manufacturer_id = p_manufacturer AND r.first_eui64 <= p_eui64 AND r.last_eui64 >= p_eui64)
$$;

-- The intent writer of 0025, with the ranges: a device outside its manufacturer's ranges is neither
-- recorded (claimed) nor given an intent; the caller learns it from the serials that come back.
-- SECURITY DEFINER as 0027 made it (it writes audit rows, which the services may not insert
-- themselves); CREATE OR REPLACE would otherwise reset it to the caller's rights.
CREATE OR REPLACE FUNCTION fp_record_intents(p_site text, p_actor text[], p_serial bytea[], p_ca_id text[], p_eui64 bytea[], p_key_role text[], p_profile text[], p_tbs bytea[], p_manufacturer text[], p_device_type text[], p_not_before timestamptz[], p_batch_id uuid, p_chunk_no int)
RETURNS SETOF bytea LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO devices (eui64, manufacturer_id, device_type, batch_id)
    SELECT t.eui64, t.manufacturer_id, t.device_type, p_batch_id FROM unnest(p_eui64, p_manufacturer, p_device_type) AS t(eui64, manufacturer_id, device_type)
     WHERE fp_eui64_in_ranges(t.manufacturer_id, t.eui64)
    ON CONFLICT (eui64) DO NOTHING;
  RETURN QUERY
  WITH t AS (
    SELECT * FROM unnest(p_serial, p_ca_id, p_eui64, p_key_role, p_profile, p_tbs, p_manufacturer, p_actor, p_not_before) AS t(serial, ca_id, eui64, key_role, profile, tbs, manufacturer_id, actor, not_before)
  ), ins AS (
    INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, site, batch_id, chunk_no, not_before)
    SELECT t.serial, t.ca_id, t.eui64, t.key_role, t.profile, t.tbs, p_site, p_batch_id, p_chunk_no, t.not_before FROM t
     WHERE (SELECT d.manufacturer_id FROM devices d WHERE d.eui64 = t.eui64) = t.manufacturer_id
       AND fp_eui64_in_ranges(t.manufacturer_id, t.eui64)
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

-- Every service reads the ranges (fp_record_intents runs with its caller's rights); the operators' CLI
-- registers them, on an administrator's token, audited.
GRANT SELECT ON manufacturer_eui64_ranges TO fleetpki_issuer, fleetpki_worker, fleetpki_status, fleetpki_operator;
GRANT INSERT ON manufacturer_eui64_ranges TO fleetpki_operator;
