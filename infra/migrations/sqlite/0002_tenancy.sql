CREATE TABLE apps (
    app_id      BLOB    PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_id        BLOB    PRIMARY KEY,
    app_id        BLOB    NOT NULL,
    name          TEXT    NOT NULL,
    roles         TEXT    NOT NULL,             -- comma-separated
    token_sha256  TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_app ON api_keys (app_id, created_at);
