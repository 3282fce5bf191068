//! Per-key ordering (`ordered_by`): messages with the same key — all events of one student,
//! say — are processed one at a time, in the order the route received them.
//!
//! ## Design: hash partitions with a single active consumer
//!
//! ```text
//!  publishers ──► knut.route.<id> ──► intake ──► knut.route.<id>.p0 ──► partition worker 0
//!  (unchanged)    (single active      key →      knut.route.<id>.p1 ──► partition worker 1
//!                  consumer)          partition  …                      (one message at a time,
//!                                                knut.route.<id>.pN-1   retries in place)
//! ```
//!
//! - **Intake.** The route's work queue stays its entry, bound as before, so publishers do not
//!   know the route is ordered. The intake takes one message at a time, evaluates the
//!   `ordered_by` jq program on its body (XML read as by `xml_to_json`), hashes the key to a
//!   partition with [`partition_of`], puts the message into `knut.route.<id>.p<k>` (confirmed)
//!   and only then acks it. A message without a key (the program fails, gives no output or
//!   `null`) is a permanent error: dead-lettered with the reason, never guessed into a
//!   partition.
//! - **Partitions.** Each partition queue is consumed with prefetch 1 and its message is run
//!   through the steps before the next is taken. `consumer.concurrency` bounds how many
//!   partitions of this process run steps at the same time.
//! - **Single active consumer.** The work queue and the partition queues are declared with
//!   `x-single-active-consumer` (RabbitMQ; the embedded broker honours the same flag). With
//!   several knut instances each queue delivers to one of them at a time; when it dies,
//!   RabbitMQ hands the queue — what it held first — to the next. A queue is only released
//!   (its consumer dropped) between messages, never with one in hand, so a graceful
//!   hand-over cannot reorder either.
//! - **Giving back without reordering.** A message is never given back with a nack: a
//!   RabbitMQ 3.10 quorum queue puts a nacked message *behind* the waiting ones. Instead the
//!   delivery is released unsettled and the consumer dropped; its channel is closed before
//!   the consumer is let go (see `broker::amqp`), and RabbitMQ returns what a closed channel
//!   held to the head of the queue. Both were found by the conformance test on RabbitMQ.
//! - **Retries in place.** A transient failure is retried *by the worker*, with the route's
//!   backoff, while the delivery stays unacked: the deliberate exception to "the broker holds
//!   the delay", since a retry through the broker's delay queues would let the key's later
//!   messages overtake it. The cost is head-of-line blocking: every key of that partition
//!   waits. After the last attempt the message is dead-lettered as usual and the partition
//!   moves on — order for the key continues without it; a replay puts it at the end. (The
//!   loader refuses retry policies that could hold a message longer than 15 minutes:
//!   RabbitMQ closes a consumer that holds a message 30 minutes.) A shutdown during the
//!   backoff gives the message back to the head of its partition; its attempts count anew.
//!   A retry is only made while the delivery's channel is alive: once it is gone the
//!   broker has handed the message on, and another attempt here could repeat its side
//!   effect after later messages.
//!
//! ## Why not the consistent-hash exchange
//!
//! RabbitMQ's `x-consistent-hash` exchange hashes the routing key (or a header) of each
//! publish. The key here comes from the body, so every publisher would have to compute it;
//! the exchange is a plugin (not on every broker, not in the embedded one), and it only
//! spreads messages — ordering still needs one consumer per queue. Hashing in the intake
//! keeps publishers unaware, works on both brokers, and keeps the hash in our hands.
//!
//! ## Limits (see docs/routes.md, "Ordering")
//!
//! - At-least-once still holds: a message whose ack was lost (a crash, a lost connection)
//!   is processed again — before the later messages of its partition, but an attempt that
//!   was already under way when the connection went may still finish while the next
//!   instance repeats it. Side effects must be idempotent, as everywhere.
//! - Throughput is at most `partitions` messages at a time for the whole route, however many
//!   instances run: the others are hot standbys. Keys of one partition wait for each other.
//!   The intake costs a confirmed put and an ack per message, one message at a time.
//! - Changing `partitions` moves keys to other partitions: drain the route first.
//! - The key may be a personnummer: it is never logged, put in a header, a metric or an
//!   error text; only the partition number is (`knut-partition`).

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::worker::{BROKER_BACKOFF, LAST_ERROR, Outcome, RouteWorker, mark_failed};
use crate::broker::{Delivery, partition_queue, work_queue};
use crate::codec::{XmlToJsonOptions, xml_to_json};
use crate::core::envelope::{Body, Envelope, is_xml_type};
use crate::core::error::{FailureKind, StepError};
use crate::core::value_to_string;
use crate::expr::Program;
use crate::step::eval_one;
use crate::telemetry::{metrics, otel};

