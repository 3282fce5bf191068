//! The message journal writer: one row per hop (route, step, outcome, duration,
//! correlation id — never a body), written in batches by a background task so the message
//! path never waits for it. If the store falls behind, rows are counted and dropped: the
//! journal is a record of messages, not the messages themselves.
//!
//! The hops: each step's outcome and duration, each adapter call (its operation, HTTP
//! status or error kind, duration: [`JournaledEffects`]), and each route's end, retry,
//! dead letter, replay and discard; under load a step's or a call's row is dropped before
//! a route's own. With a hop go the business keys its message carries
//! (`knut-key-*` headers, [`crate::core::keys`]), written once per key and correlation id.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::core::effects::{AdapterResponse, Effects, Hop, current_step};
use crate::core::envelope::Envelope;
use crate::core::error::{FailureKind, StepError};
use crate::core::keys;
use crate::store::{JournalEntry, JournalKey, Store};

/// Rows waiting to be written before new ones are dropped.
const CAPACITY: usize = 10_000;
/// Rows written in one transaction at most.
const BATCH: usize = 1024;
/// How long the writer lets rows gather after a batch shorter than [`BATCH`] before it takes
/// the next: a transaction (and a hand-over to the store's thread) per few rows cost more
/// than the rows (at 2,500 messages/s of a route writing five rows a message, 12,500 rows/s
/// become ~40 transactions of ~300 rows). A full batch is followed at once, so a backlog
/// drains at the store's speed. A crash loses at most this much more of the journal.
const GATHER: Duration = Duration::from_millis(25);
/// Room kept in the queue for the routes' own rows (end, retry, dead letter): a step's or an
/// adapter call's row is dropped (and counted) first, when no more than this is free.
const RESERVED_FOR_ROUTE_ROWS: usize = CAPACITY / 2;
/// (key, correlation id) pairs remembered as written, so that every hop of a case does not
/// write its keys again (forgotten all at once when full).
const KEYS_REMEMBERED: usize = 50_000;

/// The journal row of one hop of `m`, ending now (see [`JournalEntry::of`]).
pub fn entry(
    m: &Envelope,
    route: &str,
    step: &str,
    outcome: &str,
    took: Duration,
    detail: Option<String>,
) -> JournalEntry {
    JournalEntry::of(m, route, step, outcome, took, detail)
}

/// Business keys (name, value); a name may have more than one value (a split's outputs).
pub type Keys = BTreeSet<(String, String)>;

/// A row and the business keys its message carried.
pub(crate) struct Row {
    entry: JournalEntry,
    keys: Keys,
}

/// A handle to the journal writer.
#[derive(Clone)]
pub struct Journal {
    tx: Option<mpsc::Sender<Row>>,
}

