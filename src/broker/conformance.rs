//! The broker conformance suite: Knutpunkt's broker semantics as tests.
//!
//! Every broker implementation runs all of them through [`broker_conformance_suite!`]
//! (the embedded broker in its unit tests, RabbitMQ in `tests/`). Each test uses route and
//! exchange names of its own, so the suite can share one broker.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use super::{
    Broker, BrokerError, Consumer, Delivery, INGRESS_EXCHANGE, RouteQueue, Topology,
    dead_letter_queue, partition_queue, work_queue,
};
use crate::core::envelope::{Body, Envelope, header};

/// Generates one `#[tokio::test]` per conformance test; `$make` is a future giving the broker.
#[macro_export]
macro_rules! broker_conformance_suite {
    ($make:expr) => {
        $crate::broker_conformance_suite!(@tests $make;
            routes_by_topic, unroutable_is_an_error, undeclared_is_an_error,
            envelope_round_trips, ack_removes_nack_requeues, dropped_delivery_is_redelivered,
            prefetch_bounds_unacked, settling_out_of_order_settles_only_those,
            retry_later_waits_without_blocking, dead_letter_keeps_reason,
            declare_is_idempotent, ingress_reaches_route_by_id, send_to_queue_and_depth,
            reply_queue_is_private, competing_consumers_share_work,
            single_active_consumer_hands_over_in_order, ordering_cannot_change_silently,
            browse_lists_dead_letters_with_headers, browsing_changes_nothing,
            browse_pages_hold_only_their_window, take_removes_exactly_that_one, take_unknown_id_is_not_found,
            taken_and_given_back_stays);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let broker = $make.await;
                $crate::broker::conformance::$name(&broker).await;
            }
        )*
    };
}

const WAIT: Duration = Duration::from_secs(10);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

async fn setup(broker: &dyn Broker, bindings: &[(&str, &str)]) -> (String, Vec<String>) {
    let route = unique("conf");
    let exchanges: Vec<String> = bindings.iter().map(|(e, _)| e.to_string()).collect();
    let topology = Topology {
        exchanges: exchanges.clone(),
        outlets: Vec::new(),
        routes: vec![RouteQueue {
            route: route.clone(),
            bindings: bindings
                .iter()
                .map(|(e, k)| (e.to_string(), k.to_string()))
                .collect(),
            partitions: None,
        }],
    };
    broker.declare(&topology).await.expect("declare");
    (route, exchanges)
}

fn msg(text: &str) -> Envelope {
    Envelope::new("text/plain", Body::Bytes(Bytes::from(text.to_string())))
}

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.envelope.body.to_bytes()).into_owned()
}

async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the consumer is open")
}

/// Publish the numbers of `range` as text messages to `route` through the ingress exchange.
async fn publish_numbers(broker: &dyn Broker, route: &str, range: std::ops::Range<u32>) {
    for i in range {
        broker
            .publish(INGRESS_EXCHANGE, route, &msg(&i.to_string()))
            .await
            .unwrap();
    }
}

/// Put the numbers of `range` as text messages straight into `queue`.
async fn send_numbers(broker: &dyn Broker, queue: &str, range: std::ops::Range<u32>) {
    for i in range {
        broker
            .send_to_queue(queue, &msg(&i.to_string()))
            .await
            .unwrap();
    }
}

async fn nothing_within(consumer: &mut Consumer, d: Duration) {
    if let Ok(Some(x)) = tokio::time::timeout(d, consumer.next()).await {
        panic!("unexpected delivery: {}", text(&x));
    }
}

/// Topic patterns route to the bound queue.
pub async fn routes_by_topic(broker: &dyn Broker) {
    let ex = unique("conf.ex");
    let (route, _) = setup(broker, &[(&ex, "placement.*"), (&ex, "grade.#")]).await;
    broker
        .publish(&ex, "placement.changed", &msg("a"))
        .await
        .unwrap();
    broker
        .publish(&ex, "grade.final.signed", &msg("b"))
        .await
        .unwrap();
    let mut c = broker.consume(&work_queue(&route), 10).await.unwrap();
    let a = next(&mut c).await;
    let b = next(&mut c).await;
    assert_eq!((text(&a), text(&b)), ("a".into(), "b".into()));
    a.ack().await.unwrap();
    b.ack().await.unwrap();
}

