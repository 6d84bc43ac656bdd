-- Issue 39: the request that uploaded a batch (the API's request id, X-Request-Id), so the worker's log
-- lines and audit rows for its chunks carry the id the factory's upload was logged and answered with.
ALTER TABLE batches ADD COLUMN request_id text CHECK (request_id ~ '^[A-Za-z0-9._:-]{1,64}$');
