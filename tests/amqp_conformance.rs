//! The broker conformance suite on RabbitMQ, and recovery after a broker restart.
//!
//! Runs against `KNUT_TEST_AMQP_URL` or a private RabbitMQ node (see `support/rabbit.rs`).

#[path = "support/ordered.rs"]
mod ordered;
#[path = "support/rabbit.rs"]
mod rabbit;
#[path = "support/root.rs"]
mod root;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use knutpunkt::broker::amqp::{AmqpBroker, AmqpOptions};
use knutpunkt::broker::{
    Broker, BrokerError, Consumer, Delivery, INGRESS_EXCHANGE, RouteQueue, Topology, work_queue,
};
use knutpunkt::core::envelope::{Body, Envelope};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

/// The conformance tests share the node with the restart test: they hold this lock for
/// reading, the restart test for writing, so no conformance test sees the outage.
static OUTAGE: std::sync::LazyLock<Arc<RwLock<()>>> =
    std::sync::LazyLock::new(|| Arc::new(RwLock::new(())));

async fn broker() -> AmqpBroker {
    let url = rabbit::amqp_url().await;
    AmqpBroker::connect(AmqpOptions::new(url))
        .await
        .expect("connect to RabbitMQ")
}

/// A broker for one conformance test, holding off the restart test while it runs.
struct Guarded {
    broker: AmqpBroker,
    _no_outage: OwnedRwLockReadGuard<()>,
}

async fn guarded() -> Guarded {
    let no_outage = OUTAGE.clone().read_owned().await;
    Guarded {
        broker: broker().await,
        _no_outage: no_outage,
    }
}

#[async_trait]
impl Broker for Guarded {
    fn kind(&self) -> &'static str {
        self.broker.kind()
    }
    async fn declare(&self, topology: &Topology) -> Result<(), BrokerError> {
        self.broker.declare(topology).await
    }
    async fn publish(&self, exchange: &str, key: &str, e: &Envelope) -> Result<(), BrokerError> {
        self.broker.publish(exchange, key, e).await
    }
    async fn send_to_queue(&self, queue: &str, e: &Envelope) -> Result<(), BrokerError> {
        self.broker.send_to_queue(queue, e).await
    }
    async fn retry_later(&self, route: &str, e: &Envelope, d: Duration) -> Result<(), BrokerError> {
        self.broker.retry_later(route, e, d).await
    }
    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BrokerError> {
        self.broker.consume(queue, prefetch).await
    }
    async fn declare_reply_queue(&self) -> Result<String, BrokerError> {
        self.broker.declare_reply_queue().await
    }
    async fn queue_depth(&self, queue: &str) -> Result<u64, BrokerError> {
        self.broker.queue_depth(queue).await
    }
    async fn browse_window(
        &self,
        queue: &str,
        window: knutpunkt::broker::Window,
    ) -> Result<knutpunkt::broker::Browsed, BrokerError> {
        self.broker.browse_window(queue, window).await
    }
    async fn take(&self, queue: &str, ids: &[uuid::Uuid]) -> Result<Vec<Delivery>, BrokerError> {
        self.broker.take(queue, ids).await
    }
    fn is_connected(&self) -> bool {
        self.broker.is_connected()
    }
    async fn close(&self) {
        self.broker.close().await
    }
}

knutpunkt::broker_conformance_suite!(guarded());

fn msg(text: &str) -> Envelope {
    Envelope::new("text/plain", Body::Bytes(Bytes::from(text.to_string())))
}