impl Journal {
    /// Start the writer on `store`; it ends when every handle is dropped.
    pub fn start(store: Store) -> (Journal, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Row>(CAPACITY);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut written: HashSet<(String, String, Uuid)> = HashSet::new();
            loop {
                let taken = rx.recv_many(&mut batch, BATCH).await;
                if taken == 0 {
                    break;
                }
                let mut keys = Vec::new();
                let mut entries = Vec::with_capacity(batch.len());
                for row in batch.drain(..) {
                    for (name, value) in row.keys {
                        let seen = (name, value, row.entry.correlation_id);
                        if !written.contains(&seen) {
                            let (name, value, correlation_id) = seen.clone();
                            keys.push((
                                JournalKey {
                                    name,
                                    value,
                                    correlation_id,
                                },
                                row.entry.at,
                            ));
                            if written.len() >= KEYS_REMEMBERED {
                                written.clear();
                            }
                            written.insert(seen);
                        }
                    }
                    entries.push(row.entry);
                }
                if let Err(e) = store.journal_many(&entries).await {
                    tracing::warn!(error = %e, rows = entries.len(), "journal write failed");
                    metrics::counter!("knut_journal_dropped_total").increment(entries.len() as u64);
                }
                if let Err(e) = store.journal_keys_many(&keys).await {
                    tracing::warn!(error = %e, keys = keys.len(), "journal keys write failed");
                    for (k, _) in keys {
                        written.remove(&(k.name, k.value, k.correlation_id));
                    }
                }
                if taken < BATCH {
                    tokio::time::sleep(GATHER).await;
                }
            }
        });
        (Journal { tx: Some(tx) }, task)
    }

    /// A journal that writes nothing (`knut test`).
    pub fn disabled() -> Journal {
        Journal { tx: None }
    }

    /// A journal under load (for tests): its queue already half taken, so that a step's or
    /// an adapter call's row is dropped and only the routes' own rows get in; the rows in
    /// it as (step, keys) when `rows` is called on the receiver.
    #[cfg(test)]
    pub(crate) fn under_load() -> (Journal, mpsc::Receiver<Row>) {
        let (tx, rx) = mpsc::channel::<Row>(CAPACITY);
        let filler = Envelope::json(serde_json::json!({}));
        let journal = Journal { tx: Some(tx) };
        for _ in 0..(CAPACITY - RESERVED_FOR_ROUTE_ROWS) {
            journal.record(&filler, "other", "end", "ok", Duration::ZERO, None);
        }
        (journal, rx)
    }

    /// Record one hop.
    pub fn record(
        &self,
        m: &Envelope,
        route: &str,
        step: &str,
        outcome: &str,
        took: Duration,
        detail: Option<String>,
    ) {
        self.record_with_keys(m, route, step, outcome, took, detail, Keys::new());
    }

    /// Record one hop of a route (its end, retry, dead letter) with `more` business keys
    /// than `m` carries: those of the route's outputs, so that a key a `set` of this route
    /// added is noted with the route's own row (which keeps its room in the queue) and not
    /// only with its steps' rows (dropped first under load).
    #[allow(clippy::too_many_arguments)]
    pub fn record_with_keys(
        &self,
        m: &Envelope,
        route: &str,
        step: &str,
        outcome: &str,
        took: Duration,
        detail: Option<String>,
        more: Keys,
    ) {
        let Some(tx) = &self.tx else { return };
        let mut keys: Keys = keys::of(m).into_iter().collect();
        keys.extend(more);
        let row = Row {
            entry: entry(m, route, step, outcome, took, detail),
            keys,
        };
        if tx.try_send(row).is_err() {
            metrics::counter!("knut_journal_dropped_total").increment(1);
        }
    }

    /// Record one hop of a step or an adapter call of `route`. Under load these go first:
    /// with no more than half the queue free the row is dropped (and counted), so that the
    /// routes' own rows (end, retry, dead letter) still find room.
    pub fn record_hop(&self, route: &str, hop: Hop<'_>) {
        let Some(tx) = &self.tx else { return };
        if tx.capacity() <= RESERVED_FOR_ROUTE_ROWS {
            metrics::counter!("knut_journal_dropped_total").increment(1);
            return;
        }
        let row = Row {
            entry: JournalEntry {
                at: chrono::Utc::now(),
                message_id: hop.message_id,
                correlation_id: hop.correlation_id,
                route: route.to_string(),
                step: hop.step.to_string(),
                outcome: hop.outcome.to_string(),
                duration_us: i64::try_from(hop.took.as_micros()).unwrap_or(i64::MAX),
                detail: hop
                    .detail
                    .map(|d| crate::core::redact::mask(&d).into_owned()),
            },
            keys: hop
                .keys_of
                .map(|m| keys::of(m).into_iter().collect())
                .unwrap_or_default(),
        };
        if tx.try_send(row).is_err() {
            metrics::counter!("knut_journal_dropped_total").increment(1);
        }
    }
}

/// A route's effects that journal each step's hop and each adapter call (operation, HTTP
/// status or error kind, duration; never the URL, a query or a body) in the route's name.
pub struct JournaledEffects {
    inner: Arc<dyn Effects>,
    journal: Journal,
    route: Arc<str>,
}

