-- Indexes for auditors' filters on the log (GET /v1/events): by type and
-- type prefix (byte order, so a prefix is a range), time, actor and
-- correlation id, each within an app and in position order; and the devices
-- ever linked to a user (a user's device count as of an instant).
--
-- On a large log each of these takes a while to build and holds writes
-- meanwhile; build them first with CREATE INDEX CONCURRENTLY under the same
-- names (see docs/operating.md, "Upgrading"): this migration then finds
-- them and changes nothing.
CREATE INDEX IF NOT EXISTS events_app_type ON events (app_id, event_type COLLATE "C", position);
CREATE INDEX IF NOT EXISTS events_app_time ON events (app_id, recorded_at);
CREATE INDEX IF NOT EXISTS events_app_actor ON events (app_id, (metadata::jsonb ->> 'actor'), position);
CREATE INDEX IF NOT EXISTS events_app_correlation ON events (app_id, (metadata::jsonb ->> 'correlation_id'), position);
CREATE INDEX IF NOT EXISTS events_device_user ON events (app_id, (data::jsonb ->> 'user_id'), position)
    WHERE event_type IN ('device.registered', 'device.user_linked');
