-- The event log. Append-only: the triggers refuse UPDATE and DELETE.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,          -- dense, from 1
    event_id        BLOB    NOT NULL UNIQUE,      -- UUID
    app_id          BLOB    NOT NULL,             -- UUID
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    data            TEXT    NOT NULL,             -- JSON
    metadata        TEXT    NOT NULL,             -- JSON
    recorded_at     INTEGER NOT NULL,             -- microseconds since the Unix epoch, UTC
    hash            BLOB    NOT NULL,             -- SHA-256, see docs/integrity.md
    UNIQUE (app_id, stream, stream_version)
);
CREATE INDEX events_app_position ON events (app_id, position);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;

-- Where each projection has got to; written in the same transaction as the
-- projection's own rows.
CREATE TABLE projection_checkpoints (
    name        TEXT    PRIMARY KEY,
    version     INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
