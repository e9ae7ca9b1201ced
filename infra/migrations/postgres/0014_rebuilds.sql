-- The rebuild running (or the last one interrupted) and where it stands:
-- one row at most, written by `herald projections rebuild` about every
-- second and deleted once its read models are switched in.
CREATE TABLE rebuilds (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    projections         TEXT    NOT NULL,   -- comma-separated names
    started_at          BIGINT  NOT NULL,   -- microseconds since the Unix epoch
    position            BIGINT  NOT NULL,   -- the lowest shadow checkpoint
    head                BIGINT  NOT NULL,   -- the log's head at the start
    events_per_second   DOUBLE PRECISION NOT NULL,
    updated_at          BIGINT  NOT NULL
);
