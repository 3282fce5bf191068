-- The access audit (the `audit` step): every access to a person's data and every refusal —
-- who, on whose behalf, what, when, under which right, allowed or not. Append-only: the
-- store has no method that changes or removes a row. `actor` and `on_behalf_of` are
-- HMAC-SHA256 hashes (hex) under the configured key (`[audit] key_env`), a personnummer
-- first brought to its 12 digits; no column holds a personnummer in plain text.
-- (`access_right`, not `right`: RIGHT is a reserved word in PostgreSQL, and the two
-- backends keep one schema.)
CREATE TABLE IF NOT EXISTS knut_access_audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us          BIGINT  NOT NULL,
    actor          TEXT    NOT NULL,
    on_behalf_of   TEXT,
    action         TEXT    NOT NULL,
    resource       TEXT,
    access_right   TEXT,
    allowed        BOOLEAN NOT NULL,
    route          TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS knut_access_audit_actor ON knut_access_audit (actor, at_us);
CREATE INDEX IF NOT EXISTS knut_access_audit_on_behalf_of ON knut_access_audit (on_behalf_of, at_us);
