-- Callback URLs ({{callback.url}}): one token per message about a user,
-- issued when the message is queued. Only the token's SHA-256 is kept; the
-- token itself is in the message alone. A use begins with used_at (and the
-- status it asks for) and is spent once its command is recorded
-- (applied_at): a use interrupted in between may finish with the same
-- status, no other.
CREATE TABLE webhook_callbacks (
    token_sha256  TEXT    PRIMARY KEY,
    app_id        BLOB    NOT NULL,
    endpoint_id   BLOB    NOT NULL,
    message_id    BLOB    NOT NULL,
    user_id       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    used_at       INTEGER,
    used_status   TEXT,
    applied_at    INTEGER
);
CREATE INDEX webhook_callbacks_user ON webhook_callbacks (app_id, user_id);
