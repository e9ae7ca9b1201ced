-- Searchable device properties: one row per scalar, one per list item.
-- kind: 's' string, 'i' integer, 'b' boolean (i = 0/1), 'l' list item (s),
-- 'e' an empty list (no value).
-- v: a sortable version key for strings that are dotted numeric versions.
CREATE TABLE device_properties (
    device_key  INTEGER NOT NULL,
    app_id      BLOB    NOT NULL,
    key         TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    s           TEXT,
    i           INTEGER,
    v           TEXT
);
CREATE INDEX device_properties_device ON device_properties (device_key, key);
CREATE INDEX device_properties_str ON device_properties (app_id, key, kind, s, device_key);
CREATE INDEX device_properties_int ON device_properties (app_id, key, kind, i, device_key);
CREATE INDEX device_properties_version ON device_properties (app_id, key, v, device_key) WHERE v IS NOT NULL;

CREATE INDEX devices_app_key ON devices (app_id, device_key);
CREATE INDEX devices_bucket ON devices (app_id, random_bucket, device_key);

CREATE TABLE users (
    app_id      BLOB    NOT NULL,
    user_id     TEXT    NOT NULL,
    name        TEXT,
    email       TEXT,
    status      TEXT    NOT NULL,
    properties  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
