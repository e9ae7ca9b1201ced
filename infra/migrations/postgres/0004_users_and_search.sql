-- Searchable device properties: one row per scalar, one per list item.
-- kind: 's' string, 'i' integer, 'b' boolean (i = 0/1), 'l' list item (s),
-- 'e' an empty list (no value).
-- v: a sortable version key for strings that are dotted numeric versions.
-- Strings compare bytewise (COLLATE "C"), exactly as on SQLite.
CREATE TABLE device_properties (
    device_key  BIGINT  NOT NULL,
    app_id      UUID    NOT NULL,
    key         TEXT    COLLATE "C" NOT NULL,
    kind        TEXT    COLLATE "C" NOT NULL,
    s           TEXT    COLLATE "C",
    i           BIGINT,
    v           TEXT    COLLATE "C"
);
CREATE INDEX device_properties_device ON device_properties (device_key, key);
CREATE INDEX device_properties_str ON device_properties (app_id, key, kind, s, device_key);
CREATE INDEX device_properties_int ON device_properties (app_id, key, kind, i, device_key);
CREATE INDEX device_properties_version ON device_properties (app_id, key, v, device_key) WHERE v IS NOT NULL;

ALTER TABLE devices ALTER COLUMN device_platform TYPE TEXT COLLATE "C";
ALTER TABLE devices ALTER COLUMN send_platform TYPE TEXT COLLATE "C";
ALTER TABLE devices ALTER COLUMN user_id TYPE TEXT COLLATE "C";
ALTER TABLE devices ALTER COLUMN external_id TYPE TEXT COLLATE "C";
CREATE INDEX devices_app_key ON devices (app_id, device_key);
CREATE INDEX devices_bucket ON devices (app_id, random_bucket, device_key);

CREATE TABLE users (
    app_id      UUID    NOT NULL,
    user_id     TEXT    COLLATE "C" NOT NULL,
    name        TEXT,
    email       TEXT,
    status      TEXT    NOT NULL,
    properties  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    version     BIGINT  NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
