//! The embedded broker: Knutpunkt's broker semantics inside one process.
//!
//! Used when no `broker.url` is configured: for development, route tests and demos. It has
//! the same semantics as the RabbitMQ transport (the conformance suite proves it) but keeps
//! messages in memory only: it is not durable, and says so at start.
//! `browse` and `take` work on a queue under its lock, so each is atomic here.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    Acker, Broker, BrokerError, Consumer, Delivery, INGRESS_EXCHANGE, Topology, dead_letter_queue,
    topic, work_queue,
};
use crate::envelope::{Body, Envelope};

/// An in-process broker.
#[derive(Clone, Default)]
pub struct EmbeddedBroker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// exchange → set of (pattern, queue)
    exchanges: RwLock<HashMap<String, BTreeSet<(String, String)>>>,
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    closed: AtomicBool,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct Queue {
    ready: Mutex<VecDeque<(Envelope, bool)>>,
    notify: Notify,
}

impl Queue {
    fn push_back(&self, envelope: Envelope) {
        lock(&self.ready).push_back((envelope, false));
        self.notify.notify_one();
    }

    fn push_front_redelivered(&self, envelope: Envelope) {
        lock(&self.ready).push_front((envelope, true));
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<(Envelope, bool)> {
        lock(&self.ready).pop_front()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a VecDeque half-modified; go on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EmbeddedBroker {
    /// A new, empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BrokerError::Closed);
        }
        self.inner
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::NotDeclared(format!("queue {name}")))
    }

    fn declare_queue(&self, name: &str) {
        self.inner
            .queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default();
    }

    fn bind(&self, exchange: &str, pattern: &str, queue: &str) {
        self.inner
            .exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(exchange.to_string())
            .or_default()
            .insert((pattern.to_string(), queue.to_string()));
    }
}

/// The message as it would be on the wire: the body as bytes.
fn wire(envelope: &Envelope) -> Envelope {
    let mut e = envelope.clone();
    if let Body::Json(_) = e.body {
        e.body = Body::Bytes(envelope.body.to_bytes());
    }
    e
}

#[async_trait]
impl Broker for EmbeddedBroker {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn declare(&self, topology: &Topology) -> Result<(), BrokerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BrokerError::Closed);
        }
        {
            let mut ex = self
                .inner
                .exchanges
                .write()
                .unwrap_or_else(|e| e.into_inner());
            ex.entry(INGRESS_EXCHANGE.to_string()).or_default();
            for name in &topology.exchanges {
                ex.entry(name.clone()).or_default();
            }
        }
        for rq in &topology.routes {
            let wq = work_queue(&rq.route);
            self.declare_queue(&wq);
            self.declare_queue(&dead_letter_queue(&rq.route));
            self.bind(INGRESS_EXCHANGE, &rq.route, &wq);
            for (exchange, pattern) in &rq.bindings {
                self.bind(exchange, pattern, &wq);
            }
        }
        Ok(())
    }

    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), BrokerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BrokerError::Closed);
        }
        let targets: BTreeSet<String> = {
            let ex = self
                .inner
                .exchanges
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let bindings = ex
                .get(exchange)
                .ok_or_else(|| BrokerError::NotDeclared(format!("exchange {exchange}")))?;
            bindings
                .iter()
                .filter(|(pattern, _)| topic::matches(pattern, key))
                .map(|(_, q)| q.clone())
                .collect()
        };
        if targets.is_empty() {
            return Err(BrokerError::Unroutable {
                exchange: exchange.to_string(),
                key: key.to_string(),
            });
        }
        let msg = wire(envelope);
        for q in &targets {
            self.queue(q)?.push_back(msg.clone());
        }
        Ok(())
    }

    async fn send_to_queue(&self, queue: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        self.queue(queue)?.push_back(wire(envelope));
        Ok(())
    }

    async fn retry_later(
        &self,
        route: &str,
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        let queue = self.queue(&work_queue(route))?;
        let msg = wire(envelope);
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => queue.push_back(msg),
                _ = shutdown.cancelled() => {}
            }
        });
        Ok(())
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BrokerError> {
        let queue = self.queue(queue)?;
        let permits = Arc::new(Semaphore::new(usize::from(prefetch.max(1))));
        let inner = self.inner.clone();
        let stream = futures::stream::unfold(
            (queue, permits, inner),
            |(queue, permits, inner)| async move {
                let permit = permits.clone().acquire_owned().await.ok()?;
                let waker = queue.clone();
                loop {
                    let notified = waker.notify.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if inner.closed.load(Ordering::Acquire) {
                        return None;
                    }
                    if let Some((envelope, redelivered)) = queue.pop() {
                        let acker = EmbeddedAcker {
                            queue: queue.clone(),
                            envelope: Some(envelope.clone()),
                            _permit: Some(permit),
                        };
                        let d = Delivery::new(envelope, redelivered, Box::new(acker));
                        return Some((d, (queue, permits, inner)));
                    }
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = inner.shutdown.cancelled() => return None,
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    async fn browse(&self, queue: &str) -> Result<Vec<Envelope>, BrokerError> {
        let queue = self.queue(queue)?;
        let ready = lock(&queue.ready);
        Ok(ready.iter().map(|(e, _)| e.clone()).collect())
    }

    async fn take(&self, name: &str, ids: &[Uuid]) -> Result<Vec<Delivery>, BrokerError> {
        let queue = self.queue(name)?;
        let mut taken = Vec::new();
        lock(&queue.ready).retain(|(e, redelivered)| {
            let asked = ids.contains(&e.id);
            if asked {
                taken.push((e.clone(), *redelivered));
            }
            !asked
        });
        if taken.is_empty() {
            return Err(BrokerError::MessageNotFound {
                queue: name.to_string(),
                ids: ids.to_vec(),
            });
        }
        Ok(taken
            .into_iter()
            .map(|(envelope, redelivered)| {
                let acker = EmbeddedAcker {
                    queue: queue.clone(),
                    envelope: Some(envelope.clone()),
                    _permit: None,
                };
                Delivery::new(envelope, redelivered, Box::new(acker))
            })
            .collect())
    }

    async fn declare_reply_queue(&self) -> Result<String, BrokerError> {
        let name = format!("knut.reply.{}", uuid::Uuid::new_v4().simple());
        self.declare_queue(&name);
        Ok(name)
    }

    async fn queue_depth(&self, queue: &str) -> Result<u64, BrokerError> {
        Ok(lock(&self.queue(queue)?.ready).len() as u64)
    }

    fn is_connected(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
    }

    async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.shutdown.cancel();
    }
}

/// Settles an embedded delivery; an unsettled drop puts the message back (like a closed channel).
struct EmbeddedAcker {
    queue: Arc<Queue>,
    envelope: Option<Envelope>,
    /// The consumer's prefetch slot (none for a taken message).
    _permit: Option<OwnedSemaphorePermit>,
}

#[async_trait]
impl Acker for EmbeddedAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        self.envelope = None;
        Ok(())
    }

    async fn nack(mut self: Box<Self>, requeue: bool) -> Result<(), BrokerError> {
        if let Some(e) = self.envelope.take()
            && requeue
        {
            self.queue.push_front_redelivered(e);
        }
        Ok(())
    }
}

impl Drop for EmbeddedAcker {
    fn drop(&mut self) {
        if let Some(e) = self.envelope.take() {
            self.queue.push_front_redelivered(e);
        }
    }
}

#[cfg(test)]
mod tests {
    crate::broker_conformance_suite!(async { super::EmbeddedBroker::new() });
}
