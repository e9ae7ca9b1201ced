-- A projection that cannot apply an event of an app stops for that app
-- alone: the event and the error are recorded here, and the app's later
-- events wait (in the log) until an operator skips or retries it.
CREATE TABLE projection_faults (
    name        TEXT    NOT NULL,
    app_id      BLOB    NOT NULL,
    position    INTEGER NOT NULL,   -- the first of the app's events not applied
    event_type  TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    since       INTEGER NOT NULL,   -- microseconds since the Unix epoch
    action      TEXT,               -- NULL: stopped; 'skip' or 'retry': asked for
    PRIMARY KEY (name, app_id)
);

-- Events an operator chose to skip, for the record.
CREATE TABLE projection_skipped (
    name        TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    app_id      BLOB    NOT NULL,
    event_type  TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    skipped_at  INTEGER NOT NULL,
    PRIMARY KEY (name, position)
);
