-- A projection that cannot apply an event of an app stops for that app
-- alone: the event and the error are recorded here, and the app's later
-- events wait (in the log) until an operator skips or retries it.
CREATE TABLE projection_faults (
    name        TEXT    NOT NULL,
    app_id      UUID    NOT NULL,
    position    BIGINT  NOT NULL,   -- the first of the app's events not applied
    event_type  TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    since       BIGINT  NOT NULL,   -- microseconds since the Unix epoch
    action      TEXT,               -- NULL: stopped; 'skip' or 'retry': asked for
    PRIMARY KEY (name, app_id)
);

-- Events an operator chose to skip, for the record.
CREATE TABLE projection_skipped (
    name        TEXT    NOT NULL,
    position    BIGINT  NOT NULL,
    app_id      UUID    NOT NULL,
    event_type  TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    skipped_at  BIGINT  NOT NULL,
    PRIMARY KEY (name, position)
);
