-- The nodes serving this database (see infra/src/runtime/nodes.rs): each
-- renews its heartbeat every 2 s; one silent for 6 s is dead, and work it
-- leased may be taken over at once. A node that stops cleanly deletes its
-- row, handing its work over. lag_events: its read models' greatest lag at
-- its last heartbeat.
CREATE TABLE nodes (
    node_id       BLOB    PRIMARY KEY,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    started_at    BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL,
    lag_events    BIGINT  NOT NULL DEFAULT 0
);

-- Which node holds each lease.
ALTER TABLE webhook_messages ADD COLUMN lease_node BLOB;
ALTER TABLE notification_jobs ADD COLUMN lease_node BLOB;