/// Publishing while the broker is down fails quickly and transiently; after the broker is
/// back, the same `AmqpBroker` publishes and consumes again, and durable messages survived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_broker_restart() {
    if rabbit::private_node().await.is_none() {
        eprintln!("skipped: KNUT_TEST_AMQP_URL names a broker this test must not stop");
        return;
    }
    let _outage = OUTAGE.clone().write_owned().await;
    let b = broker().await;
    let route = format!("recovery-{}", uuid::Uuid::now_v7().simple());
    let topology = Topology {
        exchanges: vec![],
        outlets: Vec::new(),
        routes: vec![RouteQueue {
            route: route.clone(),
            bindings: vec![],
            partitions: None,
        }],
    };
    b.declare(&topology).await.unwrap();
    b.publish(INGRESS_EXCHANGE, &route, &msg("before"))
        .await
        .unwrap();
    let mut consumer = b.consume(&work_queue(&route), 5).await.unwrap();
    let held = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("consumer open");
    assert!(held.is_live(), "a fresh delivery can be settled");

    rabbit::stop_node().await;

    // The consumer stream ends, so a worker knows to consume again.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        // "before" is held unacked: it stays in the queue.
        while consumer.next().await.is_some() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the consumer stream did not end after the broker stopped"
    );
    assert!(
        !held.is_live(),
        "a delivery of the lost connection cannot be settled any more"
    );
    drop(held);

    let started = Instant::now();
    let err = b
        .publish(INGRESS_EXCHANGE, &route, &msg("during"))
        .await
        .expect_err("publishing while the broker is down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err, BrokerError::Connection(_)), "{err:?}");
    assert!(!b.is_connected());

    rabbit::start_node().await;

    // The same broker reconnects by itself (backoff at most 5 s between attempts).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.is_connected() {
        assert!(Instant::now() < deadline, "did not reconnect within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.publish(INGRESS_EXCHANGE, &route, &msg("after"))
        .await
        .expect("publish after recovery");
    let mut consumer = b.consume(&work_queue(&route), 5).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery within 10 s")
            .expect("consumer open");
        seen.push(String::from_utf8_lossy(&d.envelope.body.to_bytes()).into_owned());
        d.ack().await.unwrap();
    }
    seen.sort();
    assert_eq!(
        seen,
        ["after", "before"],
        "the persistent message survived the restart"
    );
    b.close().await;
}

