//! The message journal writer: one row per hop (route, step, outcome, duration,
//! correlation id — never a body), written in batches by a background task so the message
//! path never waits for it. If the store falls behind, rows are counted and dropped: the
//! journal is a record of messages, not the messages themselves.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::core::envelope::Envelope;
use crate::store::{JournalEntry, Store};

/// Rows waiting to be written before new ones are dropped.
const CAPACITY: usize = 10_000;
/// Rows written in one transaction at most.
const BATCH: usize = 256;

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

/// A handle to the journal writer.
#[derive(Clone)]
pub struct Journal {
    tx: Option<mpsc::Sender<JournalEntry>>,
}

impl Journal {
    /// Start the writer on `store`; it ends when every handle is dropped.
    pub fn start(store: Store) -> (Journal, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<JournalEntry>(CAPACITY);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                if let Err(e) = store.journal_many(&batch).await {
                    tracing::warn!(error = %e, rows = batch.len(), "journal write failed");
                }
                batch.clear();
            }
        });
        (Journal { tx: Some(tx) }, task)
    }

    /// A journal that writes nothing (`knut test`).
    pub fn disabled() -> Journal {
        Journal { tx: None }
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
        let Some(tx) = &self.tx else { return };
        if tx
            .try_send(entry(m, route, step, outcome, took, detail))
            .is_err()
        {
            metrics::counter!("knut_journal_dropped_total").increment(1);
        }
    }
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
}
