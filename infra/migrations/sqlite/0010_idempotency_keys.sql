-- Answers kept for requests that carried an Idempotency-Key (see
-- infra/src/idempotency.rs). Not part of the log: a cache of answers.
CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,   -- the app's id, or 'root'
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,   -- digest of method, path and body
    status       INTEGER,            -- NULL while the request runs
    headers      TEXT,               -- JSON [[name, value], ...]
    body         BLOB,
    created_at   INTEGER NOT NULL,   -- microseconds since the Unix epoch
    expires_at   INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL,   -- an unfinished claim's node is presumed dead after this
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
