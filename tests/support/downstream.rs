//! The fault tests' downstream system and client (`tests/faults.rs`, `tests/scale_out.rs`):
//! a [`Sink`] that records every call and treats a repeated `idempotency-key` as the same
//! request, a client that resends until accepted ([`post_all`]), and the `tests/roots/faults`
//! route set ([`make_root`]).
//!
//! A message `n` is *lost* when no call for it ever succeeded, and a side effect is
//! *duplicated* when calls for the same `n` carried two different keys ([`Tally`]).
//!
//! Use it with `#[path = "support/downstream.rs"] mod downstream;` next to
//! `support/knut.rs` as `knut` and `support/root.rs` as `root`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::knut::Knut;
use super::root;

// ---------------------------------------------------------------------------------------
// The downstream system
// ---------------------------------------------------------------------------------------

/// What the downstream saw.
#[derive(Default)]
pub struct Record {
    /// Successful `/deliver` calls: n → the distinct idempotency keys.
    pub keys: BTreeMap<u64, BTreeSet<String>>,
    /// Every `/deliver` call (refused ones included): n → when.
    pub attempts: BTreeMap<u64, Vec<Instant>>,
    /// Successful `/deliver` calls in all (repeats of a key included).
    pub raw: u64,
    /// `/deliver` calls answered 503.
    pub refused: u64,
    /// Successful `/other` calls: the distinct n.
    pub other: BTreeSet<u64>,
    /// Successful `/deliver` calls per n (repeats of a key included).
    pub receipts: BTreeMap<u64, u64>,
    /// When `/list` (a poll) was called.
    pub lists: Vec<Instant>,
}

#[derive(Default)]
pub struct SinkState {
    pub record: Mutex<Record>,
    /// Answer `/deliver` with 503 while set.
    pub unavailable: AtomicBool,
    /// Answer `/deliver` with 503 for these n (poison messages) until they are removed.
    pub poisoned: Mutex<BTreeSet<u64>>,
}

