-- The event log. Append-only: the triggers refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE events (
    position        BIGINT  PRIMARY KEY,          -- dense, from 1; assigned under an advisory lock
    event_id        UUID    NOT NULL UNIQUE,
    app_id          UUID    NOT NULL,
    stream          TEXT    NOT NULL,
    stream_version  BIGINT  NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    data            TEXT    NOT NULL,             -- JSON, kept as written
    metadata        TEXT    NOT NULL,             -- JSON
    recorded_at     BIGINT  NOT NULL,             -- microseconds since the Unix epoch, UTC
    hash            BYTEA   NOT NULL,             -- SHA-256, see docs/integrity.md
    UNIQUE (app_id, stream, stream_version)
);
CREATE INDEX events_app_position ON events (app_id, position);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only';
END
$$;
CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

CREATE TABLE projection_checkpoints (
    name        TEXT    PRIMARY KEY,
    version     INTEGER NOT NULL,
    position    BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
