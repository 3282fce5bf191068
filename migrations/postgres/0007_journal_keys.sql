-- The business keys of the message journal: which correlation ids carried which key
-- (a `knut-key-<name>` header, e.g. an OeP FlowInstanceID or an errand number), so that one
-- search by a key finds every correlation id of a case, also across a boundary where the
-- correlation id changes (a case officer's decision). One row per key and correlation id,
-- written with the hops (the journal writer); never a personnummer (refused where a key is
-- set), never a body.
CREATE TABLE IF NOT EXISTS knut_journal_keys (
    name           TEXT   NOT NULL,
    value          TEXT   NOT NULL,
    correlation_id TEXT   NOT NULL,
    at_us          BIGINT NOT NULL,
    PRIMARY KEY (name, value, correlation_id)
);
CREATE INDEX IF NOT EXISTS knut_journal_keys_value ON knut_journal_keys (value);
CREATE INDEX IF NOT EXISTS knut_journal_keys_correlation ON knut_journal_keys (correlation_id);
