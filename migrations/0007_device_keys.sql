-- Hybrid keys: versioned AES master keys (in the HSM; only their labels here), the factories' transport
-- public keys, and a key check value per device key issued (never the key itself).
CREATE TABLE device_master_keys (
  role        text NOT NULL CHECK (role IN ('mac', 'enc')),
  version     integer NOT NULL CHECK (version BETWEEN 1 AND 65535),
  key_label   text NOT NULL UNIQUE,
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (role, version)
);

ALTER TABLE manufacturers ADD COLUMN transport_key_spki bytea;

CREATE TABLE device_key_checks (
  eui64       bytea NOT NULL CHECK (octet_length(eui64) = 8),
  role        text NOT NULL CHECK (role IN ('mac', 'enc')),
  version     integer NOT NULL,
  kcv         bytea NOT NULL CHECK (octet_length(kcv) = 3),
  bundle      text NOT NULL,                     -- the transport context the key was wrapped for
  issued_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (eui64, role, version),
  FOREIGN KEY (role, version) REFERENCES device_master_keys (role, version)
);
