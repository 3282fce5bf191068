-- The `cache` step: values kept under a key in a named cache, shared by the routes (and
-- the instances) that name it. A key holds one value (`set`, member '') or a set of values
-- (`add`, member = a hash of the value). An expired row is invisible to readers and is
-- removed when its key is next written.
CREATE TABLE IF NOT EXISTS knut_cache (
    name          TEXT   NOT NULL,
    cache_key     TEXT   NOT NULL,
    member        TEXT   NOT NULL,
    value         TEXT   NOT NULL,
    added_at_us   BIGINT NOT NULL,
    expires_at_us BIGINT,
    PRIMARY KEY (name, cache_key, member)
);
