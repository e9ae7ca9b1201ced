-- Notifications as last seen (projection `notifications`).
CREATE TABLE notifications (
    notification_id  UUID    PRIMARY KEY,
    app_id           UUID    NOT NULL,
    status           TEXT    NOT NULL,
    message          TEXT    NOT NULL,        -- JSON: content, targets, scheduled_at
    scheduled_at     BIGINT,
    audience         TEXT,                    -- JSON per platform, once resolved
    sent             TEXT    NOT NULL,        -- JSON per platform
    failed           TEXT    NOT NULL,        -- JSON per platform
    error_reason     TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    version          BIGINT  NOT NULL
);
CREATE INDEX notifications_created ON notifications (app_id, created_at, notification_id);
CREATE INDEX notifications_scheduled ON notifications (app_id, scheduled_at, notification_id);

-- Push messages handed to providers, per app and UTC day (projection `notifications`).
CREATE TABLE push_usage (
    app_id    UUID    NOT NULL,
    day       TEXT    NOT NULL,               -- YYYY-MM-DD
    messages  BIGINT  NOT NULL,
    PRIMARY KEY (app_id, day)
);

-- Each device's notifications and their outcomes (projection `device_notifications`).
CREATE TABLE device_notifications (
    app_id           UUID    NOT NULL,
    external_id      TEXT    NOT NULL,
    position         BIGINT  NOT NULL,        -- of the batch event
    notification_id  UUID    NOT NULL,
    outcome          TEXT    NOT NULL,        -- delivered | failed | invalid_token
    reason           TEXT,
    at               BIGINT  NOT NULL,
    PRIMARY KEY (app_id, external_id, position)
);

-- Delivery work (projection `notification_jobs`; not rebuildable: it is
-- what the sender still has to do).
CREATE TABLE notification_jobs (
    notification_id  UUID    PRIMARY KEY,
    app_id           UUID    NOT NULL,
    stage            TEXT    NOT NULL,        -- launch (queued until due_at) | send
    due_at           BIGINT  NOT NULL,
    lease_until      BIGINT,
    lease_token      UUID,
    batch_size       BIGINT                   -- set when the audience is resolved
);
CREATE INDEX notification_jobs_due ON notification_jobs (due_at);

-- The audience of a notification being sent, resolved once (sender state).
CREATE TABLE notification_audience (
    notification_id  UUID    NOT NULL,
    seq              BIGINT  NOT NULL,        -- 1.., in device order
    device_key       BIGINT  NOT NULL,
    external_id      TEXT    NOT NULL,
    send_platform    TEXT    NOT NULL,
    device_platform  TEXT    NOT NULL,
    push_token       TEXT    NOT NULL,
    PRIMARY KEY (notification_id, seq)
);

-- Push credentials as last set: fingerprint and public details only
-- (projection `apps`); the credentials themselves are in `secrets`.
CREATE TABLE push_credentials (
    app_id       UUID    NOT NULL,
    provider     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    details      TEXT    NOT NULL,            -- JSON
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (app_id, provider)
);

ALTER TABLE apps ADD COLUMN daily_quota BIGINT;
