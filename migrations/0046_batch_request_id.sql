-- Issue 39: the request that uploaded a batch (the API's request id, X-Request-Id), so the worker's log
-- lines and audit rows for its chunks carry the id the factory's upload was logged and answered with.
-- The column first (no rewrite: no default), then its check NOT VALID and validated apart: the check's
-- scan of the table then holds a lock that lets uploads and reads go on, not the ALTER's exclusive one.
ALTER TABLE batches ADD COLUMN request_id text;
ALTER TABLE batches ADD CONSTRAINT batches_request_id_plain CHECK (request_id ~ '^[A-Za-z0-9._:-]{8,64}$') NOT VALID;
ALTER TABLE batches VALIDATE CONSTRAINT batches_request_id_plain;
