-- One data key per subject (a user's or a device's stream) and generation,
-- sealed with Herald's secret key, outside the log: the log holds the
-- subject's personal values encrypted under it. Forgetting the subject sets
-- `sealed` to NULL (the key is gone, the values unreadable) and
-- `forgotten_at`; generation 0 is a tombstone written by every forget, so
-- that values stored in clear before sealing existed are masked as well.
CREATE TABLE subject_keys (
    app_id        UUID    NOT NULL,
    subject       TEXT    NOT NULL,
    generation    BIGINT  NOT NULL,
    sealed        BYTEA,
    created_at    BIGINT  NOT NULL,   -- microseconds since the Unix epoch
    forgotten_at  BIGINT,
    PRIMARY KEY (app_id, subject, generation)
);