/// Header naming the partition a message of an ordered route went through.
pub const PARTITION: &str = "knut-partition";

/// The step name under which a message without a key is dead-lettered and journalled.
const ORDERED_BY: &str = "ordered_by";

/// The partition of `key` among `partitions`: the first 8 bytes of the SHA-256 of the key's
/// UTF-8 bytes, as a big-endian number, modulo `partitions`.
///
/// The same in every process and every version (never Rust's randomised hasher), and easy to
/// reproduce when looking for a key's partition:
/// `printf %s KEY | sha256sum | cut -c1-16`, as a hexadecimal number, modulo `partitions`.
pub fn partition_of(key: &str, partitions: u16) -> u16 {
    let digest = Sha256::digest(key.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let n = u64::from_be_bytes(head) % u64::from(partitions.max(1));
    // n < partitions ≤ u16::MAX
    u16::try_from(n).unwrap_or(0)
}

/// Computes the partition of a message of an ordered route.
#[derive(Debug)]
pub struct Partitioner {
    key: Program,
    partitions: u16,
}

impl Partitioner {
    /// Compile the route's `ordered_by` program for `partitions` partitions.
    pub fn new(ordered_by: &str, partitions: u16) -> Result<Self, String> {
        Ok(Partitioner {
            key: Program::compile(ordered_by).map_err(|e| format!("ordered_by: {e}"))?,
            partitions: partitions.max(1),
        })
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// The message's partition, or a permanent error when it has no key. The error never
    /// holds the key or other content.
    pub fn partition(&self, m: &Envelope) -> Result<u16, StepError> {
        Ok(partition_of(&self.key(m)?, self.partitions))
    }

    /// What the intake does to a message: find its partition and name it in the
    /// `knut-partition` header.
    pub fn assign(&self, m: &mut Envelope) -> Result<u16, StepError> {
        let k = self.partition(m)?;
        m.headers.insert(PARTITION.into(), k.to_string());
        Ok(k)
    }

    /// The message's key: strings as they are, other values as JSON text.
    fn key(&self, m: &Envelope) -> Result<String, StepError> {
        let xml;
        let json;
        let body = match &m.body {
            Body::Bytes(bytes) if is_xml_type(&m.content_type) => {
                xml = xml_to_json(bytes, &XmlToJsonOptions::default()).map_err(|e| {
                    StepError::permanent(format!(
                        "{ORDERED_BY}: the body is not acceptable XML: {e}"
                    ))
                })?;
                &xml
            }
            _ => {
                json = m.json_body().map_err(|e| {
                    StepError::permanent(format!("{ORDERED_BY}: {}", StepError::from(e)))
                })?;
                &*json
            }
        };
        let key = eval_one(&self.key, ORDERED_BY, body, m)?;
        if key.is_null() {
            return Err(StepError::permanent(format!(
                "{ORDERED_BY}: the key is null: the program found no value in this message \
                 (a missing field?), so it has no place in the order"
            )));
        }
        Ok(value_to_string(&key))
    }
}

/// Run an ordered route until `shutdown`: its intake and one worker per partition. Returns
/// when each has finished the message in hand.
pub async fn run(worker: RouteWorker, partitioner: Partitioner, shutdown: CancellationToken) {
    let worker = Arc::new(worker);
    let partitioner = Arc::new(partitioner);
    let permits = Arc::new(Semaphore::new(worker.consumer.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for k in 0..partitioner.partitions() {
        let (worker, permits, shutdown) = (worker.clone(), permits.clone(), shutdown.clone());
        tasks.spawn(async move {
            let queue = partition_queue(&worker.context.route, k);
            let (w, p, s) = (&*worker, &permits, &shutdown);
            one_at_a_time(w, &queue, s, |d| process(w, d, p, s)).await;
        });
    }
    {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let queue = work_queue(&worker.context.route);
            let (w, p) = (&*worker, &*partitioner);
            one_at_a_time(w, &queue, &shutdown, |d| forward(w, p, d)).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    tracing::debug!("ordered route stopped");
}

/// What to do after a delivery was handled.
enum Flow {
    /// Take the next delivery.
    Next,
    /// Drop the consumer and consume again after a pause: the delivery was given back (it
    /// returns at the head of the queue when the consumer's channel closes), or its channel
    /// is gone.
    Again,
}

/// Consume `queue` one delivery at a time until `shutdown`, each settled (or given back) by
/// `handle` before the next is taken; consume again when the stream ends (connection lost)
/// or `handle` asks for it. The consumer is dropped only between deliveries, so its queue
/// is handed over with nothing in hand.
async fn one_at_a_time<F: Future<Output = Flow>>(
    worker: &RouteWorker,
    queue: &str,
    shutdown: &CancellationToken,
    mut handle: impl FnMut(Delivery) -> F,
) {
    let route = &worker.context.route;
    while !shutdown.is_cancelled() {
        match worker.broker.consume(queue, 1).await {
            Ok(mut consumer) => loop {
                let delivery = tokio::select! {
                    d = consumer.next() => d,
                    _ = shutdown.cancelled() => return,
                };
                let Some(delivery) = delivery else {
                    tracing::warn!(route = %route, queue, "consumer ended; consuming again");
                    break;
                };
                if let Flow::Again = handle(delivery).await {
                    break;
                }
            },
            Err(e) => {
                tracing::warn!(route = %route, queue, error = %e, "cannot consume; trying again");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BROKER_BACKOFF) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The intake: put a message into its partition (confirmed), then ack it. A message without
/// a key is dead-lettered. One the broker would not take is given back to the head of the
/// work queue, and the intake consumes again after a pause.
async fn forward(worker: &RouteWorker, partitioner: &Partitioner, delivery: Delivery) -> Flow {
    let (mut envelope, acker) = delivery.into_parts();
    let route = &worker.context.route;
    let k = match partitioner.assign(&mut envelope) {
        Ok(k) => k,
        Err(error) => {
            // No key, no place in the order: its own position does not matter.
            let span = worker.span(&envelope);
            async {
                metrics::message_in(route);
                metrics::message_failed(route);
                let started = Instant::now();
                let outcome = worker
                    .fail(envelope.clone(), ORDERED_BY, &error, acker)
                    .await;
                worker.record(&envelope, ORDERED_BY, outcome, started, Some(error.message));
                traced(&tracing::Span::current(), outcome);
            }
            .instrument(span)
            .await;
            return Flow::Next;
        }
    };
    if !acker.is_live() {
        // The connection was lost: the message is back in the work queue, and a put now
        // could land behind later messages that the next consumer has put.
        return Flow::Again;
    }
    match worker
        .broker
        .send_to_queue(&partition_queue(route, k), &envelope)
        .await
    {
        Ok(()) => match acker.ack().await {
            Ok(()) => Flow::Next,
            Err(e) => {
                tracing::warn!(route = %route, message_id = %envelope.id, error = %e,
                    "ack failed after the message reached its partition; the broker will deliver it again (a duplicate, in order)");
                Flow::Again
            }
        },
        Err(e) => {
            tracing::warn!(route = %route, message_id = %envelope.id, partition = k, error = %e,
                "cannot put the message into its partition; giving it back");
            acker.release().await;
            Flow::Again
        }
    }
}

/// With traces on, how a hop ended, on its message span (an error unless it passed).
fn traced(span: &tracing::Span, outcome: Outcome) {
    otel::message_outcome(
        span,
        outcome.as_str(),
        !matches!(outcome, Outcome::Ok | Outcome::Stopped),
    );
}

/// A partition worker's handling of one delivery: run the steps; retry a transient failure
/// in place (the delivery stays unacked, the partition waits) until the attempts are used;
/// then ack or dead-letter it. Whatever stops it early — shutdown, a lost channel, a broker
/// refusing the dead letter — gives the delivery back to the head of the partition.
async fn process(
    worker: &RouteWorker,
    delivery: Delivery,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Flow {
    let (mut envelope, acker) = delivery.into_parts();
    let route = &worker.context.route;
    loop {
        let span = worker.span(&envelope);
        if !acker.is_live() {
            // The connection was lost (during a backoff, say): the broker has given the
            // message back to the head of its partition, maybe to another instance already.
            // Another attempt here could repeat its side effect after later messages.
            span.in_scope(|| {
                tracing::warn!(
                    "the delivery's channel closed; the message goes on from the broker"
                );
            });
            return Flow::Again;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.ok(),
            _ = shutdown.cancelled() => None,
        };
        let Some(permit) = permit else {
            acker.release().await;
            return Flow::Again;
        };
        let started = Instant::now();
        let result = worker.run_steps(&envelope).instrument(span.clone()).await;
        drop(permit);
        let failure = match result {
            Ok((passed, keys)) => {
                let (outcome, step, detail) =
                    worker.finish(passed, acker).instrument(span.clone()).await;
                worker.record_with_keys(&envelope, &step, outcome, started, detail, keys);
                traced(&span, outcome);
                return match outcome {
                    Outcome::Requeued => Flow::Again,
                    _ => Flow::Next,
                };
            }
            Err(failure) => failure,
        };
        let error = &failure.error;
        if error.kind != FailureKind::Transient || envelope.attempt >= worker.retry.attempts {
            let parked = worker
                .park(envelope.clone(), &failure.step, error)
                .instrument(span.clone())
                .await;
            let (outcome, flow) = match parked {
                Ok(outcome) => match acker.ack().await {
                    Ok(()) => (outcome, Flow::Next),
                    Err(_) => (Outcome::Requeued, Flow::Again),
                },
                Err(e) => {
                    span.in_scope(|| {
                        tracing::error!(error = %e, "the broker refused the dead letter; giving the delivery back");
                    });
                    acker.release().await;
                    (Outcome::Requeued, Flow::Again)
                }
            };
            worker.record(
                &envelope,
                &failure.step,
                outcome,
                started,
                Some(error.message.clone()),
            );
            traced(&span, outcome);
            return flow;
        }
        let delay = worker.retry.delay(envelope.attempt);
        span.in_scope(|| {
            tracing::info!(step = %failure.step, error = %error.message, delay_ms = delay.as_millis() as u64,
                "transient failure; retrying in place (its partition waits)");
        });
        worker.record(
            &envelope,
            &failure.step,
            Outcome::Retry,
            started,
            Some(error.message.clone()),
        );
        traced(&span, Outcome::Retry);
        metrics::message_retried(route);
        mark_failed(&mut envelope);
        envelope
            .headers
            .insert(LAST_ERROR.to_string(), error.message.clone());
        envelope.attempt += 1;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => {
                acker.release().await;
                return Flow::Again;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{Broker, Consumer, dead_letter_queue};
    use crate::core::envelope::header;
    use crate::route::model::RetryPolicy;
    use crate::runtime::test_support::{
        Downstream, next_within, send, to_downstream, worker_on_embedded,
    };
    use crate::runtime::worker::ATTEMPTS;

    #[test]
    fn partitions_are_stable_known_values() {
        // printf %s student-1 | sha256sum → 600bf3b156895804… = 6920893195371501572
        assert_eq!(partition_of("student-1", 8), 4);
        assert_eq!(partition_of("student-1", 3), 2);
        assert_eq!(partition_of("student-2", 8), 0);
        assert_eq!(partition_of("42", 64), 13);
        assert_eq!(partition_of("Åsa", 8), 6);
        assert_eq!(partition_of("", 3), 1);
        assert_eq!(partition_of("anything", 1), 0);
        assert_eq!(
            partition_of("anything", 0),
            0,
            "no partitions counts as one"
        );
    }

    #[test]
    fn keys_spread_over_the_partitions() {
        let mut counts = [0u32; 8];
        for i in 0..4_000 {
            counts[usize::from(partition_of(&format!("elev-{i}"), 8))] += 1;
        }
        // 500 expected in each; a fixed hash gives fixed counts, so this cannot flake.
        assert!(
            counts.iter().all(|&c| (420..=580).contains(&c)),
            "{counts:?}"
        );
    }

    fn partitioner(program: &str) -> Partitioner {
        Partitioner::new(program, 8).expect("compiles")
    }

    #[test]
    fn keys_from_json_and_xml_bodies() {
        let p = partitioner(".student.id");
        let m = Envelope::json(json!({"student": {"id": "student-1"}}));
        assert_eq!(p.partition(&m).unwrap(), 4);
        // A number is keyed by its JSON text: 42 and "42" share a partition.
        let n = Envelope::json(json!({"student": {"id": 42}}));
        let s = Envelope::json(json!({"student": {"id": "42"}}));
        assert_eq!(p.partition(&n).unwrap(), p.partition(&s).unwrap());
        let xml = Envelope::new(
            crate::core::envelope::XML,
            Body::Bytes(Bytes::from_static(
                b"<student><id>student-1</id><namn>Tilda</namn></student>",
            )),
        );
        assert_eq!(
            p.partition(&xml).unwrap(),
            4,
            "XML is read as xml_to_json reads it"
        );
        let from_header = partitioner("$headers.elev");
        let mut h = Envelope::json(json!({}));
        h.headers.insert("elev".into(), "student-2".into());
        assert_eq!(from_header.partition(&h).unwrap(), 0);
    }

    #[test]
    fn no_key_is_a_permanent_error_that_never_shows_the_key() {
        let p = partitioner(".student.id");
        let err = p
            .partition(&Envelope::json(json!({"kind": "x"})))
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert!(
            err.message.starts_with("ordered_by: the key is null"),
            "{err}"
        );

        let text = Envelope::new("text/plain", Body::Bytes(Bytes::from_static(b"hej")));
        let err = p.partition(&text).unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert!(err.message.starts_with("ordered_by: "), "{err}");

        // A runtime error on a personnummer: the reason says what failed, not the value.
        let p = partitioner(".student.id + 1");
        let m = Envelope::json(json!({"student": {"id": "20130412-2383"}}));
        let err = p.partition(&m).unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert!(
            err.message.starts_with("ordered_by: jq program failed"),
            "{err}"
        );
        assert!(!err.message.contains("20130412-2383"), "{err}");
        assert!(!err.message.contains("0412-2383"), "{err}");

        assert!(Partitioner::new(".student !!", 8).is_err());
    }

    fn student_seq(e: &Envelope) -> (String, u64) {
        let v = e.json_body().expect("json");
        (
            v["student"].as_str().unwrap_or("-").to_string(),
            v["seq"].as_u64().unwrap_or(0),
        )
    }

    /// A downstream that refuses some messages transiently, `refusals[(student, seq)]`
    /// times each; its calls take 2 ms, so other partitions run meanwhile.
    fn refusing(refusals: &[((&str, u64), u32)]) -> Arc<Downstream> {
        let left: Mutex<BTreeMap<(String, u64), u32>> = Mutex::new(
            refusals
                .iter()
                .map(|((s, q), n)| ((s.to_string(), *q), *n))
                .collect(),
        );
        Downstream::scripted(Duration::from_millis(2), move |e, _| {
            match left.lock().expect("lock").get_mut(&student_seq(e)) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    Err(StepError::transient("downstream.deliver answered HTTP 503"))
                }
                _ => Ok(()),
            }
        })
    }

    fn delivered(d: &Downstream) -> Vec<(String, u64)> {
        d.delivered().iter().map(student_seq).collect()
    }

    fn attempts(d: &Downstream) -> Vec<(String, u64)> {
        d.called_with().iter().map(student_seq).collect()
    }

    struct Running {
        broker: Arc<EmbeddedBroker>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        async fn send(&self, route: &str, body: serde_json::Value) -> Envelope {
            let m = Envelope::json(body);
            send(&self.broker, route, &m).await;
            m
        }

        async fn dead_letters(&self, route: &str) -> Consumer {
            self.broker
                .consume(&dead_letter_queue(route), 1)
                .await
                .expect("consume the dead-letter queue")
        }

        async fn stop(self) {
            self.stop.cancel();
            self.task.await.expect("the route stops");
        }
    }

    async fn start(
        route: &str,
        partitions: u16,
        retry: RetryPolicy,
        downstream: Arc<Downstream>,
    ) -> Running {
        let steps = vec![to_downstream()];
        let (broker, worker) =
            worker_on_embedded(route, Some(partitions), steps, downstream, retry).await;
        let stop = CancellationToken::new();
        let partitioner = Partitioner::new(".student", partitions).expect("compiles");
        let task = tokio::spawn(run(worker, partitioner, stop.clone()));
        Running { broker, stop, task }
    }

    fn quick_retry(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial: Duration::from_millis(20),
            max: Duration::from_millis(80),
        }
    }

    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A transient failure is retried in place: the key's later messages wait for it, and
    /// so does another key of the same partition (head-of-line blocking).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transient_failure_holds_its_partition_in_order() {
        let downstream = refusing(&[(("a", 0), 2)]);
        let r = start("ordered-hold", 1, quick_retry(5), downstream.clone()).await;
        r.send("ordered-hold", json!({"student": "a", "seq": 0}))
            .await;
        r.send("ordered-hold", json!({"student": "a", "seq": 1}))
            .await;
        r.send("ordered-hold", json!({"student": "b", "seq": 0}))
            .await;
        eventually("three deliveries", || downstream.delivered().len() == 3).await;
        assert_eq!(
            delivered(&downstream),
            [("a".into(), 0), ("a".into(), 1), ("b".into(), 0)]
        );
        let attempts = attempts(&downstream);
        assert_eq!(
            attempts[..3],
            [("a".into(), 0), ("a".into(), 0), ("a".into(), 0)],
            "nothing overtook the retried message: {attempts:?}"
        );
        r.stop().await;
    }

    /// After the last attempt the message is dead-lettered with its attempts, and the
    /// partition goes on with the key's next message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_used_dead_letter_and_the_partition_moves_on() {
        let downstream = refusing(&[(("a", 0), u32::MAX)]);
        let r = start("ordered-tired", 2, quick_retry(3), downstream.clone()).await;
        let mut dlq = r.dead_letters("ordered-tired").await;
        let first = r
            .send("ordered-tired", json!({"student": "a", "seq": 0}))
            .await;
        r.send("ordered-tired", json!({"student": "a", "seq": 1}))
            .await;
        let d = next_within(&mut dlq).await;
        assert_eq!(d.envelope.id, first.id);
        assert_eq!(d.envelope.header(ATTEMPTS), Some("3"));
        assert_eq!(
            d.envelope.header(header::DEAD_LETTER_REASON),
            Some("downstream.deliver answered HTTP 503")
        );
        assert_eq!(
            d.envelope.header(LAST_ERROR),
            Some("downstream.deliver answered HTTP 503")
        );
        assert!(d.envelope.header(PARTITION).is_some());
        eventually("the next message", || downstream.delivered().len() == 1).await;
        assert_eq!(delivered(&downstream), [("a".into(), 1)]);
        assert_eq!(
            downstream.calls(),
            4,
            "three attempts, then the next message"
        );
        r.stop().await;
    }

    /// A message without a key never reaches the steps: it is dead-lettered by the intake
    /// with the reason, and the messages after it flow.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_without_a_key_is_dead_lettered() {
        let downstream = refusing(&[]);
        let r = start("ordered-nokey", 4, quick_retry(3), downstream.clone()).await;
        let mut dlq = r.dead_letters("ordered-nokey").await;
        let keyless = r.send("ordered-nokey", json!({"seq": 0})).await;
        r.send("ordered-nokey", json!({"student": "a", "seq": 1}))
            .await;
        let d = next_within(&mut dlq).await;
        assert_eq!(d.envelope.id, keyless.id);
        assert_eq!(
            d.envelope.header(header::DEAD_LETTER_STEP),
            Some("ordered_by")
        );
        assert!(
            d.envelope
                .header(header::DEAD_LETTER_REASON)
                .is_some_and(|r| r.starts_with("ordered_by: the key is null")),
            "{:?}",
            d.envelope.headers
        );
        eventually("the keyed message", || downstream.delivered().len() == 1).await;
        assert_eq!(downstream.calls(), 1);
        r.stop().await;
    }
}
