-- The SHA-256 (hex) of the secret handed to a client key that registered
-- the device (event device_secret.issued); NULL for devices registered by
-- the app's server. Read by flag evaluation with a client key.
ALTER TABLE devices ADD COLUMN secret_sha256 TEXT;
