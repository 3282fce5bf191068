-- Leases: of several knut instances on one store, one at a time does a singleton job (a
-- poll endpoint's polling). The holder renews before `expires_at_us`; after it anyone may
-- take the lease.
CREATE TABLE IF NOT EXISTS knut_leases (
    name          TEXT   NOT NULL PRIMARY KEY,
    holder        TEXT   NOT NULL,
    expires_at_us BIGINT NOT NULL
);
