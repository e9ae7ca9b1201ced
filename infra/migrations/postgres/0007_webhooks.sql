-- Webhook endpoints as last seen (the projection `webhooks`). Settings are
-- the domain's JSON; secrets are not here (see `secrets`).
CREATE TABLE webhook_endpoints (
    webhook_id          UUID    PRIMARY KEY,
    app_id              UUID    NOT NULL,
    settings            TEXT    NOT NULL,
    auth                TEXT,                 -- JSON: kind and fingerprint, never the credential
    secret_fingerprint  TEXT    NOT NULL,
    enabled             BOOLEAN NOT NULL,
    ordered             BOOLEAN NOT NULL,     -- from settings, for the delivery queue's SQL
    rate_limit          BIGINT,               -- from settings: requests per second
    disabled_reason     TEXT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    version             BIGINT  NOT NULL
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id, webhook_id);

-- One message per event per endpoint that wants it; the delivery queue.
-- message_id is the event id (test messages get their own).
CREATE TABLE webhook_messages (
    endpoint_id      UUID    NOT NULL,
    message_id       UUID    NOT NULL,
    app_id           UUID    NOT NULL,
    seq              BIGINT  NOT NULL,        -- the event's position; 0 for test messages
    event_type       TEXT    NOT NULL,
    user_id          TEXT,                    -- the user the message is about
    from_webhooks    BOOLEAN NOT NULL,        -- the event was written by the webhook reactor
    body             TEXT    NOT NULL,
    status           TEXT    NOT NULL,        -- pending | paused (endpoint disabled) | succeeded | failed
    attempts         INTEGER NOT NULL,        -- in the current round
    next_attempt_at  BIGINT  NOT NULL,        -- microseconds since the epoch
    lease_until      BIGINT,
    lease_token      UUID,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    PRIMARY KEY (endpoint_id, message_id)
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX webhook_messages_order ON webhook_messages (endpoint_id, seq) WHERE status = 'pending';
CREATE INDEX webhook_messages_leased ON webhook_messages (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX webhook_messages_failed ON webhook_messages (endpoint_id, created_at) WHERE status = 'failed';

CREATE TABLE webhook_attempts (
    attempt_id       UUID    PRIMARY KEY,     -- v7: ordered by time
    endpoint_id      UUID    NOT NULL,
    message_id       UUID    NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       BIGINT  NOT NULL,
    duration_ms      BIGINT  NOT NULL,
    status_code      INTEGER,
    response_body    TEXT,
    error            TEXT,
    outcome          TEXT    NOT NULL,        -- succeeded | failed
    next_attempt_at  BIGINT
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempt_id);

-- Delivery bookkeeping per endpoint: the rate limiter's theoretical arrival
-- time, and since when it has failed without a success.
CREATE TABLE webhook_endpoint_state (
    endpoint_id    UUID    PRIMARY KEY,
    tat            BIGINT  NOT NULL,
    failing_since  BIGINT
);

-- Secrets, encrypted at rest (AES-256-GCM, bound to their owner), outside
-- the log; the log keeps their fingerprints.
CREATE TABLE secrets (
    secret_id    UUID    PRIMARY KEY,
    app_id       UUID    NOT NULL,
    owner        TEXT    NOT NULL,
    purpose      TEXT    NOT NULL,
    sealed       BYTEA   NOT NULL,
    fingerprint  TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT
);
CREATE INDEX secrets_owner ON secrets (app_id, owner, purpose);
