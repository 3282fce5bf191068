//! Fault tests on real RabbitMQ (issue 3): `knut run` as a child process, a two-hop route
//! set (`tests/roots/faults`: http → `publish` → queue → `idempotent` → `to: sink`), and a
//! downstream system inside the test that records every call.
//!
//! The downstream treats a repeated `idempotency-key` as the same request, as the
//! municipality's APIs do: a message `n` is *lost* when no call for it ever succeeded, and a
//! side effect is *duplicated* when calls for the same `n` carried two different keys.
//!
//! Each test runs alone (they share the private broker node, and one of them stops it), is
//! bounded in messages and time, talks only to 127.0.0.1, and kills only the `knut`
//! processes it started. The message bodies are fictional (`{"n": 17, "note": "fiktiv"}`).
//!
//! The dead-letter proof (poison → fix → `knut dlq replay` → delivered once) runs here on
//! RabbitMQ and, with the same code, on the embedded broker.

#[path = "support/downstream.rs"]
mod downstream;
#[path = "support/knut.rs"]
mod knut;
#[path = "support/rabbit.rs"]
mod rabbit;
#[path = "support/root.rs"]
mod root;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use downstream::{Sink, client, faults_knut, make_root, post_all, wait_all_delivered, wait_for};
use knut::Knut;

/// The tests run one at a time: they share the broker node, and the outage test stops it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// `kill -9` of `knut run` in the middle of 5,000 messages through the two-hop route; after
/// a restart every message arrives, and no side effect happens twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    const COUNT: u64 = 5_000;
    let amqp = rabbit::amqp_url().await;
    let root = make_root("kill");
    let sink = Sink::start().await;
    let http = client();
    let mut knut = faults_knut(root.path(), Some(&amqp), &sink);
    knut.start(&http).await;

    // Every tenth message is sent twice (a client resending): a new message with the same
    // key, which only the idempotent step keeps from becoming a second side effect.
    let ns = (0..COUNT).flat_map(|n| if n % 10 == 0 { vec![n, n] } else { vec![n] });
    let posting = post_all(http.clone(), knut.http, "/in/faults", ns, 4, 150);
    wait_for(60, "1,000 deliveries before the kill", || {
        sink.delivered() >= 1_000
    })
    .await;
    knut.kill();
    let at_kill = sink.delivered();
    eprintln!("kill -9 after {at_kill} of {COUNT} deliveries");
    assert!(
        (at_kill as u64) < COUNT,
        "the kill came after the stream ended; it proves nothing"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    knut.start(&http).await;
    posting.await.unwrap();
    wait_all_delivered(&sink, COUNT, 120, "after kill -9").await;
    sink.tally(COUNT).assert_exactly_once(COUNT, "kill -9");
    let _ = knut.terminate().await;
}

/// The broker stops and starts mid-stream: `/readyz` is 503 during the outage, knut
/// reconnects by itself, `/readyz` is 200 after, nothing is lost or done twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_reconnects_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    if rabbit::private_node().await.is_none() {
        eprintln!(
            "skipped: KNUT_TEST_AMQP_URL names a shared broker, which this test must not stop"
        );
        return;
    }
    const COUNT: u64 = 2_000;
    let amqp = rabbit::amqp_url().await;
    let root = make_root("outage");
    let sink = Sink::start().await;
    let http = client();
    let mut knut = faults_knut(root.path(), Some(&amqp), &sink);
    knut.start(&http).await;

    let posting = post_all(http.clone(), knut.http, "/in/faults", 0..COUNT, 4, 150);
    wait_for(60, "300 deliveries before the outage", || {
        sink.delivered() >= 300
    })
    .await;
    rabbit::stop_node().await;
    let at_stop = sink.delivered();
    eprintln!("broker stopped after {at_stop} of {COUNT} deliveries");
    let deadline = Instant::now() + Duration::from_secs(20);
    while knut.ready(&http).await != Some(503) {
        assert!(
            Instant::now() < deadline,
            "/readyz never turned 503 during the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        knut.ready(&http).await,
        Some(503),
        "/readyz stays 503 while the broker is down"
    );
    assert!(knut.exited().is_none(), "knut stays up through the outage");

    rabbit::start_node().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while knut.ready(&http).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "knut did not reconnect within 60 s:\n{}",
            knut.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    posting.await.unwrap();
    wait_all_delivered(&sink, COUNT, 120, "after the broker restart").await;
    sink.tally(COUNT)
        .assert_exactly_once(COUNT, "broker restart");
    assert_eq!(knut.terminate().await.code(), Some(0));
}

