//! Per-key ordering in a running system, the same scenario on both brokers: ten students
//! with thirty events each, sent interleaved over HTTP to an ordered route (`ordered_by:
//! .student`, 4 partitions, concurrency 4), which calls a downstream system inside the
//! test. The downstream answers after a random pause of up to 8 ms and refuses the first
//! attempt of every fifth event with 503 (retried in place).
//!
//! What must hold: every event arrives exactly once, each student's events arrive in
//! sequence order, and no two events of one student are ever in the downstream at the same
//! time — across every knut instance (each instance calls the downstream under a path of
//! its own, `/<instance>/events`, so the test knows who delivered what).
//!
//! Use it with `#[path = "support/ordered.rs"] mod ordered;`. The students are fictional.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use knutpunkt::config::Config;
use knutpunkt::runtime::System;

/// Students in the scenario.
pub const STUDENTS: u64 = 10;
/// Events per student.
pub const EVENTS: u64 = 30;

/// What the downstream saw.
#[derive(Default)]
struct Seen {
    /// Successful calls per student, in arrival order.
    delivered: BTreeMap<String, Vec<u64>>,
    /// Calls answered 503.
    refused: u64,
    /// Students with a call in progress.
    busy: BTreeSet<String>,
    /// Calls that came while another call of the same student was in progress.
    overlaps: Vec<(String, u64)>,
    /// Calls in progress now, and the most there ever were.
    in_flight: usize,
    most_in_flight: usize,
    /// (student, seq) that were refused once already.
    refused_once: BTreeSet<(String, u64)>,
    /// Successful calls per knut instance.
    by_instance: BTreeMap<String, usize>,
}

/// The downstream system: `POST /<instance>/events` with `{"student", "seq"}`.
pub struct Downstream {
    seen: Arc<Mutex<Seen>>,
    addr: SocketAddr,
}

