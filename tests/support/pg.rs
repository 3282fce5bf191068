//! A PostgreSQL database for tests: `KNUT_TEST_PG_URL` when set, else
//! `postgres://postgres@127.0.0.1:5432/test`. [`with_schema`] runs a test in a schema of
//! its own with a random name (through the connection's `search_path`) and drops it at the
//! end, also when the test fails. When PostgreSQL cannot be reached the test passes after
//! printing one line that says it was skipped and why — unless `KNUT_REQUIRE_PG` is set, as
//! `.ci/run` sets it (after `.ci/postgres` made sure of a database): then it fails.
//!
//! Use it with `#[path = "support/pg.rs"] mod pg;`.

#![allow(dead_code)]

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use sqlx::Executor;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL URL for the tests and how to name it in messages (never with a password).
pub fn base_url() -> (String, &'static str) {
    match std::env::var("KNUT_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => (url, "the URL in KNUT_TEST_PG_URL"),
        _ => (DEFAULT_URL.to_string(), DEFAULT_URL),
    }
}

/// Prints past the test harness's output capture, so the skip is visible in a plain
/// `cargo test`.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// An admin pool on the base URL, or `None` (after saying so) when PostgreSQL is not there.
pub async fn admin(test: &str) -> Option<(PgPool, String)> {
    let (url, shown) = base_url();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&url)
        .await;
    match pool {
        Ok(pool) => Some((pool, url)),
        Err(e) => {
            // CI (`.ci/run`) makes sure there is a database: there the tests fail, never skip.
            assert!(
                std::env::var_os("KNUT_REQUIRE_PG").is_none(),
                "{test}: cannot connect to {shown} ({e}), and KNUT_REQUIRE_PG \
                 says the PostgreSQL tests must run"
            );
            say(&format!(
                "{test}: SKIPPED the PostgreSQL tests: cannot connect to \
                 {shown} ({e}); set KNUT_TEST_PG_URL to a reachable database to run them"
            ));
            None
        }
    }
}

/// The base URL with `search_path` set to `schema`.
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// Runs `body` with the URL of a fresh schema, then drops the schema, whatever happened.
pub async fn with_schema<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some((admin, url)) = admin(test).await else {
        return;
    };
    let schema = format!("knut_test_{}", Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    let outcome = AssertUnwindSafe(body(url_with_schema(&url, &schema)))
        .catch_unwind()
        .await;
    admin
        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .unwrap();
    admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