/// The downstream answers 503 for a while: its messages are retried with growing delays
/// and delivered after it recovers; another route keeps flowing meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_outage_is_retried_with_growing_delay_while_others_flow() {
    let _serial = SERIAL.lock().await;
    const COUNT: u64 = 50;
    const OTHERS: u64 = 300;
    let amqp = rabbit::amqp_url().await;
    let root = make_root("downstream");
    let sink = Sink::start().await;
    sink.state.unavailable.store(true, Ordering::SeqCst);
    let http = client();
    let mut knut = faults_knut(root.path(), Some(&amqp), &sink);
    knut.start(&http).await;

    post_all(http.clone(), knut.http, "/in/faults", 0..COUNT, 2, 60)
        .await
        .unwrap();
    post_all(
        http.clone(),
        knut.http,
        "/in/faults/other",
        0..OTHERS,
        2,
        60,
    )
    .await
    .unwrap();
    wait_for(30, "the other route to deliver during the outage", || {
        sink.other_delivered() as u64 == OTHERS
    })
    .await;
    assert_eq!(
        sink.delivered(),
        0,
        "nothing passes a downstream answering 503"
    );
    wait_for(30, "four attempts of every message", || {
        let r = sink.state.record.lock().unwrap();
        (0..COUNT).all(|n| r.attempts.get(&n).is_some_and(|a| a.len() >= 4))
    })
    .await;
    // Retry delays: initial 200ms doubling (with jitter in [d/2, d]): the gaps grow.
    let (mut first_gaps, mut third_gaps) = (Vec::new(), Vec::new());
    {
        let r = sink.state.record.lock().unwrap();
        for a in r.attempts.values() {
            first_gaps.push(a[1] - a[0]);
            third_gaps.push(a[3] - a[2]);
        }
    }
    first_gaps.sort();
    third_gaps.sort();
    let (g1, g3) = (
        first_gaps[first_gaps.len() / 2],
        third_gaps[third_gaps.len() / 2],
    );
    eprintln!("median gap before retry 1: {g1:?}, before retry 3: {g3:?}");
    assert!(
        g1 >= Duration::from_millis(90),
        "first retry too early: {g1:?}"
    );
    assert!(
        g3 >= Duration::from_millis(390),
        "third retry too early: {g3:?}"
    );
    assert!(g3 > g1, "delays grow: {g1:?} then {g3:?}");

    sink.state.unavailable.store(false, Ordering::SeqCst);
    wait_all_delivered(&sink, COUNT, 30, "after the downstream recovered").await;
    sink.tally(COUNT)
        .assert_exactly_once(COUNT, "downstream outage");
    assert_eq!(knut.terminate().await.code(), Some(0));
}

/// SIGTERM under load: knut finishes what it holds and exits cleanly; after a restart every
/// message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    const COUNT: u64 = 3_000;
    let amqp = rabbit::amqp_url().await;
    let root = make_root("sigterm");
    let sink = Sink::start().await;
    let http = client();
    let mut knut = faults_knut(root.path(), Some(&amqp), &sink);
    knut.start(&http).await;

    let posting = post_all(http.clone(), knut.http, "/in/faults", 0..COUNT, 4, 150);
    wait_for(60, "800 deliveries before SIGTERM", || {
        sink.delivered() >= 800
    })
    .await;
    let status = knut.terminate().await;
    let at_stop = sink.delivered();
    eprintln!("SIGTERM after {at_stop} of {COUNT} deliveries: {status:?}");
    assert_eq!(
        status.code(),
        Some(0),
        "graceful exit:\n{}",
        knut.log_tail()
    );
    assert!(
        (at_stop as u64) < COUNT,
        "SIGTERM came after the stream ended"
    );

    knut.start(&http).await;
    posting.await.unwrap();
    wait_all_delivered(&sink, COUNT, 120, "after SIGTERM").await;
    let tally = sink.tally(COUNT);
    tally.assert_exactly_once(COUNT, "SIGTERM");
    // A graceful stop finishes and acks what it holds: nothing is redelivered, so not even
    // a repeat with the same key reaches the downstream.
    assert_eq!(tally.raw, COUNT, "calls repeated after a graceful stop");
    assert_eq!(knut.terminate().await.code(), Some(0));
}

