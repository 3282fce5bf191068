//! The dead letter channel's tooling: list, show, replay and discard the dead letters of a
//! route (`knut.dlq.<route>`). The admin API ([`crate::admin::dlq`]) and `knut dlq` use it.
//!
//! - **list** and **show** browse the dead-letter queue ([`Broker::browse`]): nothing is
//!   removed or reordered.
//! - **replay** takes the dead letter out by id ([`Broker::take`]), publishes it to the
//!   route's work queue through the ingress exchange — the same message id and correlation
//!   id, the body and content type unchanged, attempt 1, the dead-letter and failure headers
//!   removed (see [`replay_of`]) and `knut-replayed` set to the time of the replay —,
//!   journals the replay, and only then removes the dead letter (acks it). A crash between
//!   the publish and the ack leaves the dead letter in its queue as well: at-least-once, it
//!   may be replayed twice but is never lost. Dead-lettering released the message's
//!   idempotency keys, so the replay is processed again, like a fresh message.
//! - **discard** journals the discard, then removes the dead letter. A discard that cannot
//!   be journaled does not happen: the dead letter stays.
//!
//! - **replay all** is one pass: the dead-letter queue is consumed as many messages as it
//!   held when the replay began, each replayed as above and acked — per dead letter one
//!   delivery, one confirmed publish and one ack, whatever the queue's length.
//!
//! A browse on RabbitMQ that was interrupted by a crash can leave a dead letter in its queue
//! twice (same message id; see [`crate::broker::amqp`]). Replay and discard take every copy
//! of the id, replay it once, and remove them all; replay all replays the first copy and
//! removes the others.

use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use uuid::Uuid;

use crate::broker::{
    BrokerError, Browsed, Delivery, INGRESS_EXCHANGE, SharedBroker, Window, dead_letter_queue,
};
use crate::core::envelope::header::{ATTEMPTS, DEAD_LETTER_ROUTE, LAST_ERROR};
use crate::core::envelope::{Envelope, header};
use crate::store::{JournalEntry, Store, StoreError};

/// Headers that describe a failed run, removed from a replayed message. `knut-reply-to` goes
/// too: the HTTP caller that waited for a reply gave up long ago.
const FAILURE_HEADERS: &[&str] = &[
    header::DEAD_LETTER_REASON,
    header::DEAD_LETTER_STEP,
    header::FIRST_FAILURE,
    header::LAST_FAILURE,
    header::REPLY_TO,
    ATTEMPTS,
    DEAD_LETTER_ROUTE,
    LAST_ERROR,
];

/// How long a replay of all waits for the next dead letter before it takes the queue to
/// be empty (another instance replayed the rest meanwhile).
const REPLAY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// No dead letter with this id is in the route's dead-letter queue.
    #[error(
        "route `{route}` has no dead letter with id {id}: list them with `knut dlq list {route}` \
         (GET /api/routes/{route}/dlq)"
    )]
    NotFound {
        /// The route.
        route: String,
        /// The id asked for.
        id: Uuid,
    },
    /// A page was asked for after a dead letter that is no longer there.
    #[error(
        "dead letter {id}, after which the page was to start, is no longer in route `{route}`'s \
         dead-letter queue (replayed or discarded meanwhile): list from the start again \
         (`knut dlq list {route}`, GET /api/routes/{route}/dlq)"
    )]
    CursorGone {
        /// The route.
        route: String,
        /// The `after` asked for.
        id: Uuid,
    },
    /// The broker failed; the dead letters are as they were.
    #[error("{0}")]
    Broker(#[from] BrokerError),
    /// The discard could not be journaled, so it was not done; the dead letter stays.
    #[error("the discard could not be journaled ({0}); the dead letter stays in its queue")]
    Journal(StoreError),
    /// The dead letter was replayed (or discarded), but removing it from the queue failed.
    #[error(
        "dead letter {id} was {done}, but removing it from the dead-letter queue failed ({error}); \
         it may be listed again: discard it then"
    )]
    NotRemoved {
        /// The dead letter.
        id: Uuid,
        /// `replayed` or `discarded`.
        done: &'static str,
        /// The broker's error.
        error: BrokerError,
    },
    /// A replay of all stopped part way.
    #[error("{replayed} dead letters were replayed, then: {error}")]
    Partial {
        /// How many were replayed before the failure.
        replayed: usize,
        /// What stopped it.
        error: Box<DlqError>,
    },
}

