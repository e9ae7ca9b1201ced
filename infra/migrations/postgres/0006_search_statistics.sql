-- Search plans depend on how many devices a (key, value) test matches. The
-- planner estimates each column apart, so `key = 'age' AND i BETWEEN 30 AND
-- 34` looked 35 times rarer than it is, and it hashed every match instead
-- of walking devices in key order. These statistics teach it the
-- combinations (refreshed by the ANALYZE the projection runner issues).
CREATE STATISTICS device_properties_key_int (mcv, dependencies) ON key, kind, i FROM device_properties;
CREATE STATISTICS device_properties_key_str (mcv, dependencies) ON key, kind, s FROM device_properties;