fn one_route(route: &str) -> Topology {
    Topology {
        exchanges: vec![],
        outlets: Vec::new(),
        routes: vec![RouteQueue {
            route: route.to_string(),
            bindings: vec![],
            partitions: None,
        }],
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Many tasks publish at once on the shared confirm channel; a publish to an undeclared
/// exchange among them fails alone and does not disturb the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_are_each_confirmed() {
    let g = guarded().await;
    let b = g.broker.clone();
    let route = unique("concurrent");
    b.declare(&one_route(&route)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let b = b.clone();
        let route = route.clone();
        tasks.push(tokio::spawn(async move {
            if i == 100 {
                let err = b
                    .publish(&unique("never-declared"), "k", &msg("x"))
                    .await
                    .expect_err("undeclared exchange");
                assert!(matches!(err, BrokerError::NotDeclared(_)), "{err:?}");
            } else {
                b.publish(INGRESS_EXCHANGE, &route, &msg(&i.to_string()))
                    .await
                    .expect("confirmed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let q = work_queue(&route);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.queue_depth(&q).await.unwrap() != 199 {
        assert!(Instant::now() < deadline, "not all 199 messages arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker that stopped consuming (dropped its stream) can still ack what it holds: the
/// message is then gone, not redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_after_the_stream_is_dropped_counts() {
    let g = guarded().await;
    let b = &g.broker;
    let route = unique("late-ack");
    b.declare(&one_route(&route)).await.unwrap();
    b.publish(INGRESS_EXCHANGE, &route, &msg("in flight"))
        .await
        .unwrap();
    let q = work_queue(&route);
    let mut c = b.consume(&q, 1).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .unwrap()
        .unwrap();
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.ack().await.expect("ack after the stream ended");
    let mut c = b.consume(&q, 1).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), c.next())
            .await
            .is_err(),
        "an acked message came back"
    );
    assert_eq!(b.queue_depth(&q).await.unwrap(), 0);
}

/// Work queues are quorum queues by default: declaring the same route as classic is refused
/// with a text that names the queue and says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queues_are_quorum_by_default() {
    let g = guarded().await;
    let route = unique("qtype");
    g.broker.declare(&one_route(&route)).await.unwrap();
    let mut opts = AmqpOptions::new(rabbit::amqp_url().await);
    opts.queue_type = knutpunkt::broker::amqp::QueueType::Classic;
    let classic = AmqpBroker::connect(opts).await.unwrap();
    let err = classic
        .declare(&one_route(&route))
        .await
        .expect_err("a quorum queue cannot be redeclared classic");
    let text = err.to_string();
    assert!(matches!(err, BrokerError::NotDeclared(_)), "{err:?}");
    assert!(
        text.contains(&work_queue(&route)) && text.contains("queue_type"),
        "{text}"
    );
    classic.close().await;
}

/// The last line of defence on a quorum work queue: a message that is never settled — the
/// process dies or gives it back every time — is dead-lettered by RabbitMQ after the
/// delivery limit to the route's dead-letter queue, with a reason `knut dlq` shows, not
/// dropped and not delivered for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_never_settled_is_dead_lettered_at_the_delivery_limit() {
    let g = guarded().await;
    let route = unique("poison");
    g.broker.declare(&one_route(&route)).await.unwrap();
    let sent = Envelope::new("text/plain", Body::Bytes(Bytes::from_static(b"poison")));
    g.broker
        .publish(INGRESS_EXCHANGE, &route, &sent)
        .await
        .unwrap();
    let mut c = g.broker.consume(&work_queue(&route), 1).await.unwrap();
    let mut deliveries = 0;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(3), c.next()).await {
        deliveries += 1;
        assert!(deliveries <= 40, "delivered for ever");
        d.nack(true).await.unwrap();
    }
    let limit = knutpunkt::broker::amqp::definitions::DELIVERY_LIMIT;
    assert!(
        (limit..=limit + 1).contains(&deliveries),
        "{deliveries} deliveries"
    );
    let dead = g
        .broker
        .browse(&knutpunkt::broker::dead_letter_queue(&route))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "dead-lettered once");
    assert_eq!(dead[0].id, sent.id);
    let reason = dead[0]
        .header(knutpunkt::core::envelope::header::DEAD_LETTER_REASON)
        .unwrap_or_default();
    assert!(
        reason.contains("RabbitMQ dead-lettered it after 20 deliveries"),
        "{reason}"
    );
    assert_eq!(
        dead[0].header(knutpunkt::core::envelope::header::DEAD_LETTER_STEP),
        Some("broker")
    );
}

/// A retry for a route whose work queue does not exist is refused: RabbitMQ would drop the
/// message when its delay ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_for_an_undeclared_route_is_refused() {
    let g = guarded().await;
    let err = g
        .broker
        .retry_later(&unique("nobody"), &msg("x"), Duration::from_secs(1))
        .await
        .expect_err("no work queue");
    assert!(matches!(err, BrokerError::NotDeclared(_)), "{err:?}");
}

/// The shipped OeP routes in a running system on RabbitMQ: Latin-1 XML in over HTTP, the
/// canonical application through the `oep.applications` exchange, a UTF-8 file out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_routes_run_on_rabbitmq() {
    let _no_outage = OUTAGE.clone().read_owned().await;
    let url = rabbit::amqp_url().await;
    let dir = root::copy_root();
    let config = knutpunkt::config::Config::from_toml_str(&format!(
        "{}[broker]\nurl = \"{url}\"\n[admin]\nbind = \"127.0.0.1:0\"\n[sandbox]\nenabled = false\n[http]\nbind = \"127.0.0.1:0\"\n{}",
        root::DEV_TOML,
        root::SHIPPED_AUTH_TOML
    ))
    .expect("config");
    let system = knutpunkt::runtime::System::start(dir.path(), &config)
        .await
        .expect("starts on RabbitMQ");
    assert_eq!(system.broker.kind(), "rabbitmq");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let external = system
        .plane(knutpunkt::route::model::Plane::External)
        .expect("the external plane runs");
    let url = format!("http://{}/in/oep/flowinstances", external.http);
    let xml = std::fs::read(root::repo().join("tests/fixtures/oep/leave-application-latin1.xml"))
        .unwrap();
    let resp = http
        .post(&url)
        .header("content-type", "application/xml")
        .header("authorization", root::oep_authorization())
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let file = dir.path().join("data/out/applications/oep-412-90017.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "the application file never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["values"]["Elev"]["Fornamn"], "Märta");
    system.shutdown(Duration::from_secs(10)).await;
}

