-- Knutpunkt state store, PostgreSQL. Times are microseconds since the Unix epoch (UTC).
-- Every statement is IF NOT EXISTS; sqlx also holds an advisory lock while migrating.

-- Idempotent consumer: one row per (scope, key); `hits` counts claims (1 = first).
CREATE TABLE IF NOT EXISTS knut_idempotency (
    scope         TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,
    claimed_at_us BIGINT  NOT NULL,
    hits          BIGINT  NOT NULL DEFAULT 1,
    PRIMARY KEY (scope, idem_key)
);

-- Aggregator: open groups and their items; `next_seq` orders items by arrival.
CREATE TABLE IF NOT EXISTS knut_agg_groups (
    route        TEXT   NOT NULL,
    group_key    TEXT   NOT NULL,
    opened_at_us BIGINT NOT NULL,
    next_seq     BIGINT NOT NULL,
    PRIMARY KEY (route, group_key)
);
CREATE INDEX IF NOT EXISTS knut_agg_groups_opened ON knut_agg_groups (route, opened_at_us);

CREATE TABLE IF NOT EXISTS knut_agg_items (
    route      TEXT   NOT NULL,
    group_key  TEXT   NOT NULL,
    message_id TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    item       TEXT   NOT NULL,
    PRIMARY KEY (route, group_key, message_id)
);

-- Poll endpoints: last watermark, and per-item dedupe.
CREATE TABLE IF NOT EXISTS knut_watermarks (
    endpoint      TEXT   NOT NULL PRIMARY KEY,
    value         TEXT   NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS knut_seen (
    endpoint   TEXT   NOT NULL,
    item       TEXT   NOT NULL,
    seen_at_us BIGINT NOT NULL,
    PRIMARY KEY (endpoint, item)
);

-- Message journal: one row per hop, never a body.
CREATE TABLE IF NOT EXISTS knut_journal (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_us          BIGINT  NOT NULL,
    message_id     TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    route          TEXT    NOT NULL,
    step           TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    duration_us    BIGINT  NOT NULL,
    detail         TEXT
);
CREATE INDEX IF NOT EXISTS knut_journal_correlation ON knut_journal (correlation_id, at_us, id);
