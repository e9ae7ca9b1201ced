-- Answers kept for requests that carried an Idempotency-Key (see
-- infra/src/idempotency.rs). Not part of the log: a cache of answers.
CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,   -- the app's id, or 'root'
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,   -- digest of method, path and body
    status       BIGINT,            -- NULL while the request runs
    headers      TEXT,               -- JSON [[name, value], ...]
    body         BYTEA,
    created_at   BIGINT  NOT NULL,   -- microseconds since the Unix epoch
    expires_at   BIGINT  NOT NULL,
    lease_until  BIGINT  NOT NULL,   -- an unfinished claim's node is presumed dead after this
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
