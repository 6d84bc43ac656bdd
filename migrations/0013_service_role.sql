-- The services (issuer API, batch workers, status responders) connect as fleetpki_service, not as the
-- owner: they read and write the CA's tables but cannot UPDATE, DELETE or TRUNCATE audit rows or seals
-- (the sealer may set chain_hash, a column grant), cannot disable the append-only triggers, and cannot
-- change the schema. Operators, migrations and ceremonies use the owner role through the CLI.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetpki_service') THEN
    CREATE ROLE fleetpki_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
  END IF;
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO fleetpki_service', current_database());
END $$;

GRANT USAGE ON SCHEMA public TO fleetpki_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO fleetpki_service;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO fleetpki_service;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_seals FROM fleetpki_service;
GRANT UPDATE (chain_hash) ON audit_events TO fleetpki_service;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM fleetpki_service;
-- Tables that later migrations create get the same grants; audit-like ones must revoke as above.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO fleetpki_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO fleetpki_service;
-- Replication state (pg_stat_replication) for readiness and site status.
GRANT pg_monitor TO fleetpki_service;