/// A message no queue is bound for is an error, never silently dropped.
pub async fn unroutable_is_an_error(broker: &dyn Broker) {
    let ex = unique("conf.ex");
    let _ = setup(broker, &[(&ex, "placement.*")]).await;
    let err = broker
        .publish(&ex, "nobody.listens", &msg("x"))
        .await
        .expect_err("unroutable");
    assert!(matches!(err, BrokerError::Unroutable { .. }), "got {err:?}");
}

/// Publishing to an exchange nobody declared, or consuming a queue nobody declared, fails.
pub async fn undeclared_is_an_error(broker: &dyn Broker) {
    let err = broker
        .publish(&unique("conf.never"), "k", &msg("x"))
        .await
        .expect_err("undeclared exchange");
    assert!(
        matches!(
            err,
            BrokerError::NotDeclared(_) | BrokerError::Unroutable { .. }
        ),
        "got {err:?}"
    );
    assert!(
        broker
            .send_to_queue(&unique("conf.noqueue"), &msg("x"))
            .await
            .is_err()
    );
}

/// Every envelope field survives the broker.
pub async fn envelope_round_trips(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    let mut e = Envelope::json(serde_json::json!({"namn": "Åsa Öberg", "n": [1, 2]}));
    e.causation_id = Some(uuid::Uuid::now_v7());
    e.correlation_id = uuid::Uuid::now_v7();
    e.headers.insert("unit".into(), "Skolenhet 7".into());
    e.headers.insert("empty".into(), String::new());
    e.attempt = 3;
    broker.publish(INGRESS_EXCHANGE, &route, &e).await.unwrap();
    let mut c = broker.consume(&work_queue(&route), 1).await.unwrap();
    let d = next(&mut c).await;
    let got = &d.envelope;
    assert_eq!(got.id, e.id);
    assert_eq!(got.correlation_id, e.correlation_id);
    assert_eq!(got.causation_id, e.causation_id);
    assert_eq!(got.headers, e.headers);
    assert_eq!(got.content_type, e.content_type);
    assert_eq!(got.attempt, 3);
    assert_eq!(got.body.to_bytes(), e.body.to_bytes());
    let skew = (got.created_at - e.created_at).num_milliseconds().abs();
    assert!(
        skew <= 1,
        "created_at kept to the millisecond, skew {skew} ms"
    );
    d.ack().await.unwrap();
}

/// Ack removes a message; nack with requeue gives it back, marked redelivered.
pub async fn ack_removes_nack_requeues(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    broker
        .publish(INGRESS_EXCHANGE, &route, &msg("one"))
        .await
        .unwrap();
    let mut c = broker.consume(&work_queue(&route), 1).await.unwrap();
    let d = next(&mut c).await;
    assert!(!d.redelivered);
    d.nack(true).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "one");
    assert!(d.redelivered, "a requeued delivery is marked redelivered");
    d.ack().await.unwrap();
    nothing_within(&mut c, Duration::from_millis(300)).await;
}

/// A delivery dropped without ack (a crashed worker) is delivered again.
pub async fn dropped_delivery_is_redelivered(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    broker
        .publish(INGRESS_EXCHANGE, &route, &msg("keep me"))
        .await
        .unwrap();
    {
        let mut c = broker.consume(&work_queue(&route), 1).await.unwrap();
        let d = next(&mut c).await;
        drop(d);
        drop(c);
    }
    let mut c = broker.consume(&work_queue(&route), 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "keep me");
    d.ack().await.unwrap();
}