impl JournaledEffects {
    /// `inner`'s effects for `route`, journaled in `journal`.
    pub fn new(inner: Arc<dyn Effects>, journal: Journal, route: Arc<str>) -> Self {
        JournaledEffects {
            inner,
            journal,
            route,
        }
    }
}

#[async_trait]
impl Effects for JournaledEffects {
    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), StepError> {
        self.inner.publish(exchange, key, envelope).await
    }

    async fn call(
        &self,
        adapter: &str,
        operation: &str,
        envelope: &Envelope,
    ) -> Result<AdapterResponse, StepError> {
        let started = Instant::now();
        let result = self.inner.call(adapter, operation, envelope).await;
        let step = match current_step() {
            Some(path) => format!("{path} {adapter}.{operation}"),
            None => format!("{adapter}.{operation}"),
        };
        let (outcome, detail) = match &result {
            Ok(r) => ("ok", format!("HTTP {}", r.status)),
            Err(e) if e.kind == FailureKind::Transient => ("failed", "transient".to_string()),
            Err(_) => ("failed", "permanent".to_string()),
        };
        self.journal.record_hop(
            &self.route,
            Hop {
                message_id: envelope.id,
                correlation_id: envelope.correlation_id,
                keys_of: Some(envelope),
                step: &step,
                outcome,
                took: started.elapsed(),
                detail: Some(detail),
            },
        );
        result
    }

    async fn write_file(&self, dir: &str, name: &str, contents: Bytes) -> Result<(), StepError> {
        self.inner.write_file(dir, name, contents).await
    }

    async fn reply(&self, reply_to: &str, envelope: &Envelope) -> Result<(), StepError> {
        self.inner.reply(reply_to, envelope).await
    }

    fn hop(&self, hop: Hop<'_>) {
        self.journal.record_hop(&self.route, hop);
    }
}

