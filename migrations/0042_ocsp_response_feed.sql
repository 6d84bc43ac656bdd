-- The order in which OCSP responses are stored (pre-produced, refreshed, re-signed, signed on request):
-- a status responder follows it to load into its cache what the site's daemons write in another process
-- (ca/status/ocsp-cache-warmer.ts), as the responder's own cache was filled when they ran inside it.
-- Rows stored before this migration have no position; a responder's warm-up at start reads them by serial.
CREATE SEQUENCE ocsp_response_feed;
-- The column first without a default, then the default: ADD COLUMN with a volatile default (nextval)
-- would rewrite every row of a table that holds one or two responses per certificate.
ALTER TABLE ocsp_responses ADD COLUMN stored_seq bigint;
ALTER TABLE ocsp_responses ALTER COLUMN stored_seq SET DEFAULT nextval('ocsp_response_feed');
CREATE INDEX ocsp_responses_by_stored_seq ON ocsp_responses (stored_seq);
GRANT USAGE ON SEQUENCE ocsp_response_feed TO fleetpki_status;