/// A JSON argument of the definitions as an AMQP value.
fn amqp_value(v: &serde_json::Value) -> lapin::types::AMQPValue {
    use lapin::types::{AMQPValue, LongString};
    match v {
        serde_json::Value::Number(n) => AMQPValue::LongLongInt(n.as_i64().expect("integer")),
        serde_json::Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        serde_json::Value::Bool(b) => AMQPValue::Boolean(*b),
        other => panic!("unexpected argument {other}"),
    }
}

/// Declare the durable queue `name` with `args`, as knut does.
async fn declare_durable(
    ch: &lapin::Channel,
    name: &str,
    args: lapin::types::FieldTable,
) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(
        name.into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..lapin::options::QueueDeclareOptions::default()
        },
        args,
    )
    .await
}

/// The definitions `knut topology` prints are what knut declares: every queue they list
/// exists (the retry ladder once used) and can be declared again with the listed arguments
/// (RabbitMQ refuses a declaration whose arguments differ), and every binding routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_definitions_are_what_knut_declares() {
    use knutpunkt::broker::amqp::QueueType;
    use knutpunkt::broker::amqp::definitions::full_plan;
    use lapin::options::QueueDeclareOptions;
    use lapin::types::FieldTable;

    let g = guarded().await;
    let route = unique("defs");
    let ordered_route = unique("defs-ordered");
    let exchange = unique("defs.events");
    let topology = Topology {
        exchanges: vec![exchange.clone()],
        outlets: Vec::new(),
        routes: vec![
            RouteQueue {
                route: route.clone(),
                bindings: vec![(exchange.clone(), "student.*".into())],
                partitions: None,
            },
            RouteQueue {
                route: ordered_route.clone(),
                bindings: vec![(exchange.clone(), "grade.*".into())],
                partitions: Some(3),
            },
        ],
    };
    g.broker.declare(&topology).await.unwrap();
    for rung in knutpunkt::broker::amqp::delay::RUNGS_MS {
        // A one-hour retry parks the message for an hour; the queue is what counts here.
        g.broker
            .retry_later(&route, &msg("x"), Duration::from_millis(rung))
            .await
            .unwrap();
    }
    let defs = full_plan(&topology, QueueType::Quorum).to_json("ignored");
    let queues = defs["queues"].as_array().expect("queues");
    assert_eq!(
        queues.len(),
        2 + knutpunkt::broker::amqp::delay::RUNGS_MS.len() + 2 + 3,
        "the ordered route: work, dead-letter and three partition queues, no retry ladder"
    );
    let conn = lapin::Connection::connect(
        &rabbit::amqp_url().await,
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    for q in queues {
        let name = q["name"].as_str().unwrap();
        let mut args = FieldTable::default();
        for (k, v) in q["arguments"].as_object().unwrap() {
            args.insert(k.as_str().into(), amqp_value(v));
        }
        let ch = conn.create_channel().await.unwrap();
        let passive = ch
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        assert!(passive.is_ok(), "knut did not declare {name}: {passive:?}");
        let same = declare_durable(&ch, name, args).await;
        assert!(
            same.is_ok(),
            "{name} exists with other arguments than the definitions list: {same:?}"
        );
    }
    // The partition queues' single active consumer is an argument RabbitMQ compares: the
    // same queue without it is refused, so the equal declarations above prove it is set.
    let ch = conn.create_channel().await.unwrap();
    let mut plain = FieldTable::default();
    plain.insert(
        "x-queue-type".into(),
        amqp_value(&serde_json::json!("quorum")),
    );
    let p0 = knutpunkt::broker::partition_queue(&ordered_route, 0);
    let refused = declare_durable(&ch, &p0, plain).await;
    assert!(
        refused.is_err(),
        "{p0} without x-single-active-consumer was accepted"
    );
    let before = g.broker.queue_depth(&work_queue(&route)).await.unwrap();
    let ordered_before = g
        .broker
        .queue_depth(&work_queue(&ordered_route))
        .await
        .unwrap();
    for b in defs["bindings"].as_array().unwrap() {
        let key = b["routing_key"].as_str().unwrap().replace('*', "enrolled");
        g.broker
            .publish(b["source"].as_str().unwrap(), &key, &msg("routed"))
            .await
            .expect("the listed binding routes");
    }
    let depth = g.broker.queue_depth(&work_queue(&route)).await.unwrap();
    assert!(
        depth >= before + 2,
        "both bindings deliver: {before} → {depth}"
    );
    let ordered_depth = g
        .broker
        .queue_depth(&work_queue(&ordered_route))
        .await
        .unwrap();
    assert!(
        ordered_depth >= ordered_before + 2,
        "the ordered route's bindings deliver to its work queue: {ordered_before} → {ordered_depth}"
    );
    let _ = conn.close(200, "done".into()).await;
}