/// No more than `prefetch` unacked deliveries are handed out.
pub async fn prefetch_bounds_unacked(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    publish_numbers(broker, &route, 0..5).await;
    let mut c = broker.consume(&work_queue(&route), 2).await.unwrap();
    let a = next(&mut c).await;
    let b = next(&mut c).await;
    nothing_within(&mut c, Duration::from_millis(300)).await;
    a.ack().await.unwrap();
    let third = next(&mut c).await;
    b.ack().await.unwrap();
    third.ack().await.unwrap();
    for _ in 0..2 {
        next(&mut c).await.ack().await.unwrap();
    }
}

/// Deliveries settled at the same moment and out of order settle exactly those: acks of
/// later deliveries never cover one still in hand, released, nacked or dropped before them.
/// (RabbitMQ's settler joins the acks of a run at the head of a channel's unsettled
/// deliveries into one `multiple` ack, see `amqp::settle`: here 0 and 1, with 2 released
/// and 5 in hand amid the acked.)
pub async fn settling_out_of_order_settles_only_those(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    publish_numbers(broker, &route, 0..8).await;
    let mut c = broker.consume(&work_queue(&route), 8).await.unwrap();
    let mut ds = Vec::new();
    for _ in 0..8 {
        ds.push(next(&mut c).await);
    }
    let texts: Vec<String> = ds.iter().map(text).collect();
    assert_eq!(texts, ["0", "1", "2", "3", "4", "5", "6", "7"]);
    let [d0, d1, d2, d3, d4, d5, d6, d7]: [Delivery; 8] = match ds.try_into() {
        Ok(all) => all,
        Err(_) => unreachable!("eight deliveries"),
    };
    // 2 is released and 6 dropped; 4 is nacked back, 5 stays in hand, the rest are acked,
    // all at once and the later ones first.
    d2.release().await;
    drop(d6);
    let (a7, a3, n4, a1, a0) = tokio::join!(d7.ack(), d3.ack(), d4.nack(true), d1.ack(), d0.ack());
    for r in [a7, a3, n4, a1, a0] {
        r.expect("settled");
    }
    // While the consumer lives, the nacked and the dropped come back (and the released, on a
    // broker that gives it back at once); they are kept in hand.
    let mut expected = vec!["4", "6"];
    if broker.kind() == "embedded" {
        expected.insert(0, "2");
    }
    let mut back = Vec::new();
    for _ in 0..expected.len() {
        back.push(next(&mut c).await);
    }
    nothing_within(&mut c, Duration::from_millis(300)).await;
    let mut texts: Vec<String> = back.iter().map(text).collect();
    texts.sort();
    assert_eq!(texts, expected, "only what was not acked comes back");
    // The one in hand is settled last; once the consumer is gone, what is still unsettled
    // comes back, and nothing acked ever does.
    d5.ack().await.unwrap();
    drop(back);
    drop(c);
    let mut c = broker.consume(&work_queue(&route), 8).await.unwrap();
    let mut rest = Vec::new();
    for _ in 0..3 {
        let d = next(&mut c).await;
        rest.push(text(&d));
        d.ack().await.unwrap();
    }
    nothing_within(&mut c, Duration::from_millis(500)).await;
    rest.sort();
    assert_eq!(rest, ["2", "4", "6"], "acked messages never come back");
}

/// A retry is delivered after its delay, and other messages flow meanwhile.
pub async fn retry_later_waits_without_blocking(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    let mut c = broker.consume(&work_queue(&route), 1).await.unwrap();
    let mut late = msg("late");
    late.attempt = 2;
    let start = Instant::now();
    broker
        .retry_later(&route, &late, Duration::from_millis(800))
        .await
        .unwrap();
    broker
        .publish(INGRESS_EXCHANGE, &route, &msg("now"))
        .await
        .unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "now", "the retry must not block the queue");
    d.ack().await.unwrap();
    let d = next(&mut c).await;
    let waited = start.elapsed();
    assert_eq!(text(&d), "late");
    assert_eq!(d.envelope.attempt, 2);
    assert!(
        waited >= Duration::from_millis(700),
        "retried too early: {waited:?}"
    );
    d.ack().await.unwrap();
}