async fn event(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(instance): UrlPath<String>,
    body: bytes::Bytes,
) -> StatusCode {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let (Some(student), Some(seq)) = (v["student"].as_str(), v["seq"].as_u64()) else {
        return StatusCode::BAD_REQUEST;
    };
    let student = student.to_string();
    {
        let mut s = seen.lock().expect("lock");
        if !s.busy.insert(student.clone()) {
            s.overlaps.push((student.clone(), seq));
        }
        s.in_flight += 1;
        s.most_in_flight = s.most_in_flight.max(s.in_flight);
    }
    let pause = rand::random_range(0..=8);
    tokio::time::sleep(Duration::from_millis(pause)).await;
    let mut s = seen.lock().expect("lock");
    s.busy.remove(&student);
    s.in_flight -= 1;
    let index: u64 = student
        .trim_start_matches("elev-")
        .parse()
        .unwrap_or_default();
    if (index * 7 + seq).is_multiple_of(5) && s.refused_once.insert((student.clone(), seq)) {
        s.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    s.delivered.entry(student).or_default().push(seq);
    *s.by_instance.entry(instance).or_default() += 1;
    StatusCode::OK
}

impl Downstream {
    /// Listen on a free port of 127.0.0.1.
    pub async fn start() -> Downstream {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route("/{instance}/events", post(event))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the downstream");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Downstream { seen, addr }
    }

    /// Events delivered so far.
    pub fn delivered(&self) -> usize {
        let s = self.seen.lock().expect("lock");
        s.delivered.values().map(Vec::len).sum()
    }

    /// Events delivered so far by the instance named `instance`.
    pub fn delivered_by(&self, instance: &str) -> usize {
        let s = self.seen.lock().expect("lock");
        s.by_instance.get(instance).copied().unwrap_or(0)
    }

    /// Wait until at least `n` events were delivered (at most 90 s).
    pub async fn wait_for(&self, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.delivered() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} of {n} events arrived",
                self.delivered()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until every event arrived, then check exactly once, in order, never overlapping.
    pub async fn assert_all_in_order(&self, what: &str) {
        let total = usize::try_from(STUDENTS * EVENTS).expect("small");
        self.wait_for(total, what).await;
        // Anything delivered twice would come soon after.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = self.seen.lock().expect("lock");
        let expected: Vec<u64> = (0..EVENTS).collect();
        for i in 0..STUDENTS {
            let student = format!("elev-{i}");
            assert_eq!(
                s.delivered.get(&student),
                Some(&expected),
                "{what}: {student}'s events arrived out of order, twice or not at all"
            );
        }
        assert_eq!(s.delivered.len(), usize::try_from(STUDENTS).expect("small"));
        assert!(
            s.overlaps.is_empty(),
            "{what}: events of one student were processed at the same time: {:?}",
            s.overlaps
        );
        assert_eq!(
            s.refused, 60,
            "{what}: the first attempt of every fifth event is refused"
        );
        eprintln!(
            "{what}: {total} events in order, {} refusals retried in place, at most {} calls at once",
            s.refused, s.most_in_flight
        );
    }
}

/// A root with the ordered route `route` (reached at `/in/<route>`) calling `downstream`
/// as `instance`.
pub fn write_root(root: &Path, route: &str, downstream: &Downstream, instance: &str) {
    let write = |rel: &str, text: String| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write(
        "adapters/downstream.yaml",
        format!(
            "adapter: downstream\nbase_url: http://{}/{instance}\ntimeout: 5s\noperations:\n  deliver:\n    method: POST\n    path: /events\n",
            downstream.addr
        ),
    );
    write(
        &format!("routes/{route}.yaml"),
        format!(
            "route: {route}
from:
  http: {{ path: /in/{route}, auth: none, format: json }}
ordered_by: .student
partitions: 4
consumer: {{ concurrency: 4 }}
steps:
  - to: {{ adapter: downstream, operation: deliver }}
errors:
  retry: {{ attempts: 10, initial: 20ms, max: 200ms }}
"
        ),
    );
}

/// Start a system on `root`; `broker` is a `[broker]` section, or empty for the embedded one.
pub async fn start(root: &Path, broker: &str) -> System {
    let config = Config::from_toml_str(&format!(
        "profile = \"development\"\n{broker}\n[http]\nbind = \"127.0.0.1:0\"\nrate_limit = {{ per_second = 100000, burst = 100000 }}\n[admin]\nbind = \"127.0.0.1:0\"\n[sandbox]\nenabled = false\n[external]\nhttp_bind = \"127.0.0.1:0\"\nadmin_bind = \"127.0.0.1:0\"\n"
    ))
    .expect("config");
    System::start(root, &config).await.expect("system starts")
}

/// Send the events of `seqs` to the ingress at `http`, interleaved (every student's event
/// `seq` before any `seq + 1`), one request at a time, each accepted (202) before the next.
pub async fn send(http: SocketAddr, route: String, seqs: std::ops::Range<u64>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("http://{http}/in/{route}");
    for seq in seqs {
        for i in 0..STUDENTS {
            let body =
                serde_json::json!({"student": format!("elev-{i}"), "seq": seq, "note": "fiktiv"});
            let resp = client.post(&url).json(&body).send().await.expect("sent");
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            assert_eq!(status, 202, "event {seq} of elev-{i} accepted: {text}");
        }
    }
}

/// A route id of its own for this run (tests share a RabbitMQ node).
pub fn unique_route() -> String {
    format!(
        "ordered-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

/// The whole scenario on one system: send every event, check the order, stop.
pub async fn one_instance(broker: &str, what: &str) {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let route = unique_route();
    write_root(dir.path(), &route, &downstream, what);
    let system = start(dir.path(), broker).await;
    send(system.http_addr, route.clone(), 0..EVENTS).await;
    downstream.assert_all_in_order(what).await;
    let dlq = knutpunkt::broker::dead_letter_queue(&route);
    assert_eq!(system.broker.queue_depth(&dlq).await.expect("depth"), 0);
    system.shutdown(Duration::from_secs(10)).await;
}