/// The ordering scenario (see `support/ordered.rs`) on RabbitMQ: quorum work and partition
/// queues with a single active consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_students_thirty_events_each_arrive_in_order_on_rabbitmq() {
    let _no_outage = OUTAGE.clone().read_owned().await;
    let url = rabbit::amqp_url().await;
    ordered::one_instance(&format!("[broker]\nurl = \"{url}\"\n"), "rabbitmq").await;
}

/// Two knut instances run the same ordered route: the one that came first holds every
/// queue (the other takes nothing), and when it stops in the middle of the stream the other
/// takes over where it stopped — every event once, each student's in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_route_fails_over_between_instances_in_order() {
    let _no_outage = OUTAGE.clone().read_owned().await;
    let broker = format!("[broker]\nurl = \"{}\"\n", rabbit::amqp_url().await);
    let downstream = ordered::Downstream::start().await;
    let route = ordered::unique_route();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ordered::write_root(dir_a.path(), &route, &downstream, "a");
    ordered::write_root(dir_b.path(), &route, &downstream, "b");
    let per_seq = usize::try_from(ordered::STUDENTS).unwrap();

    let a = ordered::start(dir_a.path(), &broker).await;
    ordered::send(a.http_addr, route.clone(), 0..10).await;
    // Every student's partition has delivered through `a`: it consumes every queue.
    downstream.wait_for(10 * per_seq, "first third").await;
    let b = ordered::start(dir_b.path(), &broker).await;
    ordered::send(b.http_addr, route.clone(), 10..20).await;
    downstream.wait_for(20 * per_seq, "second third").await;
    assert_eq!(
        downstream.delivered_by("b"),
        0,
        "the standby instance took messages while the active one was running"
    );
    let rest = tokio::spawn(ordered::send(b.http_addr, route.clone(), 20..30));
    downstream
        .wait_for(24 * per_seq, "a part of the last third")
        .await;
    a.shutdown(Duration::from_secs(10)).await;
    rest.await.expect("the last third sent");
    downstream.assert_all_in_order("fail-over").await;
    assert!(
        downstream.delivered_by("b") > 0,
        "the standby instance never took over"
    );
    b.shutdown(Duration::from_secs(10)).await;
}

/// A quorum queue on which every return of a message counts: `x-delivery-limit: 1`, so a
/// message returned twice is dropped (as RabbitMQ 4 does after 20 with its default limit).
async fn strict_quorum_queue(ch: &lapin::Channel, name: &str) {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(1));
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .expect("declare a quorum queue with a delivery limit");
}

