-- The OCSP responder pre-produces a response for every new certificate (RFC 9919): it walks the
-- certificates in issue order from a cursor, which this index serves without scanning the table.
CREATE INDEX certificates_by_issue_order ON certificates (ca_id, issued_at, serial);

-- The responder's feed of new revocations reads in (created_at, serial) order from a cursor.
CREATE INDEX revocations_by_commit_order ON revocations (created_at, serial);