/// The rows waiting in a test journal's queue (see [`Journal::under_load`]): step and keys.
#[cfg(test)]
pub(crate) fn rows(rx: &mut mpsc::Receiver<Row>) -> Vec<(String, Keys)> {
    let mut out = Vec::new();
    while let Ok(row) = rx.try_recv() {
        out.push((row.entry.step, row.keys));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_recorded_hop_is_written_in_batches() {
        let store = Store::memory().await.unwrap();
        let (journal, task) = Journal::start(store.clone());
        let m = Envelope::json(serde_json::json!({}));
        for i in 0..600 {
            journal.record(
                &m,
                "r",
                &format!("steps[{i}]"),
                "ok",
                Duration::from_micros(7),
                None,
            );
        }
        drop(journal);
        task.await.unwrap();
        let rows = store.journal_for(m.correlation_id).await.unwrap();
        assert_eq!(rows.len(), 600);
        assert_eq!(rows[599].step, "steps[599]");
        assert!(rows.iter().all(|r| r.route == "r" && r.duration_us == 7));
    }

    /// A route's steps and adapter calls are journaled as hops (path, operation, HTTP
    /// status or error kind), with the business keys of what each step gave; a key is
    /// noted once per correlation id however many hops carry it.
    #[tokio::test]
    async fn steps_and_adapter_calls_are_journaled_with_their_keys() {
        use crate::core::effects::AdapterResponse;
        use crate::core::envelope::Body;
        use crate::route::model::StepSpec;
        use crate::step::{Context, Pipeline};

        /// Answers `casedata.get-errand` with 200, anything else with a 503.
        struct Sandbox;
        #[async_trait]
        impl Effects for Sandbox {
            async fn publish(&self, _: &str, _: &str, _: &Envelope) -> Result<(), StepError> {
                Ok(())
            }
            async fn call(
                &self,
                _: &str,
                operation: &str,
                _: &Envelope,
            ) -> Result<AdapterResponse, StepError> {
                match operation {
                    "get-errand" => Ok(AdapterResponse {
                        status: 200,
                        content_type: "application/json".into(),
                        body: Body::Json(serde_json::json!({"errandNumber": "PRH-9"})),
                    }),
                    _ => Err(StepError::transient("HTTP 503")),
                }
            }
            async fn write_file(&self, _: &str, _: &str, _: Bytes) -> Result<(), StepError> {
                Ok(())
            }
            async fn reply(&self, _: &str, _: &Envelope) -> Result<(), StepError> {
                Ok(())
            }
        }

        let store = Store::memory().await.unwrap();
        let (journal, task) = Journal::start(store.clone());
        let steps: Vec<StepSpec> = serde_saphyr::from_str(
            "- enrich: { adapter: casedata, operation: get-errand, into: errand }\n\
             - set: { headers: { knut-key-errandNumber: .errand.errandNumber } }\n\
             - filter: { jq: 'true' }\n\
             - enrich: { adapter: casedata, operation: down, into: x }\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let resources = crate::resources::Resources::load(dir.path()).unwrap();
        let pipeline = Pipeline::build(&steps, "steps", &resources).unwrap();
        let cx = Context {
            route: Arc::from("r"),
            effects: Arc::new(JournaledEffects::new(
                Arc::new(Sandbox),
                journal.clone(),
                Arc::from("r"),
            )),
            store: store.clone(),
        };
        let m = Envelope::json(serde_json::json!({}));
        let failed = pipeline.run_from(0, m.clone(), &cx).await.unwrap_err();
        assert_eq!(failed.step, "steps[3].enrich");
        drop((journal, cx));
        task.await.unwrap();
        let rows: Vec<(String, String, Option<String>)> = store
            .journal_for(m.correlation_id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.step, e.outcome, e.detail))
            .collect();
        let row = |step: &str, outcome: &str, detail: Option<&str>| {
            (
                step.to_string(),
                outcome.to_string(),
                detail.map(str::to_string),
            )
        };
        assert_eq!(
            rows,
            [
                row(
                    "steps[0].enrich casedata.get-errand",
                    "ok",
                    Some("HTTP 200")
                ),
                row("steps[0].enrich", "ok", None),
                row("steps[1].set", "ok", None),
                row("steps[2].filter", "ok", None),
                row("steps[3].enrich casedata.down", "failed", Some("transient")),
                row("steps[3].enrich", "failed", Some("transient")),
            ]
        );
        let keys = store.journal_keys_of(&[m.correlation_id]).await.unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(
            (keys[0].name.as_str(), keys[0].value.as_str()),
            ("errandNumber", "PRH-9")
        );
    }

    /// When the writer falls behind, a step's row is dropped before the queue is full: the
    /// routes' own rows keep half of it.
    #[tokio::test]
    async fn step_rows_give_way_to_route_rows_under_load() {
        let (tx, mut rx) = mpsc::channel::<Row>(CAPACITY);
        let journal = Journal { tx: Some(tx) };
        let m = Envelope::json(serde_json::json!({}));
        let hop = || Hop {
            message_id: m.id,
            correlation_id: m.correlation_id,
            keys_of: None,
            step: "steps[0].transform",
            outcome: "ok",
            took: Duration::ZERO,
            detail: None,
        };
        for _ in 0..CAPACITY {
            journal.record_hop("r", hop());
        }
        for _ in 0..CAPACITY {
            journal.record(&m, "r", "end", "ok", Duration::ZERO, None);
        }
        let mut rows = Vec::new();
        rx.recv_many(&mut rows, 2 * CAPACITY).await;
        let ends = rows.iter().filter(|r| r.entry.step == "end").count();
        assert_eq!(rows.len() - ends, CAPACITY - RESERVED_FOR_ROUTE_ROWS);
        assert_eq!(ends, RESERVED_FOR_ROUTE_ROWS);
    }
}