/// Browsing and taking never return a message to its queue, so no delivery limit can drop a
/// dead letter: on a quorum queue with `x-delivery-limit: 1`, listings, takes given back
/// (nacked and dropped) keep every message. The control shows the hazard is real on this
/// broker: a browse by `basic.get` and nack with requeue loses the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsing_never_counts_toward_a_delivery_limit() {
    use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeleteOptions};
    let g = guarded().await;
    let b = &g.broker;
    let conn = lapin::Connection::connect(
        &rabbit::amqp_url().await,
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    let ch = conn.create_channel().await.expect("channel");

    let control = unique("limit-control");
    strict_quorum_queue(&ch, &control).await;
    b.send_to_queue(&control, &msg("browsed naively"))
        .await
        .expect("send");
    for _ in 0..5 {
        let got = ch
            .basic_get(control.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get");
        let Some(got) = got else { break };
        got.delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .expect("nack");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.queue_depth(&control).await.expect("depth"),
        0,
        "control: get + requeue past the delivery limit should have dropped the message"
    );

    let q = unique("limit-dlq");
    strict_quorum_queue(&ch, &q).await;
    let sent: Vec<Envelope> = (0..3).map(|i| msg(&format!("dead letter {i}"))).collect();
    for m in &sent {
        b.send_to_queue(&q, m).await.expect("send");
    }
    let sent_ids: Vec<uuid::Uuid> = sent.iter().map(|m| m.id).collect();
    let listed = || async {
        let all = b.browse(&q).await.expect("browse");
        all.iter().map(|e| e.id).collect::<Vec<uuid::Uuid>>()
    };
    for i in 0..5 {
        assert_eq!(listed().await, sent_ids, "listing {i}");
    }
    let mut want = sent_ids.clone();
    want.sort();
    for round in 0..3 {
        let mut taken = b.take(&q, &[sent[1].id]).await.expect("take");
        taken.remove(0).nack(true).await.expect("give back");
        // Dropped unsettled: given back in the background.
        drop(b.take(&q, &[sent[2].id]).await.expect("take"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut now = listed().await;
            now.sort();
            if now == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: a message was lost: {now:?} of {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for name in [&control, &q] {
        let _ = ch
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
}

/// A measurement, not a check (run by hand: `cargo test --release --test amqp_conformance
/// -- --ignored fifty_thousand`): 50,000 dead letters on one route of the private node are
/// counted, paged, listed and replayed in one pass; the times are printed (README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of minutes; run by hand"]
async fn fifty_thousand_dead_letters_are_counted_listed_and_replayed() {
    const N: usize = 50_000;
    let g = guarded().await;
    let broker: knutpunkt::broker::SharedBroker = Arc::new(g.broker.clone());
    let route = unique("dlq50k");
    broker.declare(&one_route(&route)).await.unwrap();
    let dlq = knutpunkt::broker::dead_letter_queue(&route);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let broker = broker.clone();
        let route = route.clone();
        tasks.spawn(async move {
            for i in (lane..N).step_by(8) {
                let mut e = Envelope::new(
                    "application/json",
                    Body::Bytes(Bytes::from(format!("{{\"n\": {i}}}"))),
                );
                e.headers.insert(
                    knutpunkt::core::envelope::header::DEAD_LETTER_REASON.into(),
                    "fiktiv".into(),
                );
                broker.dead_letter(&route, &e).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    eprintln!("{N} dead letters published in {:?}", started.elapsed());
    let store = knutpunkt::store::Store::memory().await.unwrap();
    let dead_letters = knutpunkt::admin::dead_letters::DeadLetters::new(broker.clone(), store);

    let t = Instant::now();
    let overview = knutpunkt::admin::dlq::overview_of(&dead_letters, [route.clone()]).await;
    eprintln!("overview (count) of {N}: {:?}", t.elapsed());
    assert_eq!(overview.total, N as u64);

    let t = Instant::now();
    let page = dead_letters.page(&route, None, 100).await.unwrap();
    eprintln!("a page of 100 of {N} (one rotation): {:?}", t.elapsed());
    assert_eq!(page.messages.len(), 100);
    assert!(page.more);

    let t = Instant::now();
    let listed = dead_letters.list(&route).await.unwrap();
    eprintln!("list of {N} (one rotation): {:?}", t.elapsed());
    assert_eq!(listed.len(), N);

    let t = Instant::now();
    let replayed = dead_letters.replay_all(&route).await.unwrap();
    eprintln!("replay --all of {N} (one pass): {:?}", t.elapsed());
    assert_eq!(replayed.len(), N);
    assert_eq!(broker.queue_depth(&dlq).await.unwrap(), 0);
    assert_eq!(
        broker.queue_depth(&work_queue(&route)).await.unwrap(),
        N as u64
    );
}
