-- Indexes for auditors' filters on the log (GET /v1/events): by type and
-- type prefix (byte order, so a prefix is a range), time, actor and
-- correlation id, each within an app and in position order; and the devices
-- ever linked to a user (a user's device count as of an instant).
CREATE INDEX IF NOT EXISTS events_app_type ON events (app_id, event_type, position);
CREATE INDEX IF NOT EXISTS events_app_time ON events (app_id, recorded_at);
CREATE INDEX IF NOT EXISTS events_app_actor ON events (app_id, json_extract(metadata, '$.actor'), position);
CREATE INDEX IF NOT EXISTS events_app_correlation ON events (app_id, json_extract(metadata, '$.correlation_id'), position);
CREATE INDEX IF NOT EXISTS events_device_user ON events (app_id, json_extract(data, '$.user_id'), position)
    WHERE event_type IN ('device.registered', 'device.user_linked');
