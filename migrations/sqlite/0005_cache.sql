-- The `cache` step: values kept under a key in a named cache, shared by the routes (and
-- the instances) that name it. A key holds one value (`set`, member '') or a set of values
-- (`add`, member = a hash of the value, or a name the route gives). An expired row is
-- invisible to readers and is removed by a purge (at most once a minute per instance, on a
-- write).
CREATE TABLE IF NOT EXISTS knut_cache (
    name          TEXT   NOT NULL,
    cache_key     TEXT   NOT NULL,
    member        TEXT   NOT NULL,
    value         TEXT   NOT NULL,
    added_at_us   BIGINT NOT NULL,
    expires_at_us BIGINT,
    PRIMARY KEY (name, cache_key, member)
);
CREATE INDEX IF NOT EXISTS knut_cache_expiry ON knut_cache (expires_at_us);