/// The value of `knut_messages_dead_lettered_total` for `route` on the admin port.
async fn dead_lettered(http: &reqwest::Client, knut: &Knut, route: &str) -> Option<u64> {
    downstream::metric(http, knut, "knut_messages_dead_lettered_total", route).await
}

/// A downstream outage longer than the route's retry budget: every message is dead-lettered
/// after its attempts (no more calls after that), and once the downstream is back, a resend
/// of the same business keys is delivered exactly once, not suppressed as a duplicate of
/// the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_beyond_the_retry_budget_dead_letters_and_a_resend_is_delivered() {
    let _serial = SERIAL.lock().await;
    const COUNT: u64 = 20;
    let amqp = rabbit::amqp_url().await;
    let root = make_root("budget");
    let sink = Sink::start().await;
    sink.state.unavailable.store(true, Ordering::SeqCst);
    let http = client();
    let mut knut = faults_knut(root.path(), Some(&amqp), &sink);
    knut.start(&http).await;

    post_all(http.clone(), knut.http, "/in/faults/brief", 0..COUNT, 2, 60)
        .await
        .unwrap();
    let route = "faults-budget-brief";
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead_lettered(&http, &knut, route).await != Some(COUNT) {
        assert!(
            Instant::now() < deadline,
            "not every message was dead-lettered: {:?} of {COUNT}",
            dead_lettered(&http, &knut, route).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let r = sink.state.record.lock().unwrap();
        for n in 0..COUNT {
            assert_eq!(
                r.attempts.get(&n).map(Vec::len),
                Some(3),
                "message {n}: three attempts, then the dead-letter queue"
            );
        }
    }

    sink.state.unavailable.store(false, Ordering::SeqCst);
    post_all(http.clone(), knut.http, "/in/faults/brief", 0..COUNT, 2, 60)
        .await
        .unwrap();
    wait_all_delivered(&sink, COUNT, 30, "the resend after the outage").await;
    let tally = sink.tally(COUNT);
    tally.assert_exactly_once(COUNT, "resend after dead letters");
    assert_eq!(tally.raw, COUNT);
    assert_eq!(knut.terminate().await.code(), Some(0));
}

// ---------------------------------------------------------------------------------------
// Dead letters: poison → fix → replay once
// ---------------------------------------------------------------------------------------