/// A dead letter lands in the route's dead-letter queue with its headers.
pub async fn dead_letter_keeps_reason(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    let mut e = msg("poison");
    e.headers
        .insert(header::DEAD_LETTER_REASON.into(), "schema: /x".into());
    broker.dead_letter(&route, &e).await.unwrap();
    assert_eq!(broker.queue_depth(&work_queue(&route)).await.unwrap(), 0);
    let mut c = broker.consume(&dead_letter_queue(&route), 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(d.envelope.id, e.id);
    assert_eq!(
        d.envelope.header(header::DEAD_LETTER_REASON),
        Some("schema: /x")
    );
    d.ack().await.unwrap();
}

/// Declaring the same topology twice changes nothing and delivers once.
pub async fn declare_is_idempotent(broker: &dyn Broker) {
    let ex = unique("conf.ex");
    let (route, _) = setup(broker, &[(&ex, "a.b")]).await;
    let again = Topology {
        exchanges: vec![ex.clone()],
        outlets: Vec::new(),
        routes: vec![RouteQueue {
            route: route.clone(),
            bindings: vec![(ex.clone(), "a.b".into())],
            partitions: None,
        }],
    };
    broker.declare(&again).await.unwrap();
    broker.publish(&ex, "a.b", &msg("once")).await.unwrap();
    let mut c = broker.consume(&work_queue(&route), 5).await.unwrap();
    next(&mut c).await.ack().await.unwrap();
    nothing_within(&mut c, Duration::from_millis(300)).await;
}

/// The ingress exchange reaches a route by its id.
pub async fn ingress_reaches_route_by_id(broker: &dyn Broker) {
    let (a, _) = setup(broker, &[]).await;
    let (b, _) = setup(broker, &[]).await;
    broker
        .publish(INGRESS_EXCHANGE, &b, &msg("for b"))
        .await
        .unwrap();
    assert_eq!(broker.queue_depth(&work_queue(&a)).await.unwrap(), 0);
    let mut c = broker.consume(&work_queue(&b), 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "for b");
    d.ack().await.unwrap();
}

/// `send_to_queue` puts a message straight into a queue; `queue_depth` counts ready messages.
pub async fn send_to_queue_and_depth(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    let q = work_queue(&route);
    send_numbers(broker, &q, 0..3).await;
    let deadline = Instant::now() + WAIT;
    while broker.queue_depth(&q).await.unwrap() != 3 {
        assert!(Instant::now() < deadline, "depth never reached 3");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = broker.consume(&q, 5).await.unwrap();
    for i in 0..3 {
        let d = next(&mut c).await;
        assert_eq!(text(&d), i.to_string(), "FIFO order");
        d.ack().await.unwrap();
    }
}

/// A reply queue is a fresh queue of this process.
pub async fn reply_queue_is_private(broker: &dyn Broker) {
    let a = broker.declare_reply_queue().await.unwrap();
    let b = broker.declare_reply_queue().await.unwrap();
    assert_ne!(a, b);
    broker.send_to_queue(&a, &msg("answer")).await.unwrap();
    let mut c = broker.consume(&a, 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(text(&d), "answer");
    d.ack().await.unwrap();
}

/// Two consumers on one queue share the work; every message is delivered exactly once.
pub async fn competing_consumers_share_work(broker: &dyn Broker) {
    let (route, _) = setup(broker, &[]).await;
    let q = work_queue(&route);
    let mut c1 = broker.consume(&q, 1).await.unwrap();
    let mut c2 = broker.consume(&q, 1).await.unwrap();
    publish_numbers(broker, &route, 0..20).await;
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let d = tokio::select! {
            Some(d) = c1.next() => d,
            Some(d) = c2.next() => d,
            _ = tokio::time::sleep(WAIT) => panic!("only {} of 20 delivered", seen.len()),
        };
        seen.push(text(&d).parse::<u32>().unwrap());
        d.ack().await.unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
}

fn one_route(route: &str, partitions: Option<u16>) -> Topology {
    Topology {
        exchanges: vec![],
        outlets: Vec::new(),
        routes: vec![RouteQueue {
            route: route.to_string(),
            bindings: vec![],
            partitions,
        }],
    }
}

/// The queues of an ordered route have a single active consumer: of several consumers only
/// the first is delivered to; once it has released its delivery and is gone, the next
/// takes over where it stopped, in order (the released message first).
pub async fn single_active_consumer_hands_over_in_order(broker: &dyn Broker) {
    let route = unique("conf-ordered");
    broker
        .declare(&one_route(&route, Some(2)))
        .await
        .expect("declare");
    let q = partition_queue(&route, 1);
    let mut first = broker.consume(&q, 1).await.unwrap();
    let mut second = broker.consume(&q, 1).await.unwrap();
    send_numbers(broker, &q, 0..4).await;
    let d = next(&mut first).await;
    assert_eq!(text(&d), "0");
    d.ack().await.unwrap();
    let d = next(&mut first).await;
    assert_eq!(text(&d), "1");
    nothing_within(&mut second, Duration::from_millis(300)).await;
    d.release().await;
    drop(first);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = next(&mut second).await;
        seen.push((text(&d), d.redelivered));
        d.ack().await.unwrap();
    }
    assert_eq!(
        seen,
        [
            ("1".to_string(), true),
            ("2".to_string(), false),
            ("3".to_string(), false)
        ],
        "the second consumer goes on where the first stopped"
    );
    // A consumer that comes later waits behind the active one.
    let mut third = broker.consume(&q, 1).await.unwrap();
    broker.send_to_queue(&q, &msg("4")).await.unwrap();
    let d = next(&mut second).await;
    assert_eq!(text(&d), "4");
    d.ack().await.unwrap();
    nothing_within(&mut third, Duration::from_millis(300)).await;

    // The work queue of an ordered route has a single active consumer too.
    let wq = work_queue(&route);
    let mut a = broker.consume(&wq, 5).await.unwrap();
    let mut b = broker.consume(&wq, 5).await.unwrap();
    publish_numbers(broker, &route, 0..2).await;
    for i in 0..2 {
        let d = next(&mut a).await;
        assert_eq!(text(&d), i.to_string());
        d.ack().await.unwrap();
    }
    nothing_within(&mut b, Duration::from_millis(300)).await;
}

/// A route's queues cannot silently change between ordered and unordered: declaring an
/// existing route the other way is refused, naming the queue.
pub async fn ordering_cannot_change_silently(broker: &dyn Broker) {
    let route = unique("conf-reorder");
    broker.declare(&one_route(&route, None)).await.unwrap();
    let err = broker
        .declare(&one_route(&route, Some(4)))
        .await
        .expect_err("an unordered work queue cannot become ordered in place");
    assert!(matches!(err, BrokerError::NotDeclared(_)), "{err:?}");
    assert!(err.to_string().contains(&work_queue(&route)), "{err}");
    assert!(err.to_string().contains("ordered_by"), "{err}");
}

/// `n` dead letters of a fresh route, each with the headers the worker sets.
async fn park(broker: &dyn Broker, n: usize) -> (String, Vec<Envelope>) {
    let (route, _) = setup(broker, &[]).await;
    let mut parked = Vec::new();
    for i in 0..n {
        let mut e = msg(&format!("poison {i}"));
        e.correlation_id = uuid::Uuid::now_v7();
        e.attempt = 3;
        e.headers
            .insert(header::DEAD_LETTER_REASON.into(), format!("HTTP 400 #{i}"));
        e.headers
            .insert(header::DEAD_LETTER_STEP.into(), "steps[1].to".into());
        e.headers
            .insert(header::LAST_FAILURE.into(), "2026-11-23T10:00:00Z".into());
        broker.dead_letter(&route, &e).await.expect("dead letter");
        parked.push(e);
    }
    (route, parked)
}

fn ids(es: &[Envelope]) -> Vec<uuid::Uuid> {
    es.iter().map(|e| e.id).collect()
}

async fn browse_ids(broker: &dyn Broker, queue: &str) -> Vec<uuid::Uuid> {
    ids(&broker.browse(queue).await.expect("browse"))
}

/// Browsing a dead-letter queue lists every dead letter, oldest first, with its headers.
pub async fn browse_lists_dead_letters_with_headers(broker: &dyn Broker) {
    let (route, parked) = park(broker, 3).await;
    let listed = broker
        .browse(&dead_letter_queue(&route))
        .await
        .expect("browse");
    assert_eq!(ids(&listed), ids(&parked));
    for (got, sent) in listed.iter().zip(&parked) {
        assert_eq!(got.headers, sent.headers);
        assert_eq!(got.correlation_id, sent.correlation_id);
        assert_eq!(got.attempt, 3);
        assert_eq!(got.body.to_bytes(), sent.body.to_bytes());
    }
    assert!(
        broker
            .browse(&work_queue(&route))
            .await
            .expect("browse")
            .is_empty()
    );
    let err = broker
        .browse(&unique("conf.noqueue"))
        .await
        .expect_err("undeclared queue");
    assert!(matches!(err, BrokerError::NotDeclared(_)), "{err:?}");
}

/// A browse by pages: each page holds at most its limit, starting after the previous
/// page's last message, says whether more follow, and tells a starting point that is gone;
/// a browse by id finds just that one; and the queue is as it was.
pub async fn browse_pages_hold_only_their_window(broker: &dyn Broker) {
    use crate::broker::Window;
    let (route, parked) = park(broker, 5).await;
    let q = dead_letter_queue(&route);
    let all = ids(&parked);
    let page = |after, limit| Window::Page { after, limit };
    let first = broker.browse_window(&q, page(None, 2)).await.expect("page");
    assert_eq!(ids(&first.messages), all[0..2]);
    assert!(first.more && first.after_found);
    let second = broker
        .browse_window(&q, page(Some(all[1]), 2))
        .await
        .expect("page");
    assert_eq!(ids(&second.messages), all[2..4]);
    assert!(second.more && second.after_found);
    let last = broker
        .browse_window(&q, page(Some(all[3]), 2))
        .await
        .expect("page");
    assert_eq!(ids(&last.messages), all[4..5]);
    assert!(!last.more && last.after_found);
    let exact = broker.browse_window(&q, page(None, 5)).await.expect("page");
    assert_eq!(ids(&exact.messages), all);
    assert!(!exact.more, "a page that ends with the queue has no more");
    let gone = broker
        .browse_window(&q, page(Some(uuid::Uuid::now_v7()), 2))
        .await
        .expect("page");
    assert!(gone.messages.is_empty() && !gone.after_found);
    let one = broker
        .browse_window(&q, Window::Id(all[3]))
        .await
        .expect("by id");
    assert_eq!(ids(&one.messages), all[3..4]);
    assert_eq!(one.messages[0].headers, parked[3].headers);
    assert_eq!(browse_ids(broker, &q).await, all, "the queue is as it was");

    // A copy of a message left in the queue (by an interrupted rotation) exactly a page
    // after it: a page ending on that id leads past both, never to the same page again.
    broker
        .dead_letter(&route, &parked[1])
        .await
        .expect("a second copy");
    broker
        .dead_letter(&route, &parked[3])
        .await
        .expect("a second copy");
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let p = broker
            .browse_window(&q, page(after, 2))
            .await
            .expect("page");
        seen.extend(ids(&p.messages));
        if !p.more {
            break;
        }
        after = p.messages.last().map(|e| e.id);
    }
    assert_eq!(seen, all, "each id once, in queue order");
}

/// Browsing changes nothing: listed again and again (more often than RabbitMQ 4's default
/// quorum-queue delivery limit of 20), the same messages in the same order, and the queue
/// still delivers each once, in order.
pub async fn browsing_changes_nothing(broker: &dyn Broker) {
    let (route, parked) = park(broker, 3).await;
    let q = dead_letter_queue(&route);
    for i in 0..21 {
        assert_eq!(browse_ids(broker, &q).await, ids(&parked), "listing {i}");
    }
    assert_eq!(broker.queue_depth(&q).await.expect("depth"), 3);
    let mut c = broker.consume(&q, 5).await.expect("consume");
    for sent in &parked {
        let d = next(&mut c).await;
        assert_eq!(d.envelope.id, sent.id, "order kept");
        assert_eq!(d.envelope.headers, sent.headers);
        d.ack().await.expect("ack");
    }
    nothing_within(&mut c, Duration::from_millis(300)).await;
}

/// Taking a message by id removes exactly that one once acked; the others keep their order.
pub async fn take_removes_exactly_that_one(broker: &dyn Broker) {
    let (route, parked) = park(broker, 3).await;
    let q = dead_letter_queue(&route);
    let taken = broker.take(&q, &[parked[1].id]).await.expect("take");
    assert_eq!(
        ids(&taken.iter().map(|d| d.envelope.clone()).collect::<Vec<_>>()),
        [parked[1].id]
    );
    assert_eq!(taken[0].envelope.headers, parked[1].headers);
    assert_eq!(
        browse_ids(broker, &q).await,
        [parked[0].id, parked[2].id],
        "a taken message is not listed"
    );
    for d in taken {
        d.ack().await.expect("ack");
    }
    assert_eq!(browse_ids(broker, &q).await, [parked[0].id, parked[2].id]);
    assert_eq!(broker.queue_depth(&q).await.expect("depth"), 2);
    // Several at once, in queue order.
    let both = broker
        .take(&q, &[parked[2].id, parked[0].id])
        .await
        .expect("take two");
    let got: Vec<uuid::Uuid> = both.iter().map(|d| d.envelope.id).collect();
    assert_eq!(got, [parked[0].id, parked[2].id]);
    for d in both {
        d.ack().await.expect("ack");
    }
    assert!(browse_ids(broker, &q).await.is_empty());
}

/// Taking an id that is not in the queue is `MessageNotFound`, naming it, and changes nothing.
pub async fn take_unknown_id_is_not_found(broker: &dyn Broker) {
    let (route, parked) = park(broker, 2).await;
    let q = dead_letter_queue(&route);
    let nobody = uuid::Uuid::now_v7();
    let Err(err) = broker.take(&q, &[nobody]).await else {
        panic!("took a message that is not there");
    };
    assert!(
        matches!(&err, BrokerError::MessageNotFound { queue, ids } if *queue == q && ids == &[nobody]),
        "{err:?}"
    );
    assert!(err.to_string().contains(&nobody.to_string()), "{err}");
    assert!(!err.is_transient());
    assert_eq!(browse_ids(broker, &q).await, ids(&parked));
}

/// A taken message that is given back — nacked with requeue, or dropped unsettled — stays
/// in the queue; a taken message nacked without requeue is gone.
pub async fn taken_and_given_back_stays(broker: &dyn Broker) {
    let (route, parked) = park(broker, 3).await;
    let q = dead_letter_queue(&route);
    let mut taken = broker.take(&q, &[parked[0].id]).await.expect("take");
    taken.remove(0).nack(true).await.expect("nack");
    drop(broker.take(&q, &[parked[1].id]).await.expect("take"));
    let deadline = Instant::now() + WAIT;
    loop {
        let mut listed = browse_ids(broker, &q).await;
        listed.sort();
        let mut all = ids(&parked);
        all.sort();
        if listed == all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "given back: {listed:?} of {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut gone = broker.take(&q, &[parked[2].id]).await.expect("take");
    gone.remove(0).nack(false).await.expect("nack");
    let mut left = browse_ids(broker, &q).await;
    left.sort();
    let mut want = vec![parked[0].id, parked[1].id];
    want.sort();
    assert_eq!(left, want);
}
