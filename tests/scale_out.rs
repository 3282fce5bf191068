//! Scale-out, proven on real components (issue 14): several `knut run` processes on one
//! RabbitMQ and one PostgreSQL, and one `knut run` on a three-node RabbitMQ cluster that
//! loses a node mid-stream.
//!
//! Both run the fault tests' two-hop route set (`tests/roots/faults`: http → `publish` →
//! queue → `idempotent` → `to: sink`) against the downstream of `support/downstream.rs`,
//! which treats a repeated `idempotency-key` as the same request: a message is *lost* when
//! no call for it succeeded, and a side effect is *duplicated* when calls for the same
//! message carried two different keys. The client resends what was not accepted (to the
//! other instance, as a load balancer would).
//!
//! Each test runs alone, is bounded in messages and time, talks only to 127.0.0.1, and
//! kills only the processes it started. The message bodies are fictional.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/downstream.rs"]
mod downstream;
#[path = "support/knut.rs"]
mod knut;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/rabbit.rs"]
mod rabbit;
#[path = "support/root.rs"]
mod root;

use std::time::{Duration, Instant};

use downstream::{
    LISTED, Sink, client, faults_knut, make_root_with, metric, post_all_to, wait_all_delivered,
    wait_for,
};
use knut::Knut;

/// The tests run one at a time: each loads both cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The poll route's interval (`tests/roots/scale-out/routes/faults-poll.yaml`).
const POLL_EVERY: Duration = Duration::from_secs(5);

/// `knut`'s log of its first start.
fn log(knut: &Knut) -> String {
    std::fs::read_to_string(knut.log(1)).unwrap_or_default()
}

/// True when the last word of `knut`'s log on the poll lease is that it holds it.
fn polls(knut: &Knut) -> bool {
    let log = log(knut);
    let held = log.rfind("this instance polls");
    let lost = log.rfind("another instance polls");
    held.is_some_and(|h| lost.is_none_or(|l| h > l))
}