/// `knut dlq ARGS… --admin` against `knut`: (success, stdout, stderr).
async fn knut_dlq(knut: &Knut, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_knut"));
    command
        .arg("--root")
        .arg(&knut.root)
        .arg("dlq")
        .args(args)
        .args(["--admin", &format!("127.0.0.1:{}", knut.admin)])
        .env_remove("KNUT__ADMIN__BIND");
    let out = tokio::task::spawn_blocking(move || command.output().expect("knut dlq runs"))
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The dead letters of `route` as the admin API lists them.
async fn dead_letters(http: &reqwest::Client, knut: &Knut, route: &str) -> Vec<serde_json::Value> {
    let url = format!("http://127.0.0.1:{}/api/routes/{route}/dlq", knut.admin);
    let list: serde_json::Value = http
        .get(url)
        .bearer_auth(knut.admin_token())
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("a JSON list");
    list["dead_letters"].as_array().cloned().unwrap_or_default()
}

/// One poison message among a stream: the downstream answers 503 for it (and only it), so
/// after the route's three attempts it lands in the dead-letter queue with its reason while
/// the rest of the stream is delivered. `knut dlq show` shows it with its personnummer
/// masked. Then the downstream is fixed and `knut dlq replay` (the real CLI against the
/// running knut) delivers it exactly once; the dead-letter queue is empty and the journal
/// records the replay.
async fn poison_is_dead_lettered_then_replayed_once(tag: &str, amqp: Option<String>) {
    const COUNT: u64 = 30;
    const POISON: u64 = 13;
    const PNR: &str = "20130412-2383";
    let root = make_root(tag);
    let sink = Sink::start().await;
    sink.state.poisoned.lock().unwrap().insert(POISON);
    let http = client();
    let mut knut = faults_knut(root.path(), amqp.as_deref(), &sink);
    knut.start(&http).await;
    let route = format!("faults-{tag}-brief");

    let poison = serde_json::json!({"n": POISON, "note": "fiktiv", "civicNo": PNR});
    let accepted = http
        .post(format!("http://127.0.0.1:{}/in/faults/brief", knut.http))
        .json(&poison)
        .send()
        .await
        .expect("post the poison");
    assert_eq!(accepted.status(), 202);
    post_all(
        http.clone(),
        knut.http,
        "/in/faults/brief",
        (0..COUNT).filter(|n| *n != POISON),
        2,
        60,
    )
    .await
    .unwrap();
    wait_for(30, "the rest of the stream", || {
        sink.delivered() as u64 == COUNT - 1
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = dead_letters(&http, &knut, &route).await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "the poison was never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    let id = dead[0]["id"].as_str().expect("an id").to_string();
    assert_eq!(dead[0]["attempts"], 3, "{dead:?}");
    assert_eq!(dead[0]["step"], "steps[1].to", "{dead:?}");
    assert!(
        dead[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("503")),
        "{dead:?}"
    );
    assert_eq!(
        sink.state.record.lock().unwrap().attempts[&POISON].len(),
        3,
        "three attempts, then the dead-letter queue"
    );
    assert!(
        !sink
            .state
            .record
            .lock()
            .unwrap()
            .receipts
            .contains_key(&POISON)
    );

    let (ok, list, err) = knut_dlq(&knut, &["list", &route]).await;
    assert!(ok, "knut dlq list: {err}");
    assert!(
        list.contains(&id) && list.contains("1 dead letter in"),
        "{list}"
    );
    // Without a route: which routes hold dead letters, at a glance.
    let (ok, overview, err) = knut_dlq(&knut, &["list"]).await;
    assert!(ok, "knut dlq list: {err}");
    assert!(
        overview.contains(&route) && overview.contains("1 dead letter(s) in 1 route(s)"),
        "{overview}"
    );
    // With the age of its oldest dead letter (seconds to minutes old here), not `-`.
    let line = overview
        .lines()
        .find(|l| l.starts_with(route.as_str()))
        .unwrap_or_default();
    let oldest = line.split_whitespace().nth(2).unwrap_or_default();
    assert!(
        oldest.ends_with('s') || oldest.ends_with('m'),
        "no age of the oldest dead letter in {line:?}:\n{overview}"
    );
    let (ok, shown, err) = knut_dlq(&knut, &["show", &route, &id]).await;
    assert!(ok, "knut dlq show: {err}");
    assert!(!shown.contains(PNR), "the personnummer leaked:\n{shown}");
    assert!(shown.contains("********-****"), "{shown}");
    assert!(
        !shown.contains("20130412"),
        "not even the birth date:\n{shown}"
    );
    assert!(
        shown.contains("fiktiv") && shown.contains("attempts:       3"),
        "{shown}"
    );

    // Fixed downstream; the replay delivers the poison exactly once.
    sink.state.poisoned.lock().unwrap().clear();
    let (ok, out, err) = knut_dlq(&knut, &["replay", &route, &id]).await;
    assert!(ok, "knut dlq replay: {err}");
    assert!(out.contains(&format!("replayed {id}")), "{out}");
    wait_for(30, "the replayed poison to be delivered", || {
        sink.state
            .record
            .lock()
            .unwrap()
            .receipts
            .contains_key(&POISON)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink.state.record.lock().unwrap().receipts[&POISON],
        1,
        "the replay is delivered exactly once"
    );
    let tally = sink.tally(COUNT);
    tally.assert_exactly_once(COUNT, "poison replayed");
    assert_eq!(tally.raw, COUNT, "no call repeated");
    let (ok, list, err) = knut_dlq(&knut, &["list", &route]).await;
    assert!(ok, "knut dlq list: {err}");
    assert_eq!(list.trim(), format!("no dead letters in knut.dlq.{route}"));
    let (ok, _, err) = knut_dlq(&knut, &["replay", &route, &id]).await;
    assert!(!ok, "a second replay of the same id must fail");
    assert!(err.contains("no dead letter with id"), "{err}");

    let store = knutpunkt::store::Store::connect(&format!(
        "sqlite://{}",
        root.path().join("data/knut.db").display()
    ))
    .await
    .expect("the journal");
    let correlation = uuid::Uuid::parse_str(dead[0]["correlation_id"].as_str().unwrap()).unwrap();
    let hops = store.journal_for(correlation).await.expect("journal rows");
    let replays: Vec<_> = hops
        .iter()
        .filter(|h| h.step == "replay" && h.route == route)
        .collect();
    assert_eq!(replays.len(), 1, "{hops:?}");
    assert_eq!(replays[0].outcome, "replayed");
    assert_eq!(replays[0].message_id.to_string(), id);
    store.close().await;
    assert_eq!(knut.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_poison_is_replayed_once_on_rabbitmq() {
    let _serial = SERIAL.lock().await;
    let amqp = rabbit::amqp_url().await;
    poison_is_dead_lettered_then_replayed_once("dlq", Some(amqp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_poison_is_replayed_once_on_the_embedded_broker() {
    let _serial = SERIAL.lock().await;
    poison_is_dead_lettered_then_replayed_once("dlqembedded", None).await;
}

/// Groups of three through an aggregator, with the downstream down while groups complete
/// (the steps after the aggregator fail and are retried) and, on RabbitMQ, `kill -9`
/// midway: every group is delivered once, whole — none lost, none repeated, none broken
/// into a smaller group that a timeout would complete.
async fn aggregate_groups_survive(tag: &str, amqp: Option<String>, kill: bool) {
    const GROUPS: u64 = 300;
    let root = make_root(tag);
    let sink = Sink::start().await;
    let http = client();
    let mut knut = faults_knut(root.path(), amqp.as_deref(), &sink);
    knut.start(&http).await;
    sink.state.unavailable.store(true, Ordering::SeqCst);
    let posting = post_all(
        http.clone(),
        knut.http,
        "/in/faults/groups",
        0..GROUPS * 3,
        4,
        150,
    );
    // Groups complete while the downstream refuses them.
    wait_for(60, "refused deliveries of completed groups", || {
        sink.state.record.lock().unwrap().refused >= 20
    })
    .await;
    if kill {
        knut.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        knut.start(&http).await;
    }
    sink.state.unavailable.store(false, Ordering::SeqCst);
    posting.await.unwrap();
    wait_all_delivered(&sink, GROUPS, 120, "aggregated groups").await;
    // Longer than the group timeout: a broken-up group would now complete.
    tokio::time::sleep(Duration::from_secs(22)).await;
    sink.tally(GROUPS)
        .assert_exactly_once(GROUPS, &format!("aggregate groups ({tag})"));
    let _ = knut.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_groups_survive_an_outage_and_kill_9_on_rabbitmq() {
    let _serial = SERIAL.lock().await;
    let amqp = rabbit::amqp_url().await;
    aggregate_groups_survive("agg", Some(amqp), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_groups_survive_an_outage_on_the_embedded_broker() {
    let _serial = SERIAL.lock().await;
    aggregate_groups_survive("aggemb", None, false).await;
}
