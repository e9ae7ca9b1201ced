CREATE TABLE apps (
    app_id      UUID    PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    key_id        UUID    PRIMARY KEY,
    app_id        UUID    NOT NULL,
    name          TEXT    NOT NULL,
    roles         TEXT    NOT NULL,             -- comma-separated
    token_sha256  TEXT    NOT NULL UNIQUE,
    created_at    BIGINT  NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_app ON api_keys (app_id, created_at);