pub struct Sink {
    pub state: Arc<SinkState>,
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn n_of(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("n")?
        .as_u64()
}

async fn deliver(
    State(s): State<Arc<SinkState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> StatusCode {
    let Some(n) = n_of(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let refuse = s.unavailable.load(Ordering::SeqCst) || s.poisoned.lock().unwrap().contains(&n);
    let mut r = s.record.lock().unwrap();
    r.attempts.entry(n).or_default().push(Instant::now());
    if refuse {
        r.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.raw += 1;
    *r.receipts.entry(n).or_default() += 1;
    r.keys.entry(n).or_default().insert(key);
    StatusCode::OK
}

async fn other(State(s): State<Arc<SinkState>>, body: bytes::Bytes) -> StatusCode {
    let Some(n) = n_of(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    s.record.lock().unwrap().other.insert(n);
    StatusCode::OK
}

/// The items `/list` answers: `LISTED` items `{"id": "item-k", "n": POLLED + k}`.
pub const LISTED: u64 = 50;
/// The `n` of the first listed item (far above any posted `n`).
pub const POLLED: u64 = 1_000_000;

async fn list(State(s): State<Arc<SinkState>>) -> axum::Json<serde_json::Value> {
    s.record.lock().unwrap().lists.push(Instant::now());
    let items: Vec<serde_json::Value> = (0..LISTED)
        .map(|k| serde_json::json!({"id": format!("item-{k}"), "n": POLLED + k, "note": "fiktiv"}))
        .collect();
    axum::Json(serde_json::json!({ "items": items }))
}

impl Sink {
    pub async fn start() -> Sink {
        let state = Arc::new(SinkState::default());
        let app = axum::Router::new()
            .route("/deliver", post(deliver))
            .route("/other", post(other))
            .route("/list", axum::routing::get(list))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Sink { state, addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn delivered(&self) -> usize {
        self.state.record.lock().unwrap().keys.len()
    }

    /// When `/list` was called (each poll of the poll route), in order.
    pub fn lists(&self) -> Vec<Instant> {
        self.state.record.lock().unwrap().lists.clone()
    }

    pub fn other_delivered(&self) -> usize {
        self.state.record.lock().unwrap().other.len()
    }

    /// Lost (never delivered) and duplicated (a second distinct key) among `0..count`, and
    /// the raw number of successful calls.
    pub fn tally(&self, count: u64) -> Tally {
        let r = self.state.record.lock().unwrap();
        let lost: Vec<u64> = (0..count).filter(|n| !r.keys.contains_key(n)).collect();
        let duplicated: Vec<u64> = r
            .keys
            .iter()
            .filter(|(_, k)| k.len() > 1)
            .map(|(n, _)| *n)
            .collect();
        let unexpected = r.keys.keys().filter(|n| **n >= count).count();
        Tally {
            lost,
            duplicated,
            unexpected,
            raw: r.raw,
            refused: r.refused,
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
pub struct Tally {
    pub lost: Vec<u64>,
    pub duplicated: Vec<u64>,
    pub unexpected: usize,
    pub raw: u64,
    pub refused: u64,
}

impl Tally {
    pub fn assert_exactly_once(&self, count: u64, what: &str) {
        eprintln!(
            "{what}: {count} messages, {} lost, {} with a duplicated side effect, {} raw successful \
             calls ({} beyond one per message), {} refused calls",
            self.lost.len(),
            self.duplicated.len(),
            self.raw,
            self.raw.saturating_sub(count),
            self.refused
        );
        assert!(
            self.lost.is_empty(),
            "{what}: lost messages {:?}",
            first(&self.lost)
        );
        assert!(
            self.duplicated.is_empty(),
            "{what}: duplicated side effects for {:?}",
            first(&self.duplicated)
        );
        assert_eq!(self.unexpected, 0, "{what}: calls for messages never sent");
    }
}

pub fn first(v: &[u64]) -> &[u64] {
    &v[..v.len().min(20)]
}

// ---------------------------------------------------------------------------------------
// `knut run` as a child process
// ---------------------------------------------------------------------------------------

/// A scratch copy of `tests/roots/faults` whose route ids and exchange carry `tag`, so that
/// the tests' queues on the shared node never meet.
pub fn make_root(tag: &str) -> tempfile::TempDir {
    make_root_with(tag, &[])
}

/// [`make_root`] with the routes of further roots (e.g. `tests/roots/scale-out`) added.
pub fn make_root_with(tag: &str, more: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = root::repo().join("tests/roots/faults");
    root::copy_dir(&src.join("adapters"), &dir.path().join("adapters"));
    std::fs::create_dir_all(dir.path().join("routes")).unwrap();
    let sources = std::iter::once(src.join("routes"))
        .chain(more.iter().map(|m| root::repo().join(m).join("routes")));
    let files = sources.flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()));
    for p in files {
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("route: faults-", &format!("route: faults-{tag}-"))
            .replace("faults.work", &format!("faults.{tag}.work"));
        std::fs::write(dir.path().join("routes").join(p.file_name().unwrap()), text).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    dir
}

/// `knut run` on `root` with the downstream `sink`, on RabbitMQ at `amqp` or, with `None`,
/// the embedded broker (in memory: nothing survives a restart).
pub fn faults_knut(root: &Path, amqp: Option<&str>, sink: &Sink) -> Knut {
    let url = sink.url();
    Knut::new(
        root,
        amqp,
        &[
            ("KNUT_ADAPTER_SINK_URL", &url),
            ("KNUT_ADAPTER_SINK_OTHER_URL", &url),
        ],
    )
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(8)
        .build()
        .unwrap()
}

/// Post `{"n": n}` for every `n` in `ns` to `path`, each until it is answered 202 (a client
/// that resends what was not accepted, through crashes and outages), from `lanes`
/// concurrent keep-alive connections. Returns when all are accepted; panics after `secs`.
pub fn post_all(
    client: reqwest::Client,
    port: u16,
    path: &'static str,
    ns: impl IntoIterator<Item = u64>,
    lanes: u64,
    secs: u64,
) -> tokio::task::JoinHandle<()> {
    post_all_to(client, vec![port], path, ns, lanes, secs)
}

/// [`post_all`] to several knut instances: lane `i` starts with `ports[i % len]` and, when
/// a message is not accepted there, resends it to the next (a client behind a load
/// balancer).
pub fn post_all_to(
    client: reqwest::Client,
    ports: Vec<u16>,
    path: &'static str,
    ns: impl IntoIterator<Item = u64>,
    lanes: u64,
    secs: u64,
) -> tokio::task::JoinHandle<()> {
    let ns: Vec<u64> = ns.into_iter().collect();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut set = tokio::task::JoinSet::new();
        for lane in 0..lanes {
            let client = client.clone();
            let ns = ns.clone();
            let ports = ports.clone();
            set.spawn(async move {
                let mut at = lane as usize % ports.len();
                let mine = ns
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i as u64 % lanes == lane);
                for (_, &n) in mine {
                    let body = serde_json::json!({"n": n, "note": "fiktiv"});
                    loop {
                        let url = format!("http://127.0.0.1:{}{path}", ports[at]);
                        match client.post(&url).json(&body).send().await {
                            Ok(r) if r.status() == 202 => break,
                            _ => {
                                at = (at + 1) % ports.len();
                                assert!(Instant::now() < deadline, "message {n} never accepted");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    })
}

/// The value of the counter `name` for `route` on `knut`'s admin port (`/metrics`).
pub async fn metric(http: &reqwest::Client, knut: &Knut, name: &str, route: &str) -> Option<u64> {
    let text = http
        .get(format!("http://127.0.0.1:{}/metrics", knut.admin))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let label = format!("route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

pub async fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `count` messages arrived, then a little longer for late duplicates.
pub async fn wait_all_delivered(sink: &Sink, count: u64, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while (sink.delivered() as u64) < count {
        if Instant::now() > deadline {
            let t = sink.tally(count);
            panic!(
                "{what}: after {secs} s, {} of {count} delivered; first lost: {:?}",
                sink.delivered(),
                first(&t.lost)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}