/// Two `knut run` on one RabbitMQ and one PostgreSQL share the routes: 20,000 messages
/// (every tenth sent twice, as a client resending) through the two-hop route, posted to
/// both; both consume the work queue; midway the instance holding the poll lease is
/// `kill -9`-ed. Every message arrives once (0 lost, 0 duplicated side effects), the
/// survivor takes over the poll lease within three polling intervals, and the poll's
/// items each arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_work_and_survive_kill_9_of_one() {
    let _serial = SERIAL.lock().await;
    let test = "two_instances_share_the_work_and_survive_kill_9_of_one";
    pg::with_schema(test, |store| async move {
        const COUNT: u64 = 20_000;
        let amqp = rabbit::amqp_url().await;
        let sink = Sink::start().await;
        let http = client();
        let roots = [
            make_root_with("scale", &["tests/roots/scale-out"]),
            make_root_with("scale", &["tests/roots/scale-out"]),
        ];
        let mut knuts: Vec<Knut> = roots
            .iter()
            .map(|r| {
                let mut k = faults_knut(r.path(), Some(&amqp), &sink);
                k.env.push(("KNUT__STORE__URL".into(), store.clone()));
                k
            })
            .collect();
        for k in &mut knuts {
            k.start(&http).await;
        }
        let started = Instant::now();
        let ns = (0..COUNT).flat_map(|n| if n % 10 == 0 { vec![n, n] } else { vec![n] });
        let ports = knuts.iter().map(|k| k.http).collect();
        let posting = post_all_to(http.clone(), ports, "/in/faults", ns, 4, 600);

        wait_for(60, "an instance holding the poll lease", || {
            knuts.iter().any(polls)
        })
        .await;
        wait_for(120, "5,000 deliveries before the kill", || {
            sink.delivered() >= 5_000
        })
        .await;
        // Both instances consumed from the work queue (competing consumers).
        for k in &knuts {
            let done = metric(&http, k, "knut_messages_out_total", "faults-scale-deliver")
                .await
                .unwrap_or(0);
            eprintln!("instance on port {}: {done} messages through hop 2", k.http);
            assert!(done > 0, "both instances take work from the queue");
        }
        let holders: Vec<usize> = (0..knuts.len()).filter(|i| polls(&knuts[*i])).collect();
        assert_eq!(
            holders.len(),
            1,
            "exactly one instance holds the poll lease"
        );
        let holder = holders[0];
        let survivor = 1 - holder;
        let lists_before = sink.lists().len();
        knuts[holder].kill();
        let killed_at = Instant::now();
        let at_kill = sink.delivered();
        eprintln!("kill -9 of the poll lease's holder after {at_kill} of {COUNT} deliveries");
        assert!(
            (at_kill as u64) < COUNT,
            "the kill came after the stream ended; it proves nothing"
        );
        assert!(lists_before > 0, "the holder polled before the kill");

        // The survivor takes over the poll lease: at its first turn after the lease ran out
        // (two intervals after the holder's last renewal, plus its last poll's few ms).
        let limit = POLL_EVERY * 3;
        let deadline = killed_at + limit + Duration::from_secs(10);
        let takeover = loop {
            if let Some(at) = sink.lists().into_iter().find(|at| *at > killed_at) {
                break at - killed_at;
            }
            assert!(
                Instant::now() < deadline,
                "no poll within {} s of the kill:\n{}",
                (limit + Duration::from_secs(10)).as_secs(),
                knuts[survivor].log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        eprintln!(
            "the survivor polled {:.1} s after the kill (limit: three intervals, {} s)",
            takeover.as_secs_f64(),
            limit.as_secs()
        );
        // Three intervals, and slack for a store round trip and a list call on a machine
        // this loaded (two knut, RabbitMQ and PostgreSQL on two cores).
        assert!(
            takeover <= limit + Duration::from_secs(3),
            "the poll lease was taken over after {takeover:?}, more than three intervals"
        );
        assert!(polls(&knuts[survivor]), "the survivor says it polls");

        posting.await.unwrap();
        wait_all_delivered(&sink, COUNT, 300, "two instances, one killed").await;
        let elapsed = started.elapsed();
        sink.tally(COUNT)
            .assert_exactly_once(COUNT, "two instances, kill -9 of one");
        eprintln!(
            "{COUNT} messages through two hops on two instances (one killed) in {:.1} s",
            elapsed.as_secs_f64()
        );
        // Each polled item arrives (a wait that fails when one never does).
        wait_for(30, "every polled item", || {
            sink.other_delivered() as u64 >= LISTED
        })
        .await;
        let _ = knuts[survivor].terminate().await;
    })
    .await;
}

/// One `knut run` on a three-node RabbitMQ cluster of private nodes, connected to node 0
/// and told of the others (`broker.nodes`). Mid-stream node 0 — the one knut is connected
/// to, and the one the others joined — is stopped: knut reconnects to another node, the
/// quorum queues keep their majority, and every message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_stopped_mid_stream_loses_nothing() {
    let _serial = SERIAL.lock().await;
    if std::env::var("KNUT_TEST_AMQP_URL").is_ok() {
        eprintln!("skipped: KNUT_TEST_AMQP_URL names a broker; this test needs private nodes");
        return;
    }
    const COUNT: u64 = 5_000;
    let cluster = cluster::Cluster::start(3).await;
    let urls = cluster.urls();
    let nodes: Vec<String> = cluster.nodes[1..]
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let root = make_root_with("cluster", &[]);
    let sink = Sink::start().await;
    let http = client();
    let mut knut = faults_knut(root.path(), Some(&urls[0]), &sink);
    knut.env
        .push(("KNUT__BROKER__NODES".into(), nodes.join(",")));
    knut.start(&http).await;

    let started = Instant::now();
    let ns = (0..COUNT).flat_map(|n| if n % 10 == 0 { vec![n, n] } else { vec![n] });
    let posting = post_all_to(http.clone(), vec![knut.http], "/in/faults", ns, 4, 300);
    wait_for(60, "1,000 deliveries before the node stops", || {
        sink.delivered() >= 1_000
    })
    .await;
    cluster.stop(0).await;
    let stopped_at = Instant::now();
    let at_stop = sink.delivered();
    eprintln!("node 0 stopped after {at_stop} of {COUNT} deliveries");
    assert!(
        (at_stop as u64) < COUNT,
        "the stop came after the stream ended; it proves nothing"
    );
    // Deliveries resume through the other nodes.
    wait_for(60, "deliveries after the node stopped", || {
        sink.delivered() > at_stop + 100
    })
    .await;
    let resumed = stopped_at.elapsed();
    eprintln!(
        "deliveries resumed {:.1} s after node 0 stopped",
        resumed.as_secs_f64()
    );
    assert!(
        log(&knut).contains("reconnected to RabbitMQ"),
        "knut reconnected to another node:\n{}",
        knut.log_tail()
    );
    posting.await.unwrap();
    wait_all_delivered(&sink, COUNT, 300, "a cluster node stopped").await;
    let elapsed = started.elapsed();
    sink.tally(COUNT)
        .assert_exactly_once(COUNT, "a cluster node stopped");
    eprintln!(
        "{COUNT} messages through two hops on a three-node cluster (one node stopped) in {:.1} s",
        elapsed.as_secs_f64()
    );
    let _ = knut.terminate().await;
}
