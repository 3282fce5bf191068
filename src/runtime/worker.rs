//! The route worker: consumes a route's work queue and runs each delivery through the
//! route's steps, with the route's error policy (the dead letter channel). An ordered route
//! (`ordered_by`) runs the same steps and policy through [`super::ordered`] instead.
//!
//! A delivery is acked only when everything it caused is durable: its steps succeeded (their
//! publishes confirmed, their adapter calls answered), or the retry or dead letter that
//! replaces it was confirmed by the broker. If even that fails, the delivery is given back
//! to the broker (nack with requeue) after a pause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::journal::{Journal, Keys};
use crate::broker::{Acker, SharedBroker, work_queue};
use crate::core::envelope::{Envelope, header};
use crate::core::error::{Failure, FailureKind, StepError};
use crate::route::model::{ConsumerSpec, RetryPolicy};
use crate::step::aggregate::RESUME_AFTER;
use crate::step::{Context, Pipeline};
use crate::telemetry::{metrics, otel};

pub use crate::core::envelope::header::{ATTEMPTS, DEAD_LETTER_ROUTE, LAST_ERROR};

/// Pause before giving a delivery back when the broker refused its retry or dead letter.
pub(crate) const BROKER_BACKOFF: Duration = Duration::from_secs(1);

/// Stamp the time of a failure on a message: `knut-first-failure` (once) and
/// `knut-last-failure`.
pub(crate) fn mark_failed(e: &mut Envelope) {
    let now = Utc::now().to_rfc3339();
    e.headers
        .entry(header::FIRST_FAILURE.to_string())
        .or_insert_with(|| now.clone());
    e.headers.insert(header::LAST_FAILURE.to_string(), now);
}

/// One route's consumer.
pub struct RouteWorker {
    /// The route's steps.
    pub pipeline: Arc<Pipeline>,
    /// The step context (route id, effects, store).
    pub context: Context,
    /// The route's retry policy.
    pub retry: RetryPolicy,
    /// Prefetch and concurrency.
    pub consumer: ConsumerSpec,
    /// The broker.
    pub broker: SharedBroker,
    /// The journal.
    pub journal: Journal,
    /// A bridge: what it reads comes from the other (external) plane, so every header of a
    /// delivery is dropped before the steps — only the body, which the bridge validates,
    /// crosses; a header cannot skip a step or pose as a claim.
    pub bridge: bool,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every step passed.
    Ok,
    /// A filter, idempotent consumer or aggregator stopped it (by design).
    Stopped,
    /// Sent back to the queue with a delay.
    Retry,
    /// Parked in the dead-letter queue.
    DeadLetter,
    /// Given back to the broker (the retry or dead letter could not be published).
    Requeued,
}

impl Outcome {
    /// The journal's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Stopped => "stopped",
            Outcome::Retry => "retry",
            Outcome::DeadLetter => "dead-letter",
            Outcome::Requeued => "requeued",
        }
    }
}

