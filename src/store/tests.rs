//! SQLite tests of the store: the conformance suite in memory and on a file, and what is
//! particular to SQLite (URLs, folders, WAL, migrations on reconnect, error texts).

use super::*;

/// Two stores on one fresh SQLite file in a temporary folder (two pools: two "instances").
async fn file_pair() -> (Store, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/knut.db", dir.path().display());
    let a = Store::connect(&url).await.unwrap();
    let b = Store::connect(&url).await.unwrap();
    (a, b, dir)
}

async fn memory_pair() -> (Store, Store, ()) {
    let a = Store::memory().await.unwrap();
    (a.clone(), a, ())
}

mod memory {
    crate::store_conformance_suite!(super::memory_pair());
}

mod file {
    crate::store_conformance_suite!(super::file_pair());
}

fn file_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/nested/data/knut.db", dir.path().display())
}

#[tokio::test]
async fn connect_creates_the_folder_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&file_url(&dir)).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert!(dir.path().join("nested/data/knut.db").is_file());
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    store.close().await;
}

#[tokio::test]
async fn reconnecting_keeps_state_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let message = Uuid::now_v7();
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(
        store.claim_key("r", "k", message).await.unwrap(),
        Claim::First
    );
    store.set_watermark("poll", "w1").await.unwrap();
    store.close().await;

    for _ in 0..2 {
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(
            again.claim_key("r", "k", message).await.unwrap(),
            Claim::SameMessage
        );
        assert_eq!(
            again.watermark("poll").await.unwrap().as_deref(),
            Some("w1")
        );
        let applied: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&again.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(applied, migrate::sqlite().iter().count() as i64);
        again.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_to_a_fresh_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
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
}

#[tokio::test]
async fn url_forms() {
    // Memory URLs give a working private store.
    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://?mode=memory",
    ] {
        let store = Store::connect(url).await.unwrap();
        assert!(store.mark_seen("e", "i").await.unwrap(), "{url}");
    }
    // A URL that sets its own mode is left alone: read-only on a missing file fails.
    let dir = tempfile::tempdir().unwrap();
    let ro = format!("sqlite://{}/missing.db?mode=ro", dir.path().display());
    let err = Store::connect(&ro).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Connect {
                backend: "sqlite",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("unable to open database file"),
        "{err}"
    );
    // The plain `sqlite:` form with a relative-looking path works too.
    let plain = format!("sqlite:{}/plain.db", dir.path().display());
    Store::connect(&plain).await.unwrap().close().await;
    assert!(dir.path().join("plain.db").is_file());
}

#[tokio::test]
async fn unsupported_url_names_only_the_scheme() {
    let err = Store::connect("mysql://knut:s3cret-password@db/knut")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
    assert!(text.contains("`mysql`"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn uncreatable_folder_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let url = format!("sqlite://{}/data/knut.db", blocker.display());
    let err = Store::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    assert!(err.to_string().contains("data"), "{err}");
}

#[tokio::test]
async fn errors_never_carry_keys_or_items() {
    // Fictional personnummer (born 2011, valid Luhn digit), never a real person.
    let pnr = "201107044578";
    let store = Store::memory().await.unwrap();
    store.close().await;
    let errors = [
        store.claim_key("s", pnr, Uuid::now_v7()).await.unwrap_err(),
        store
            .aggregate_add("r", pnr, Uuid::now_v7(), &serde_json::json!({ "pnr": pnr }))
            .await
            .unwrap_err(),
        store.mark_seen("e", pnr).await.unwrap_err(),
        store.is_seen("e", pnr).await.unwrap_err(),
        store.set_watermark("e", pnr).await.unwrap_err(),
    ];
    for err in errors {
        let text = format!("{err} {err:?}");
        assert!(matches!(
            err,
            StoreError::Query {
                backend: "sqlite",
                ..
            }
        ));
        assert!(!text.contains(pnr), "{text}");
        assert!(!text.contains("20110704"), "{text}");
    }
}

#[tokio::test]
async fn a_corrupt_row_is_named_not_quoted() {
    let store = Store::memory().await.unwrap();
    sqlx::query(
        "INSERT INTO knut_agg_groups (route, group_key, opened_at_us, next_seq) \
         VALUES ('r', 'g', 0, 1)",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    // Fictional personnummer (born 2011, valid Luhn digit) in a broken JSON item.
    sqlx::query(
        "INSERT INTO knut_agg_items (route, group_key, message_id, seq, item) \
         VALUES ('r', 'g', 'm', 1, '{\"pnr\": 201107044578')",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    let err = store
        .aggregate_claim("r", "g", "c", None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::CorruptRow { column: "item", .. }),
        "{text}"
    );
    assert!(!text.contains("201107044578"), "{text}");
}

#[test]
fn sqlite_url_preparation() {
    assert!(is_sqlite_memory("sqlite::memory:"));
    assert!(is_sqlite_memory("sqlite://?mode=memory&cache=private"));
    assert!(!is_sqlite_memory("sqlite://data/knut.db"));
    let dir = tempfile::tempdir().unwrap();
    let base = format!("sqlite://{}/a/knut.db", dir.path().display());
    assert_eq!(
        prepare_sqlite_file(&base).unwrap(),
        format!("{base}?mode=rwc")
    );
    assert!(dir.path().join("a").is_dir());
    let with_query = format!("{base}?cache=private");
    assert_eq!(
        prepare_sqlite_file(&with_query).unwrap(),
        format!("{with_query}&mode=rwc")
    );
    let with_mode = format!("{base}?mode=rw");
    assert_eq!(prepare_sqlite_file(&with_mode).unwrap(), with_mode);
}

#[tokio::test]
async fn debug_shows_the_backend_only() {
    let store = Store::memory().await.unwrap();
    assert_eq!(format!("{store:?}"), "Store { backend: \"sqlite\", .. }");
}
