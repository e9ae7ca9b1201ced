-- Change queues: drain-on-fetch feeds of integration events.
-- starts_after: the log position after which events enter the queue.
-- expired: changes dropped for being older than max_age_seconds.
-- depth: pending changes (counting them would cost a scan per drain).
CREATE TABLE change_queues (
    app_id           UUID    NOT NULL,
    name             TEXT    NOT NULL,
    event_types      TEXT    NOT NULL,   -- JSON array; empty: every integration event
    max_age_seconds  BIGINT ,
    starts_after     BIGINT  NOT NULL,
    expired          BIGINT  NOT NULL DEFAULT 0,
    depth            BIGINT  NOT NULL DEFAULT 0,   -- pending changes, kept by the projection and drains
    created_at       BIGINT  NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- Pending changes, deleted by the drain that hands them out.
CREATE TABLE changes (
    app_id        UUID    NOT NULL,
    queue         TEXT    NOT NULL,
    position      BIGINT  NOT NULL,
    event_id      UUID    NOT NULL,
    event_type    TEXT    NOT NULL,
    subject_kind  TEXT    NOT NULL,
    subject_id    TEXT    NOT NULL,
    data          TEXT    NOT NULL,
    recorded_at   BIGINT  NOT NULL,
    PRIMARY KEY (app_id, queue, position)
);
