//! Memory stays bounded under a long stream when nobody scrapes `/metrics` (issue 14): the
//! Prometheus recorder keeps histogram samples until they are drained, which the upkeep
//! thread does every 5 s, so a monitoring outage must not become an out-of-memory crash.
//!
//! `knut run` (embedded broker, SQLite store) takes 200 batches of 1,000 items at one HTTP
//! route that splits each batch and runs every item through ten steps: 200,000 messages,
//! each leaving its step-duration samples and a journal row. The test never asks for
//! `/metrics`; it follows progress through the journal (the store's SQLite file) and reads
//! the process's resident memory (`VmRSS`) from `/proc` once the first quarter is done and
//! again at the end. The bodies are fictional numbers.

#[path = "support/knut.rs"]
mod knut;
#[path = "support/root.rs"]
mod root;

use std::time::{Duration, Instant};

use knut::Knut;

/// Batches of [`ITEMS`] items.
const BATCHES: u64 = 200;
const ITEMS: u64 = 1_000;
/// How much the resident memory may grow from the first quarter to the end.
const GROWTH_LIMIT_KB: u64 = 16 * 1024;

/// The resident memory of process `pid` in KiB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// How many items the route finished (its journal's end rows, not its steps' rows, read
/// from the SQLite file).
async fn finished(db: &sqlx::SqlitePool) -> u64 {
    let n: Result<(i64,), _> = sqlx::query_as(
        "SELECT COUNT(*) FROM knut_journal WHERE route = 'memory-parts' AND step = 'end' \
         AND outcome = 'ok'",
    )
    .fetch_one(db)
    .await;
    n.map_or(0, |(n,)| n.max(0) as u64)
}

async fn wait_finished(db: &sqlx::SqlitePool, count: u64, knut: &Knut, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let done = finished(db).await;
        if done >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {count} items finished after {secs} s:\n{}",
            knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_over_200_000_messages_without_a_scrape() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc to read the resident memory from");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    root::copy_dir(
        &root::repo().join("tests/roots/memory/routes"),
        &dir.path().join("routes"),
    );
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut knut = Knut::new(dir.path(), None, &[]);
    knut.start(&http).await;
    let pid = knut.pid().expect("knut runs");
    let db = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!(
            "sqlite://{}?mode=ro",
            dir.path().join("data/knut.db").display()
        ))
        .await
        .expect("the store's SQLite file");

    let started = Instant::now();
    let url = format!("http://127.0.0.1:{}/in/memory", knut.http);
    let mut quarter = None;
    for batch in 0..BATCHES {
        let items: Vec<serde_json::Value> = (0..ITEMS)
            .map(|i| serde_json::json!({"n": batch * ITEMS + i, "note": "fiktiv"}))
            .collect();
        let resp = http
            .post(&url)
            .json(&serde_json::json!({ "items": items }))
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 202, "batch {batch}");
        // Keep the queue short: memory should measure the recorder, not a backlog.
        wait_finished(&db, (batch + 1).saturating_sub(2) * ITEMS, &knut, 120).await;
        if batch + 1 == BATCHES / 4 {
            wait_finished(&db, (batch + 1) * ITEMS, &knut, 120).await;
            // Past the first upkeep rounds: what is left is the steady state.
            tokio::time::sleep(Duration::from_secs(6)).await;
            quarter = Some(rss_kb(pid));
        }
    }
    wait_finished(&db, BATCHES * ITEMS, &knut, 300).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let end = rss_kb(pid);
    let quarter = quarter.expect("measured at a quarter");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} messages in {secs:.0} s ({:.0}/s), no scrape: resident memory {} MiB after the \
         first quarter, {} MiB at the end ({:+} KiB)",
        BATCHES * ITEMS,
        (BATCHES * ITEMS) as f64 / secs,
        quarter / 1024,
        end / 1024,
        end as i64 - quarter as i64
    );
    assert!(
        end <= quarter + GROWTH_LIMIT_KB,
        "resident memory grew from {quarter} KiB to {end} KiB over 150,000 messages without a \
         scrape (limit {GROWTH_LIMIT_KB} KiB)"
    );
    db.close().await;
    let _ = knut.terminate().await;
}