impl DlqError {
    /// True when asking again later may succeed (the broker was unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            DlqError::Broker(e) | DlqError::NotRemoved { error: e, .. } => e.is_transient(),
            DlqError::Journal(_) => true,
            DlqError::Partial { error, .. } => error.is_transient(),
            DlqError::NotFound { .. } | DlqError::CursorGone { .. } => false,
        }
    }
}

/// The message to publish when replaying `dead`: same id, correlation and causation ids,
/// body, content type and creation time; attempt 1; the failure headers removed;
/// `knut-replayed` set to `at` (RFC 3339).
pub fn replay_of(dead: &Envelope, at: chrono::DateTime<Utc>) -> Envelope {
    let mut m = dead.clone();
    for name in FAILURE_HEADERS {
        m.headers.remove(*name);
    }
    m.headers.insert(
        header::REPLAYED.to_string(),
        at.to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    m.attempt = 1;
    m
}

/// The dead letters of the routes of one running knut.
#[derive(Clone)]
pub struct DeadLetters {
    broker: SharedBroker,
    /// Routes whose queues live on another broker (a bridge's, on the other plane's).
    elsewhere: std::collections::BTreeMap<String, SharedBroker>,
    store: Store,
}

impl DeadLetters {
    /// Dead letters on `broker`, journaled in `store`.
    pub fn new(broker: SharedBroker, store: Store) -> Self {
        DeadLetters {
            broker,
            elsewhere: Default::default(),
            store,
        }
    }

    /// The same, with `route`'s dead letters on `broker` instead.
    pub fn with_route_broker(mut self, route: &str, broker: SharedBroker) -> Self {
        self.elsewhere.insert(route.to_string(), broker);
        self
    }

    fn broker(&self, route: &str) -> &SharedBroker {
        self.elsewhere.get(route).unwrap_or(&self.broker)
    }

    /// How many dead letters `route` holds (the queue's depth: nothing is read or moved).
    pub async fn count(&self, route: &str) -> Result<u64, DlqError> {
        Ok(self
            .broker(route)
            .queue_depth(&dead_letter_queue(route))
            .await?)
    }

    /// Since when `route` holds the `count` dead letters it holds: the last-failure time of
    /// its oldest dead letter as last read from the head of the queue, or else the time the
    /// first of them was dead-lettered after the queue was last seen empty (a dead letter
    /// taken out of the middle leaves the time as it was). `None` when it holds none (the
    /// noted time is forgotten), nothing is noted (dead letters from before this was kept)
    /// or the store could not tell (logged).
    pub async fn since(&self, route: &str, count: u64) -> Option<chrono::DateTime<chrono::Utc>> {
        let since = match count {
            0 => self
                .store
                .set_dead_letters_since(route, None)
                .await
                .map(|()| None),
            _ => self.store.dead_letters_since(route).await,
        };
        since.unwrap_or_else(|e| {
            tracing::warn!(route, error = %e, "could not read since when the route holds dead letters");
            None
        })
    }

    /// Every dead letter of `route`, oldest first.
    pub async fn list(&self, route: &str) -> Result<Vec<Envelope>, DlqError> {
        Ok(self.broker(route).browse(&dead_letter_queue(route)).await?)
    }

    /// A page of the dead letters of `route`, oldest first: at most `limit`, from the head
    /// or after the dead letter `after` (the last of the previous page). The queue is
    /// visited whole, but only the page is held.
    pub async fn page(
        &self,
        route: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Browsed, DlqError> {
        let window = Window::Page { after, limit };
        let page = self
            .broker(route)
            .browse_window(&dead_letter_queue(route), window)
            .await?;
        if after.is_none() {
            // The head is the oldest dead letter: keep its time for the overview.
            let oldest = page.messages.first().map(|m| {
                m.header(crate::core::envelope::header::LAST_FAILURE)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
            });
            let noted = match oldest {
                None => self.store.set_dead_letters_since(route, None).await,
                Some(Some(t)) => self.store.set_dead_letters_since(route, Some(t)).await,
                Some(None) => Ok(()),
            };
            if let Err(e) = noted {
                tracing::warn!(route, error = %e, "could not keep the oldest dead letter's time");
            }
        }
        match after {
            Some(id) if !page.after_found => Err(DlqError::CursorGone {
                route: route.to_string(),
                id,
            }),
            _ => Ok(page),
        }
    }

    /// The dead letter `id` of `route`.
    pub async fn show(&self, route: &str, id: Uuid) -> Result<Envelope, DlqError> {
        self.broker(route)
            .browse_window(&dead_letter_queue(route), Window::Id(id))
            .await?
            .messages
            .into_iter()
            .next()
            .ok_or_else(|| DlqError::NotFound {
                route: route.to_string(),
                id,
            })
    }

    /// Replay the dead letter `id` of `route` (see the module docs); the message published.
    pub async fn replay(&self, route: &str, id: Uuid) -> Result<Envelope, DlqError> {
        let copies = self.take(route, &[id]).await?;
        self.replay_taken(route, copies).await
    }

    /// Replay every dead letter of `route`, oldest first, in one pass (see the module docs);
    /// the ids replayed. Dead letters arriving meanwhile wait for the next replay.
    pub async fn replay_all(&self, route: &str) -> Result<Vec<Uuid>, DlqError> {
        use futures::StreamExt as _;
        let queue = dead_letter_queue(route);
        let broker = self.broker(route);
        let held = broker.queue_depth(&queue).await?;
        let mut replayed: Vec<Uuid> = Vec::new();
        if held == 0 {
            return Ok(replayed);
        }
        let partial = |error: DlqError, replayed: usize| DlqError::Partial {
            replayed,
            error: Box::new(error),
        };
        // One delivery in hand at a time: what is given back when the pass ends is at most
        // one message (a return counts toward a quorum queue's delivery limit on 4.x).
        let mut consumer = broker
            .consume(&queue, 1)
            .await
            .map_err(|e| partial(e.into(), 0))?;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..held {
            let Ok(Some(d)) = tokio::time::timeout(REPLAY_WAIT, consumer.next()).await else {
                break;
            };
            let id = d.envelope.id;
            if !seen.insert(id) {
                // A second copy left by an interrupted browse: the first was replayed.
                d.ack()
                    .await
                    .map_err(|e| partial(e.into(), replayed.len()))?;
                continue;
            }
            match self.replay_taken(route, vec![d]).await {
                Ok(_) => replayed.push(id),
                Err(e) => return Err(partial(e, replayed.len())),
            }
        }
        Ok(replayed)
    }

    /// Discard the dead letter `id` of `route`: journaled, then removed.
    pub async fn discard(&self, route: &str, id: Uuid) -> Result<(), DlqError> {
        let started = Instant::now();
        let copies = self.take(route, &[id]).await?;
        let Some(dead) = copies.first().map(|d| d.envelope.clone()) else {
            return Err(DlqError::NotFound {
                route: route.to_string(),
                id,
            });
        };
        let entry = JournalEntry::of(
            &dead,
            route,
            "discard",
            "discarded",
            started.elapsed(),
            Some(format!("removed from {}", dead_letter_queue(route))),
        );
        if let Err(e) = self.store.journal(&entry).await {
            // Dropped unsettled, the copies stay in the dead-letter queue.
            return Err(DlqError::Journal(e));
        }
        settle(copies, id, "discarded").await?;
        tracing::info!(route, message_id = %id, "dead letter discarded");
        Ok(())
    }

    /// Every copy of the listed ids, taken out of `route`'s dead-letter queue unsettled.
    async fn take(&self, route: &str, ids: &[Uuid]) -> Result<Vec<Delivery>, DlqError> {
        match self
            .broker(route)
            .take(&dead_letter_queue(route), ids)
            .await
        {
            Ok(taken) if !taken.is_empty() => Ok(taken),
            Ok(_) | Err(BrokerError::MessageNotFound { .. }) => Err(DlqError::NotFound {
                route: route.to_string(),
                id: ids.first().copied().unwrap_or_default(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Publish the first of `copies` (copies of one dead letter) to its route, journal the
    /// replay, then ack every copy.
    async fn replay_taken(
        &self,
        route: &str,
        mut copies: Vec<Delivery>,
    ) -> Result<Envelope, DlqError> {
        let started = Instant::now();
        let Some(dead) = copies.first().map(|d| &d.envelope) else {
            return Err(DlqError::Broker(BrokerError::MessageNotFound {
                queue: dead_letter_queue(route),
                ids: Vec::new(),
            }));
        };
        let replayed = replay_of(dead, Utc::now());
        let failed_at = dead
            .header(header::DEAD_LETTER_STEP)
            .map_or_else(String::new, |s| format!(" (dead-lettered at {s})"));
        if let Err(e) = self
            .broker(route)
            .publish(INGRESS_EXCHANGE, route, &replayed)
            .await
        {
            // Give them back to the dead-letter queue.
            for d in copies.drain(..) {
                let _ = d.nack(true).await;
            }
            return Err(e.into());
        }
        let entry = JournalEntry::of(
            &replayed,
            route,
            "replay",
            "replayed",
            started.elapsed(),
            Some(format!(
                "from {} to {}{failed_at}",
                dead_letter_queue(route),
                crate::broker::work_queue(route)
            )),
        );
        // The replay has happened: a journal failure must not leave the dead letter behind to
        // be replayed again (the journal is a record, not the messages).
        if let Err(e) = self.store.journal(&entry).await {
            tracing::warn!(route, message_id = %replayed.id, error = %e, "could not journal the replay");
        }
        settle(copies, replayed.id, "replayed").await?;
        tracing::info!(route, message_id = %replayed.id, correlation_id = %replayed.correlation_id, "dead letter replayed");
        Ok(replayed)
    }
}

/// Ack every copy of dead letter `id`.
async fn settle(copies: Vec<Delivery>, id: Uuid, done: &'static str) -> Result<(), DlqError> {
    let mut failed = None;
    for d in copies {
        if let Err(error) = d.ack().await {
            failed.get_or_insert(error);
        }
    }
    match failed {
        None => Ok(()),
        Some(error) => Err(DlqError::NotRemoved { id, done, error }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{Broker, Topology, work_queue};

    fn dead(route: &str, n: u32) -> Envelope {
        let mut e = Envelope::json(serde_json::json!({"n": n}));
        e.correlation_id = Uuid::now_v7();
        e.attempt = 3;
        for (k, v) in [
            (header::DEAD_LETTER_REASON, "sink.deliver answered HTTP 503"),
            (header::DEAD_LETTER_STEP, "steps[1].to"),
            (header::FIRST_FAILURE, "2026-11-23T10:00:00Z"),
            (header::LAST_FAILURE, "2026-11-23T10:00:01Z"),
            (header::REPLY_TO, "knut.reply.gone"),
            (ATTEMPTS, "3"),
            (DEAD_LETTER_ROUTE, route),
            (LAST_ERROR, "HTTP 503"),
            ("unit", "Skolenhet 7"),
        ] {
            e.headers.insert(k.into(), v.into());
        }
        e
    }

    async fn setup(route: &str) -> (Arc<EmbeddedBroker>, DeadLetters, Store) {
        let broker = Arc::new(EmbeddedBroker::new());
        broker
            .declare(&Topology::single(route))
            .await
            .expect("declare");
        let store = Store::memory().await.expect("store");
        let dl = DeadLetters::new(broker.clone(), store.clone());
        (broker, dl, store)
    }

    async fn listed(dl: &DeadLetters) -> Vec<Uuid> {
        let all = dl.list("r").await.expect("list");
        all.iter().map(|e| e.id).collect()
    }

    /// The overview's oldest age: the first noted time is kept, the head's last failure
    /// replaces it once a page from the head is read, and an empty queue forgets it.
    #[tokio::test]
    async fn the_oldest_age_is_noted_then_read_from_the_head_and_forgotten_when_empty() {
        let (broker, dl, store) = setup("r").await;
        assert_eq!(dl.since("r", 0).await, None);
        let noted = Utc::now() - chrono::TimeDelta::hours(3);
        store
            .note_dead_letters_since("r", noted)
            .await
            .expect("note");
        store
            .note_dead_letters_since("r", Utc::now())
            .await
            .expect("note again");
        let since = dl.since("r", 1).await.expect("noted");
        assert!(
            (since - noted).num_milliseconds().abs() < 1,
            "{since} {noted}"
        );
        broker.dead_letter("r", &dead("r", 1)).await.expect("park");
        broker.dead_letter("r", &dead("r", 2)).await.expect("park");
        dl.page("r", None, 1).await.expect("page");
        let head = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:01Z").unwrap();
        assert_eq!(dl.since("r", 2).await, Some(head.with_timezone(&Utc)));
        assert_eq!(dl.since("r", 0).await, None);
        assert_eq!(store.dead_letters_since("r").await.expect("read"), None);
    }

    #[test]
    fn replay_keeps_identity_and_drops_failure_headers() {
        let d = dead("r", 1);
        let at = Utc::now();
        let r = replay_of(&d, at);
        assert_eq!((r.id, r.correlation_id), (d.id, d.correlation_id));
        assert_eq!(r.causation_id, d.causation_id);
        assert_eq!(r.body, d.body);
        assert_eq!(r.created_at, d.created_at);
        assert_eq!(r.attempt, 1);
        let names: Vec<&str> = r.headers.keys().map(String::as_str).collect();
        assert_eq!(names, ["knut-replayed", "unit"]);
        assert_eq!(
            r.header(header::REPLAYED),
            Some(at.to_rfc3339_opts(SecondsFormat::Millis, true).as_str())
        );
    }

    #[tokio::test]
    async fn replay_publishes_to_the_route_journals_and_removes() {
        let (broker, dl, store) = setup("r").await;
        let (a, b) = (dead("r", 1), dead("r", 2));
        broker.dead_letter("r", &a).await.expect("park a");
        broker.dead_letter("r", &b).await.expect("park b");
        assert_eq!(listed(&dl).await, [a.id, b.id]);

        let replayed = dl.replay("r", b.id).await.expect("replay");
        assert_eq!(replayed.id, b.id);
        let left = listed(&dl).await;
        assert_eq!(left, [a.id], "exactly the replayed one left the queue");
        let mut work = broker.consume(&work_queue("r"), 1).await.expect("consume");
        let got = work.next().await.expect("the replay is on the work queue");
        assert_eq!(got.envelope.id, b.id);
        assert_eq!(got.envelope.correlation_id, b.correlation_id);
        assert!(got.envelope.header(header::DEAD_LETTER_REASON).is_none());
        assert!(got.envelope.header(header::REPLAYED).is_some());
        got.ack().await.expect("ack");

        let journal = store.journal_for(b.correlation_id).await.expect("journal");
        assert_eq!(journal.len(), 1);
        assert_eq!(
            (journal[0].step.as_str(), journal[0].outcome.as_str()),
            ("replay", "replayed")
        );
        assert_eq!(journal[0].message_id, b.id);
        assert!(
            journal[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("knut.dlq.r") && d.contains("steps[1].to")),
            "{:?}",
            journal[0].detail
        );
    }

    #[tokio::test]
    async fn unknown_id_is_not_found_and_changes_nothing() {
        let (broker, dl, _) = setup("r").await;
        let a = dead("r", 1);
        broker.dead_letter("r", &a).await.expect("park");
        let nobody = Uuid::now_v7();
        for err in [
            dl.replay("r", nobody)
                .await
                .map(|_| ())
                .expect_err("replay"),
            dl.discard("r", nobody).await.expect_err("discard"),
            dl.show("r", nobody).await.map(|_| ()).expect_err("show"),
        ] {
            assert!(
                matches!(err, DlqError::NotFound { id, .. } if id == nobody),
                "{err:?}"
            );
            assert!(err.to_string().contains("knut dlq list r"), "{err}");
        }
        assert_eq!(dl.list("r").await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn discard_journals_and_removes_every_copy() {
        let (broker, dl, store) = setup("r").await;
        let a = dead("r", 1);
        let b = dead("r", 2);
        // Two copies of `a`, as an interrupted browse can leave behind.
        for m in [&a, &b, &a] {
            broker.dead_letter("r", m).await.expect("park");
        }
        dl.discard("r", a.id).await.expect("discard");
        let left = listed(&dl).await;
        assert_eq!(left, [b.id]);
        let journal = store.journal_for(a.correlation_id).await.expect("journal");
        assert_eq!(journal.len(), 1);
        assert_eq!(journal[0].outcome, "discarded");
        assert_eq!(
            broker.queue_depth(&work_queue("r")).await.expect("depth"),
            0
        );
    }

    #[tokio::test]
    async fn a_discard_that_cannot_be_journaled_does_not_happen() {
        let (broker, dl, store) = setup("r").await;
        let a = dead("r", 1);
        broker.dead_letter("r", &a).await.expect("park");
        store.close().await;
        let err = dl.discard("r", a.id).await.expect_err("no journal");
        assert!(matches!(err, DlqError::Journal(_)), "{err:?}");
        assert_eq!(dl.list("r").await.expect("list").len(), 1, "still parked");
    }

    #[tokio::test]
    async fn replay_all_replays_each_once_in_order() {
        let (broker, dl, _) = setup("r").await;
        let ms: Vec<Envelope> = (0..5).map(|n| dead("r", n)).collect();
        for m in &ms {
            broker.dead_letter("r", m).await.expect("park");
        }
        let ids = dl.replay_all("r").await.expect("replay all");
        assert_eq!(ids, ms.iter().map(|m| m.id).collect::<Vec<_>>());
        assert!(dl.list("r").await.expect("list").is_empty());
        let mut work = broker.consume(&work_queue("r"), 10).await.expect("consume");
        for m in &ms {
            let d = work.next().await.expect("replayed");
            assert_eq!(d.envelope.id, m.id);
            d.ack().await.expect("ack");
        }
        assert_eq!(
            broker.queue_depth(&work_queue("r")).await.expect("depth"),
            0
        );
    }
}
