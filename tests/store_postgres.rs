//! The state store on PostgreSQL: the conformance suite, migrations on reconnect and at
//! concurrent first connects.
//!
//! Uses `KNUT_TEST_PG_URL` when set, else `postgres://postgres@127.0.0.1:5432/test`. Each
//! test works in a schema of its own with a random name (through the connection's
//! `search_path`) and drops it at the end, also when the test fails. When PostgreSQL cannot
//! be reached the tests pass after printing one line that says they were skipped and why —
//! unless `KNUT_REQUIRE_PG` is set, as `.ci/run` sets it (after `.ci/postgres` made sure of
//! a database): then they fail.

#[path = "support/pg.rs"]
mod pg;

use knutpunkt::store::{Claim, Store, conformance};
use pg::with_schema;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_two_instances() {
    with_schema("conformance_suite_on_two_instances", |url| async move {
        let a = Store::connect(&url).await.unwrap();
        let b = Store::connect(&url).await.unwrap();
        assert_eq!(a.backend(), "postgres");
        conformance::run_all(&a, &b).await;
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_migrate_once() {
    with_schema("concurrent_first_connects_migrate_once", |url| async move {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move { Store::connect(&url).await }));
        }
        let mut stores = Vec::new();
        for t in tasks {
            stores.push(t.await.unwrap().unwrap());
        }
        let m = Uuid::now_v7();
        assert_eq!(
            stores[0].claim_key("s", "k", m).await.unwrap(),
            Claim::First
        );
        assert_eq!(
            stores[3].claim_key("s", "k", m).await.unwrap(),
            Claim::SameMessage
        );
        for store in stores {
            store.close().await;
        }

        // Reconnecting applies nothing again and keeps the state.
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(
            again.claim_key("s", "k", m).await.unwrap(),
            Claim::SameMessage
        );
        again.close().await;
        let pool = PgPoolOptions::new().connect(&url).await.unwrap();
        let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            applied, 7,
            "0001_init, 0002_leases, 0003_audit, 0004_aggregate_completion, 0005_cache, \
             0006_access_audit and 0007_journal_keys, once each"
        );
        pool.close().await;
    })
    .await;
}

#[tokio::test]
async fn unreachable_database_is_a_connect_error() {
    // Port 1 on localhost: nothing listens there; no PostgreSQL needed for this one.
    let err = Store::connect("postgres://knut:s3cret@127.0.0.1:1/knut")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot connect to the postgres store"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
