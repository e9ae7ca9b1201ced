-- An app's own API rate limit (requests per second per key); NULL: the
-- node's default (HERALD_API_RATE_LIMIT).
ALTER TABLE apps ADD COLUMN rate_limit_per_second BIGINT;
