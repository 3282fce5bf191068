//! The store's schema migrations, embedded in the binary (`migrations/<backend>/*.sql`).
//!
//! Migrations run at every connect. They are idempotent (`IF NOT EXISTS`), sqlx records
//! what it applied in `_sqlx_migrations`, and on PostgreSQL it holds an advisory lock while
//! migrating, so several instances starting together apply each migration once. SQLite has
//! no such lock: two processes may both try the same migration; the loser's transaction
//! fails (on a statement or on the bookkeeping row), is rolled back and retried, and then
//! finds the migration applied.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};

use super::error::{StoreError, describe_migrate};

/// One migration file: version, description, SQL.
type Source = (i64, &'static str, &'static str);

const SQLITE: &[Source] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "leases",
        include_str!("../../migrations/sqlite/0002_leases.sql"),
    ),
    (
        3,
        "audit",
        include_str!("../../migrations/sqlite/0003_audit.sql"),
    ),
    (
        4,
        "aggregate completion",
        include_str!("../../migrations/sqlite/0004_aggregate_completion.sql"),
    ),
    (
        5,
        "cache",
        include_str!("../../migrations/sqlite/0005_cache.sql"),
    ),
    (
        6,
        "access audit",
        include_str!("../../migrations/sqlite/0006_access_audit.sql"),
    ),
    (
        7,
        "journal keys",
        include_str!("../../migrations/sqlite/0007_journal_keys.sql"),
    ),
];

const POSTGRES: &[Source] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "leases",
        include_str!("../../migrations/postgres/0002_leases.sql"),
    ),
    (
        3,
        "audit",
        include_str!("../../migrations/postgres/0003_audit.sql"),
    ),
    (
        4,
        "aggregate completion",
        include_str!("../../migrations/postgres/0004_aggregate_completion.sql"),
    ),
    (
        5,
        "cache",
        include_str!("../../migrations/postgres/0005_cache.sql"),
    ),
    (
        6,
        "access audit",
        include_str!("../../migrations/postgres/0006_access_audit.sql"),
    ),
    (
        7,
        "journal keys",
        include_str!("../../migrations/postgres/0007_journal_keys.sql"),
    ),
];

fn migrator(sources: &[Source]) -> Migrator {
    Migrator::with_migrations(
        sources
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The SQLite migrations.
pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL migrations.
pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

/// Applies the pending migrations, retrying a few times when a concurrent migrator won a race.
pub(super) async fn run(
    pool: &AnyPool,
    backend: &'static str,
    migrator: Migrator,
) -> Result<(), StoreError> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            // A concurrent migrator that won the race makes the loser's statements fail
            // (`duplicate column name` for an `ALTER TABLE … ADD COLUMN`, which has no
            // `IF NOT EXISTS` on SQLite) or its bookkeeping insert; the loser's transaction
            // is rolled back, and the next attempt reads the applied list afresh.
            Err(MigrateError::Execute(_) | MigrateError::ExecuteMigration(..))
                if attempt < ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(e) => {
                return Err(StoreError::Migrate {
                    backend,
                    cause: describe_migrate(&e),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_unique_and_ascending_on_both_backends() {
        for sources in [SQLITE, POSTGRES] {
            let versions: Vec<i64> = sources.iter().map(|s| s.0).collect();
            let mut sorted = versions.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(versions, sorted);
        }
        assert_eq!(SQLITE.len(), POSTGRES.len(), "keep the backends in step");
    }

    #[test]
    fn every_statement_is_idempotent() {
        for (_, _, sql) in SQLITE.iter().chain(POSTGRES) {
            for stmt in sql.split(';') {
                let stmt = stmt
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let stmt = stmt.trim().to_ascii_uppercase();
                if stmt.starts_with("CREATE") {
                    assert!(stmt.contains("IF NOT EXISTS"), "not idempotent: {stmt}");
                }
            }
        }
    }
}
