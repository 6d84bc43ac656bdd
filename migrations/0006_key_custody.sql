-- Key custody for cloning CA keys into the standby site's HSM. A key-encryption key (AES-256) is made at
-- a ceremony and exists afterwards only as M-of-N custodian shares; the CA keys wrapped under it
-- (CKM_AES_KEY_WRAP_PAD) replicate with everything else, so site B can unwrap them once M custodians
-- bring their shares. kek_check lets a restore tell a wrong or damaged share set before touching the HSM.
CREATE TABLE key_encryption_keys (
  id          uuid PRIMARY KEY,
  custodians  smallint NOT NULL CHECK (custodians BETWEEN 2 AND 20),
  threshold   smallint NOT NULL CHECK (threshold BETWEEN 2 AND custodians),
  kek_check   bytea NOT NULL CHECK (octet_length(kek_check) = 16),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE key_backups (
  kek_id           uuid NOT NULL REFERENCES key_encryption_keys (id),
  key_label        text NOT NULL,
  mechanism        text NOT NULL CHECK (mechanism = 'aes-key-wrap-pad'),
  wrapped          bytea NOT NULL,
  public_key_spki  bytea NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kek_id, key_label)
);
