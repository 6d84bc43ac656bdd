-- Issue 33 section 3: a rejecting certConf revokes only a certificate issued in its own transaction.
-- An ir/cr/p10cr that repeats an enrolled device's key gets the existing certificate back ("reused",
-- nothing signed); its certConf used to revoke that certificate, so a factory could revoke its own
-- fleet, past the revocation rules (an officer; dual control past the threshold), by replaying CSRs.
-- issued_in_transaction is set when the transaction answers a certificate signed for it, and only if
-- that certificate's intent was recorded after the transaction opened (the database checks what the
-- application says). Transactions from before this migration count as not issued in them: a rejection
-- of one is recorded and audited, and revokes nothing.
ALTER TABLE cmp_transactions ADD COLUMN issued_in_transaction boolean NOT NULL DEFAULT false;
ALTER TABLE cmp_transactions ADD CONSTRAINT cmp_transactions_issued_has_certificate CHECK (NOT issued_in_transaction OR certificate_serial IS NOT NULL);
GRANT UPDATE (issued_in_transaction) ON cmp_transactions TO fleetpki_issuer;
