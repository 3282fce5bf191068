-- The admin audit journal: every call to the admin API's /api/… (allowed or refused), with
-- who made it. Never a body; the path holds route ids and message ids only.
CREATE TABLE IF NOT EXISTS knut_audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us    BIGINT  NOT NULL,
    actor    TEXT    NOT NULL,
    roles    TEXT    NOT NULL,
    method   TEXT    NOT NULL,
    path     TEXT    NOT NULL,
    status   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS knut_audit_at ON knut_audit (at_us, id);
