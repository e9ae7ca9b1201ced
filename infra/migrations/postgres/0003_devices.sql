-- Devices as last seen. device_key is the position of the registration
-- event: unique, stable across rebuilds, and the order searches page in.
CREATE TABLE devices (
    device_key       BIGINT  PRIMARY KEY,
    app_id           UUID    NOT NULL,
    external_id      TEXT    NOT NULL,
    push_token       TEXT    NOT NULL,
    send_platform    TEXT    NOT NULL,
    device_platform  TEXT    NOT NULL,
    user_id          TEXT,
    has_permission   BOOLEAN NOT NULL,
    token_valid      BOOLEAN NOT NULL,
    random_bucket    BIGINT  NOT NULL,
    properties       TEXT    NOT NULL,            -- JSON object
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    version          BIGINT  NOT NULL,
    UNIQUE (app_id, external_id)
);
CREATE INDEX devices_user ON devices (app_id, user_id);
