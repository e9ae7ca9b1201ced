-- Each property row is found by its value through one index, not two: a
-- string, list-item or empty-list row (i IS NULL) through
-- device_properties_str, an integer, boolean or integer-list row through
-- device_properties_int. Before, both indexes held every row, half of them
-- with a NULL value no search looks for: a third of the table's index
-- entries, written by every device change and by every rebuild. Searches
-- name the half they read (devices/search.rs); "exists" reads both.
DROP INDEX device_properties_str;
DROP INDEX device_properties_int;
CREATE INDEX device_properties_str ON device_properties (app_id, key, kind, s, device_key) WHERE i IS NULL;
CREATE INDEX device_properties_int ON device_properties (app_id, key, kind, i, device_key) WHERE i IS NOT NULL;