impl RouteWorker {
    /// Consume until `shutdown`, then finish the deliveries in hand and return.
    pub async fn run(self, shutdown: CancellationToken) {
        let route = self.context.route.clone();
        let queue = work_queue(&route);
        let me = Arc::new(self);
        let permits = Arc::new(Semaphore::new(me.consumer.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        'consume: while !shutdown.is_cancelled() {
            let mut consumer = match me.broker.consume(&queue, me.consumer.prefetch).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(route = %route, error = %e, "cannot consume; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(BROKER_BACKOFF) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            };
            loop {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break 'consume },
                    _ = shutdown.cancelled() => break 'consume,
                };
                let delivery = tokio::select! {
                    d = consumer.next() => d,
                    _ = shutdown.cancelled() => break 'consume,
                };
                let Some(delivery) = delivery else {
                    // The consumer ended (connection lost): consume again.
                    tracing::warn!(route = %route, "consumer ended; consuming again");
                    break;
                };
                let worker = me.clone();
                tasks.spawn(async move {
                    let (envelope, acker) = delivery.into_parts();
                    worker.handle(envelope, acker).await;
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
            }
            tokio::select! {
                _ = tokio::time::sleep(BROKER_BACKOFF) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Stop consuming (the consumer is dropped above), finish what is in hand.
        while tasks.join_next().await.is_some() {}
        tracing::debug!(route = %route, "worker stopped");
    }

    /// Process one delivery and settle it.
    pub async fn handle(&self, mut envelope: Envelope, acker: Box<dyn Acker>) -> Outcome {
        // The span first: a bridged message's trace goes on (its `traceparent` only links
        // spans), though none of its headers does.
        let span = self.span(&envelope);
        if self.bridge {
            envelope.headers.clear();
        }
        let traced = otel::enabled().then(|| span.clone());
        async move {
            let started = Instant::now();
            let mut out_keys = Keys::new();
            let (outcome, step, detail) = match self.run_steps(&envelope).await {
                Ok((passed, keys)) => {
                    out_keys = keys;
                    self.finish(passed, acker).await
                }
                Err(failure) => {
                    let outcome = self
                        .fail(envelope.clone(), &failure.step, &failure.error, acker)
                        .await;
                    (outcome, failure.step, Some(failure.error.message))
                }
            };
            self.record_with_keys(&envelope, &step, outcome, started, detail, out_keys);
            if let Some(traced) = &traced {
                otel::message_outcome(
                    traced,
                    outcome.as_str(),
                    !matches!(outcome, Outcome::Ok | Outcome::Stopped),
                );
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// The span of one message's processing: ids only, never content. With traces on, it
    /// is exported as the route's consumer span, a child of the span that published the
    /// message (its `traceparent` header).
    pub(crate) fn span(&self, envelope: &Envelope) -> tracing::Span {
        let span = tracing::info_span!("message", route = %self.context.route, message_id = %envelope.id, correlation_id = %envelope.correlation_id, attempt = envelope.attempt,
            otel.name = tracing::field::Empty, otel.kind = tracing::field::Empty,
            otel.status_code = tracing::field::Empty, outcome = tracing::field::Empty);
        otel::message_span(
            &span,
            &self.context.route,
            envelope.header(otel::TRACEPARENT),
        );
        span
    }

    /// Run the route's steps once (after the aggregator a message resumes from, if any) and
    /// count it in, and out or failed. `Ok` is [`Outcome::Ok`] or [`Outcome::Stopped`], with
    /// the business keys the route's outputs carry (for its end row: a key a `set` of this
    /// route added is journaled with the route's own row, which is not dropped first).
    pub(crate) async fn run_steps(&self, envelope: &Envelope) -> Result<(Outcome, Keys), Failure> {
        let route = &self.context.route;
        metrics::message_in(route);
        // Only a timed-out aggregate group (sent by this route's sweeper) and a split's part
        // (sent by its split) resume after their step; the header never names another step,
        // and never travels on.
        let start = envelope
            .header(RESUME_AFTER)
            .filter(|p| p.ends_with(".aggregate") || p.ends_with(".split"))
            .and_then(|p| self.pipeline.index_of(p))
            .map_or(0, |i| i + 1);
        let mut envelope = envelope.clone();
        envelope.headers.remove(RESUME_AFTER);
        match self.pipeline.run_from(start, envelope, &self.context).await {
            Ok(out) => {
                metrics::message_out(route);
                let keys: Keys = out.iter().flat_map(crate::core::keys::of).collect();
                if out.is_empty() && !self.pipeline.is_empty() {
                    Ok((Outcome::Stopped, keys))
                } else {
                    Ok((Outcome::Ok, keys))
                }
            }
            Err(failure) => {
                metrics::message_failed(route);
                Err(failure)
            }
        }
    }

    /// Ack a delivery whose steps passed; the outcome, step and detail for the journal.
    pub(crate) async fn finish(
        &self,
        passed: Outcome,
        acker: Box<dyn Acker>,
    ) -> (Outcome, String, Option<String>) {
        match acker.ack().await {
            Ok(()) => (passed, "end".to_string(), None),
            Err(e) => {
                tracing::warn!(error = %e, "ack failed; the broker will redeliver");
                (Outcome::Requeued, "end".to_string(), Some(e.to_string()))
            }
        }
    }

    /// Record one hop of `envelope` in the journal.
    pub(crate) fn record(
        &self,
        envelope: &Envelope,
        step: &str,
        outcome: Outcome,
        started: Instant,
        detail: Option<String>,
    ) {
        self.record_with_keys(envelope, step, outcome, started, detail, Keys::new());
    }

    /// Record one hop of `envelope` in the journal with `more` business keys than it
    /// carries (those of the route's outputs, on its end row).
    pub(crate) fn record_with_keys(
        &self,
        envelope: &Envelope,
        step: &str,
        outcome: Outcome,
        started: Instant,
        detail: Option<String>,
        more: Keys,
    ) {
        self.journal.record_with_keys(
            envelope,
            &self.context.route,
            step,
            outcome.as_str(),
            started.elapsed(),
            detail,
            more,
        );
    }

    /// Settle a delivery whose steps failed: retry it later through the broker (a transient
    /// failure with attempts left) or dead-letter it, then ack it; when the broker refuses
    /// either, give the delivery back after a pause.
    pub(crate) async fn fail(
        &self,
        e: Envelope,
        step: &str,
        error: &StepError,
        acker: Box<dyn Acker>,
    ) -> Outcome {
        match self.park(e, step, error).await {
            Ok(outcome) => {
                if let Err(err) = acker.ack().await {
                    tracing::warn!(error = %err, "ack failed; the broker will redeliver");
                }
                outcome
            }
            Err(err) => {
                tracing::error!(error = %err, "the broker refused the retry or dead letter; giving the delivery back");
                tokio::time::sleep(BROKER_BACKOFF).await;
                let _ = acker.nack(true).await;
                Outcome::Requeued
            }
        }
    }

    /// Put a failed message where it goes next — the broker's retry delay (a transient
    /// failure with attempts left) or the dead-letter queue — without settling its delivery.
    /// [`Outcome::Retry`] or [`Outcome::DeadLetter`] once the broker has it.
    pub(crate) async fn park(
        &self,
        mut e: Envelope,
        step: &str,
        error: &StepError,
    ) -> Result<Outcome, crate::broker::BrokerError> {
        let route = &self.context.route;
        mark_failed(&mut e);
        let retry = error.kind == FailureKind::Transient && e.attempt < self.retry.attempts;
        if retry {
            let delay = self.retry.delay(e.attempt);
            tracing::info!(step, error = %error.message, delay_ms = delay.as_millis() as u64, "transient failure; retrying later");
            e.attempt += 1;
            e.headers
                .insert(LAST_ERROR.to_string(), error.message.clone());
            self.broker.retry_later(route, &e, delay).await?;
            metrics::message_retried(route);
            return Ok(Outcome::Retry);
        }
        tracing::warn!(step, error = %error.message, attempts = e.attempt, "dead-lettered");
        e.headers.insert(
            header::DEAD_LETTER_REASON.to_string(),
            error.message.clone(),
        );
        e.headers
            .insert(header::DEAD_LETTER_STEP.to_string(), step.to_string());
        e.headers
            .insert(DEAD_LETTER_ROUTE.to_string(), route.to_string());
        e.headers
            .insert(ATTEMPTS.to_string(), e.attempt.to_string());
        // The message is to be parked: free the idempotency keys it claimed first, or a
        // corrected resend of the same key, sent as soon as the dead letter is seen, would be
        // suppressed as a duplicate and lost silently (a replay of the dead letter, or this
        // delivery again when the broker refuses the dead letter, claims anew).
        if let Err(err) = self.context.store.release_keys_of(e.id).await {
            tracing::warn!(error = %err, "could not release the dead letter's idempotency keys; a resend with the same key will be suppressed");
        }
        self.broker.dead_letter(route, &e).await?;
        // The overview's oldest age (`knut dlq list`): the first dead letter since the queue
        // was last seen empty.
        if let Err(err) = self
            .context
            .store
            .note_dead_letters_since(route, chrono::Utc::now())
            .await
        {
            tracing::warn!(error = %err, "could not note when the route began to hold dead letters; the overview shows no age for it");
        }
        metrics::message_dead_lettered(route);
        self.answer_waiting_caller(&e).await;
        Ok(Outcome::DeadLetter)
    }

    /// A dead-lettered message of a synchronous HTTP caller: tell the caller now (502
    /// problem+json) instead of letting it wait for the reply timeout — the message will not
    /// be processed as it is. Best effort; the reason stays in the dead letter, never in the
    /// answer. An answer the caller already got wins (the second finds nobody waiting).
    async fn answer_waiting_caller(&self, e: &Envelope) {
        let Some(reply_to) = e.header(header::REPLY_TO).map(str::to_string) else {
            return;
        };
        let problem = serde_json::json!({
            "type": "https://knutpunkt.sundsvall.se/problems/not-processed",
            "title": "The request could not be processed",
            "status": 502,
            "detail": "It was put aside for the service's operators (a dead letter) and will not be processed as it is; quote the x-correlation-id when you ask about it.",
        });
        let answer = crate::step::reply::answer(
            e,
            "dead-letter/reply",
            502,
            crate::core::envelope::Body::Json(problem),
            crate::core::problem::CONTENT_TYPE,
        );
        if let Err(err) = self.context.effects.reply(&reply_to, &answer).await {
            tracing::debug!(error = %err.message, "the waiting caller could not be told of the dead letter");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{Broker, dead_letter_queue};
    use crate::route::model::StepSpec;
    use crate::runtime::test_support::{
        Downstream, next_within, send, to_downstream, worker_on_embedded,
    };

    async fn start(
        route: &str,
        flaky: Arc<Downstream>,
        retry: RetryPolicy,
    ) -> (
        Arc<EmbeddedBroker>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        start_with(route, vec![to_downstream()], flaky, retry).await
    }

    async fn start_with(
        route: &str,
        specs: Vec<StepSpec>,
        flaky: Arc<Downstream>,
        retry: RetryPolicy,
    ) -> (
        Arc<EmbeddedBroker>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let (broker, worker) = worker_on_embedded(route, None, specs, flaky, retry).await;
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        (broker, stop, task)
    }

    /// Under load a step's row gives way, and with it the keys it carried: the route's end
    /// row carries the keys of the route's outputs, so a key a `set` of this route added is
    /// still noted (fails when the end row carries the input's keys only).
    #[tokio::test]
    async fn the_end_row_carries_the_keys_a_set_of_the_route_added() {
        let steps: Vec<StepSpec> =
            serde_saphyr::from_str("- set: { headers: { knut-key-errandNumber: '\"PRH-3\"' } }\n")
                .unwrap();
        let mut specs = steps;
        specs.push(to_downstream());
        let ok = Downstream::flaky(0, StepError::transient("never"));
        let (broker, mut worker) =
            worker_on_embedded("keys", None, specs, ok.clone(), RetryPolicy::default()).await;
        let (journal, mut rx) = Journal::under_load();
        worker.journal = journal;
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        let m = Envelope::json(serde_json::json!({}));
        send(&broker, "keys", &m).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ok.delivered().is_empty() {
            assert!(Instant::now() < deadline, "not delivered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut found = Vec::new();
        while found.is_empty() {
            assert!(Instant::now() < deadline, "no end row");
            tokio::time::sleep(Duration::from_millis(10)).await;
            found = crate::runtime::journal::rows(&mut rx)
                .into_iter()
                .filter(|(_, keys)| !keys.is_empty())
                .collect();
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "end");
        assert!(
            found[0]
                .1
                .contains(&("errandNumber".to_string(), "PRH-3".to_string())),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn transient_failures_are_retried_with_growing_delay() {
        let flaky = Downstream::flaky(
            3,
            StepError::transient("downstream.deliver answered HTTP 503"),
        );
        let retry = RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let (broker, stop, task) = start("flaky", flaky.clone(), retry).await;
        send(&broker, "flaky", &Envelope::json(serde_json::json!({}))).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while flaky.calls() < 4 {
            assert!(Instant::now() < deadline, "not delivered after retries");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let calls = flaky.call_times();
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        // delays: attempt 1 in [50,100] ms, 2 in [100,200], 3 in [200,400]
        assert!(gaps[0] >= Duration::from_millis(45), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(95), "{gaps:?}");
        assert!(gaps[2] >= Duration::from_millis(195), "{gaps:?}");
        assert!(gaps[2] > gaps[0], "delays grow: {gaps:?}");
        assert_eq!(
            broker
                .queue_depth(&dead_letter_queue("flaky"))
                .await
                .unwrap(),
            0
        );
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn permanent_failure_is_dead_lettered_with_reason() {
        let flaky = Downstream::flaky(
            usize::MAX,
            StepError::permanent("downstream.deliver answered HTTP 400"),
        );
        let (broker, stop, task) = start("poison", flaky.clone(), RetryPolicy::default()).await;
        let m = Envelope::json(serde_json::json!({"x": 1}));
        send(&broker, "poison", &m).await;
        let mut dlq = broker
            .consume(&dead_letter_queue("poison"), 1)
            .await
            .unwrap();
        let d = next_within(&mut dlq).await;
        let e = &d.envelope;
        assert_eq!(e.id, m.id, "the dead letter is the original message");
        assert_eq!(
            e.header(header::DEAD_LETTER_REASON),
            Some("downstream.deliver answered HTTP 400")
        );
        assert_eq!(e.header(header::DEAD_LETTER_STEP), Some("steps[0].to"));
        assert_eq!(e.header(DEAD_LETTER_ROUTE), Some("poison"));
        assert_eq!(e.header(ATTEMPTS), Some("1"));
        assert!(e.header(header::FIRST_FAILURE).is_some());
        assert!(e.header(header::LAST_FAILURE).is_some());
        assert_eq!(flaky.calls(), 1, "a permanent failure is not retried");
        stop.cancel();
        task.await.unwrap();
    }

    /// Dead-lettering notes since when the route holds dead letters (the overview's oldest
    /// age), and a second dead letter leaves the first's time.
    #[tokio::test]
    async fn dead_lettering_notes_since_when_the_route_holds_dead_letters() {
        let flaky = Downstream::flaky(usize::MAX, StepError::permanent("HTTP 400"));
        let (broker, worker) = worker_on_embedded(
            "aged",
            None,
            vec![to_downstream()],
            flaky,
            RetryPolicy::default(),
        )
        .await;
        let store = worker.context.store.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        let mut dlq = broker.consume(&dead_letter_queue("aged"), 2).await.unwrap();
        let before = Utc::now();
        send(
            &broker,
            "aged",
            &Envelope::json(serde_json::json!({"x": 1})),
        )
        .await;
        next_within(&mut dlq).await;
        let first = store
            .dead_letters_since("aged")
            .await
            .unwrap()
            .expect("noted");
        assert!(first >= before - chrono::TimeDelta::seconds(1) && first <= Utc::now());
        send(
            &broker,
            "aged",
            &Envelope::json(serde_json::json!({"x": 2})),
        )
        .await;
        next_within(&mut dlq).await;
        assert_eq!(store.dead_letters_since("aged").await.unwrap(), Some(first));
        stop.cancel();
        task.await.unwrap();
    }

    /// A message dead-lettered after its idempotent step frees its key: a corrected resend
    /// (a new message with the same key) is delivered, not suppressed as a duplicate.
    #[tokio::test]
    async fn dead_letter_releases_its_idempotency_key() {
        let flaky = Downstream::flaky(
            1,
            StepError::permanent("downstream.deliver answered HTTP 400"),
        );
        let specs = vec![
            StepSpec::Idempotent(crate::step::idempotent::IdempotentSpec {
                key: ".n".into(),
                scope: None,
            }),
            to_downstream(),
        ];
        let (broker, stop, task) =
            start_with("resend", specs, flaky.clone(), RetryPolicy::default()).await;
        let mut dlq = broker
            .consume(&dead_letter_queue("resend"), 1)
            .await
            .unwrap();
        let first = Envelope::json(serde_json::json!({"n": 7}));
        send(&broker, "resend", &first).await;
        let d = next_within(&mut dlq).await;
        assert_eq!(d.envelope.id, first.id);
        let resend = Envelope::json(serde_json::json!({"n": 7}));
        send(&broker, "resend", &resend).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while flaky.calls() < 2 {
            assert!(
                Instant::now() < deadline,
                "the resend was suppressed as a duplicate of the dead letter"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A third message with the key is a true duplicate now.
        send(
            &broker,
            "resend",
            &Envelope::json(serde_json::json!({"n": 7})),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(flaky.calls(), 2, "duplicate passed");
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn transient_failure_dead_lettered_after_attempts() {
        let flaky = Downstream::flaky(
            usize::MAX,
            StepError::transient("downstream.deliver timed out"),
        );
        let retry = RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        let (broker, stop, task) = start("tired", flaky.clone(), retry).await;
        send(&broker, "tired", &Envelope::json(serde_json::json!({}))).await;
        let mut dlq = broker
            .consume(&dead_letter_queue("tired"), 1)
            .await
            .unwrap();
        let d = next_within(&mut dlq).await;
        assert_eq!(d.envelope.header(ATTEMPTS), Some("3"));
        assert_eq!(flaky.calls(), 3);
        stop.cancel();
        task.await.unwrap();
    }
}
