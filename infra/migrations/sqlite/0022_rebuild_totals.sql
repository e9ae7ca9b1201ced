-- A rebuild's progress in events: how many it has read and how many it
-- reads in all. Its `position` (the lowest shadow checkpoint) against the
-- log's `head` is no measure of that: a model loaded in bulk reads only
-- its own streams, and a rebuild of one model only that model's events.
ALTER TABLE rebuilds ADD COLUMN events_read BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rebuilds ADD COLUMN events_total BIGINT NOT NULL DEFAULT 0;
-- What it is doing: bulk load, indexes (and copy), catch-up, switch.
ALTER TABLE rebuilds ADD COLUMN step TEXT NOT NULL DEFAULT '';
-- Why the rebuild stopped, when it failed with an error (NULL while it
-- runs, and for one that was killed).
ALTER TABLE rebuilds ADD COLUMN error TEXT;
