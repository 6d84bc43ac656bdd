-- Key custody covers the device master keys (AES) too: they are wrapped with CKM_AES_KEY_WRAP and
-- identified by a check value (the KCV of the key they derive from a fixed probe), as they have no
-- public half to compare.
ALTER TABLE key_backups ADD COLUMN key_class text NOT NULL DEFAULT 'private' CHECK (key_class IN ('private', 'secret'));
ALTER TABLE key_backups ADD COLUMN check_value bytea;
ALTER TABLE key_backups DROP CONSTRAINT key_backups_mechanism_check;
ALTER TABLE key_backups ADD CONSTRAINT key_backups_mechanism_check CHECK (mechanism IN ('aes-key-wrap-pad', 'aes-key-wrap'));
ALTER TABLE key_backups ALTER COLUMN public_key_spki DROP NOT NULL;
ALTER TABLE key_backups ADD CONSTRAINT key_backups_identified CHECK ((key_class = 'private' AND public_key_spki IS NOT NULL) OR (key_class = 'secret' AND check_value IS NOT NULL));
