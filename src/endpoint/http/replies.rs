//! Synchronous callers: a route with a `reply` step makes its caller wait. The request's
//! message carries `knut-reply-to` (this process's reply queue) and the caller waits on a
//! registration keyed by its correlation id until the `reply` step's answer arrives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::broker::{BrokerError, SharedBroker};
use crate::core::envelope::Envelope;
use crate::core::envelope::header::REPLY_FOR;

type Pending = Arc<Mutex<HashMap<Uuid, oneshot::Sender<Envelope>>>>;

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<Uuid, oneshot::Sender<Envelope>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for `reply` answers: owns this process's reply queue, consumes it in a task and
/// hands each answer to the request waiting for it (matched by `knut-reply-for`, the
/// correlation id). Answers nobody waits for (any more) are acked and logged (debug).
#[derive(Clone)]
pub struct Replies {
    queue: Arc<str>,
    pending: Pending,
}

impl Replies {
    /// Declare a reply queue on `broker` and start consuming it until `shutdown`.
    pub async fn start(
        broker: SharedBroker,
        shutdown: CancellationToken,
    ) -> Result<Replies, BrokerError> {
        let queue = broker.declare_reply_queue().await?;
        let mut consumer = broker.consume(&queue, 256).await?;
        let pending: Pending = Arc::default();
        let task_pending = pending.clone();
        tokio::spawn(async move {
            loop {
                let delivery = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    d = consumer.next() => match d {
                        Some(d) => d,
                        None => break,
                    },
                };
                let (answer, acker) = delivery.into_parts();
                let waiter = answer
                    .header(REPLY_FOR)
                    .and_then(|v| Uuid::parse_str(v).ok())
                    .and_then(|id| lock(&task_pending).remove(&id));
                match waiter {
                    Some(tx) => {
                        if tx.send(answer).is_err() {
                            tracing::debug!("a reply arrived after its caller stopped waiting");
                        }
                    }
                    None => tracing::debug!("a reply nobody waits for was dropped"),
                }
                if let Err(error) = acker.ack().await {
                    tracing::warn!(%error, "could not ack a reply");
                }
            }
            // Waiting requests learn that no answer will come.
            lock(&task_pending).clear();
        });
        Ok(Replies {
            queue: queue.into(),
            pending,
        })
    }

    /// The name of the reply queue (the value of `knut-reply-to`).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Wait for the answer to correlation id `id`; `None` when someone already waits for it.
    /// Whether no caller waits (for tests).
    #[cfg(test)]
    pub(super) fn is_idle(&self) -> bool {
        lock(&self.pending).is_empty()
    }

    pub(super) fn register(&self, id: Uuid) -> Option<Waiter> {
        let (tx, rx) = oneshot::channel();
        let mut pending = lock(&self.pending);
        if pending.contains_key(&id) {
            return None;
        }
        pending.insert(id, tx);
        Some(Waiter {
            id,
            rx: Some(rx),
            pending: self.pending.clone(),
        })
    }
}

/// A registered wait; dropping it forgets the registration.
pub(super) struct Waiter {
    id: Uuid,
    pub(super) rx: Option<oneshot::Receiver<Envelope>>,
    pending: Pending,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.id);
    }
}
