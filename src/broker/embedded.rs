//! The embedded broker: Knutpunkt's broker semantics inside one process.
//!
//! Used when no `broker.url` is configured: for development, route tests and demos. It has
//! the same semantics as the RabbitMQ transport (the conformance suite proves it) but keeps
//! messages in memory only: it is not durable, and says so at start.
//!
//! The queues of an ordered route have a single active consumer, as on RabbitMQ: of the
//! consumers of such a queue only the first (in the order they came) is delivered to; when
//! it is gone — its stream and every delivery from it dropped or settled — the next takes
//! over. Within one process that is the guarantee an ordered route needs: one consumer per
//! partition at a time.
//!
//! `browse` and `take` work on a queue under its lock, so each is atomic here.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    Acker, Broker, BrokerError, Browsed, Consumer, Delivery, INGRESS_EXCHANGE, Topology, Window,
    dead_letter_queue, topic, work_queue,
};
use crate::core::envelope::{Body, Envelope};

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
    /// Numbers the consumers of single-active-consumer queues.
    consumers: AtomicU64,
}

#[derive(Default)]
struct Queue {
    ready: Mutex<VecDeque<(Envelope, bool)>>,
    notify: Notify,
    /// `Some` for a queue with a single active consumer: its consumers in the order they
    /// came; only the first is delivered to.
    single_active: Option<Mutex<VecDeque<u64>>>,
}

impl Queue {
    fn new(single_active: bool) -> Self {
        Queue {
            single_active: single_active.then(Mutex::default),
            ..Queue::default()
        }
    }

    fn push_back(&self, envelope: Envelope) {
        lock(&self.ready).push_back((envelope, false));
        self.wake();
    }

    fn push_front_redelivered(&self, envelope: Envelope) {
        lock(&self.ready).push_front((envelope, true));
        self.wake();
    }

    fn pop(&self) -> Option<(Envelope, bool)> {
        lock(&self.ready).pop_front()
    }

    /// Tell a waiting consumer there is a message. With a single active consumer every
    /// consumer is woken (the one woken must be the active one; the others wait again).
    fn wake(&self) {
        if self.single_active.is_some() {
            self.notify.notify_waiters();
        } else {
            self.notify.notify_one();
        }
    }
}

/// A consumer's place in the line of a single-active-consumer queue. It leaves the line
/// when the consumer's stream and every delivery from it are gone; the next takes over.
struct Turn {
    queue: Arc<Queue>,
    id: u64,
}

impl Turn {
    fn is_active(&self) -> bool {
        self.queue
            .single_active
            .as_ref()
            .is_none_or(|line| lock(line).front() == Some(&self.id))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(line) = &self.queue.single_active {
            lock(line).retain(|&id| id != self.id);
            self.queue.notify.notify_waiters();
        }
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

    /// Declare a queue; like RabbitMQ, refuse to redeclare it with other arguments.
    fn declare_queue(&self, name: &str, single_active: bool) -> Result<(), BrokerError> {
        let mut queues = self.inner.queues.write().unwrap_or_else(|e| e.into_inner());
        match queues.get(name) {
            Some(q) if q.single_active.is_some() != single_active => {
                Err(BrokerError::NotDeclared(format!(
                    "queue `{name}` as asked: it exists with other arguments \
                     (x-single-active-consumer); delete it once it is drained, or make the \
                     route's ordered_by match how it was declared"
                )))
            }
            Some(_) => Ok(()),
            None => {
                queues.insert(name.to_string(), Arc::new(Queue::new(single_active)));
                Ok(())
            }
        }
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
            let ordered = rq.partitions.is_some();
            self.declare_queue(&wq, ordered)?;
            self.declare_queue(&dead_letter_queue(&rq.route), false)?;
            for pq in rq.partition_queues() {
                self.declare_queue(&pq, true)?;
            }
            self.bind(INGRESS_EXCHANGE, &rq.route, &wq);
            for (exchange, pattern) in &rq.bindings {
                self.bind(exchange, pattern, &wq);
            }
        }
        for o in &topology.outlets {
            self.declare_queue(&o.queue, false)?;
            for (exchange, pattern) in &o.bindings {
                self.bind(exchange, pattern, &o.queue);
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
        let turn = Arc::new(Turn {
            queue: queue.clone(),
            id: inner.consumers.fetch_add(1, Ordering::Relaxed),
        });
        if let Some(line) = &queue.single_active {
            lock(line).push_back(turn.id);
        }
        let stream = futures::stream::unfold(
            (queue, permits, inner, turn),
            |(queue, permits, inner, turn)| async move {
                let permit = permits.clone().acquire_owned().await.ok()?;
                let waker = queue.clone();
                loop {
                    let notified = waker.notify.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if inner.closed.load(Ordering::Acquire) {
                        return None;
                    }
                    if turn.is_active()
                        && let Some((envelope, redelivered)) = queue.pop()
                    {
                        let acker = EmbeddedAcker {
                            queue: queue.clone(),
                            envelope: Some(envelope.clone()),
                            _permit: Some(permit),
                            _turn: Some(turn.clone()),
                        };
                        let d = Delivery::new(envelope, redelivered, Box::new(acker));
                        return Some((d, (queue, permits, inner, turn)));
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

    async fn browse_window(&self, queue: &str, window: Window) -> Result<Browsed, BrokerError> {
        let queue = self.queue(queue)?;
        let ready = lock(&queue.ready);
        let mut selection = window.select();
        for (e, _) in ready.iter() {
            if selection.wants(e) {
                selection.keep(e.clone());
            }
        }
        Ok(selection.finish())
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
                    _turn: None,
                };
                Delivery::new(envelope, redelivered, Box::new(acker))
            })
            .collect())
    }

    async fn declare_reply_queue(&self) -> Result<String, BrokerError> {
        let name = format!("knut.reply.{}", uuid::Uuid::new_v4().simple());
        self.declare_queue(&name, false)?;
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

/// Settles an embedded delivery; an unsettled drop puts the message back (like a closed
/// channel). It holds its consumer's turn, so a single active consumer hands over only once
/// its deliveries are back in the queue or settled.
struct EmbeddedAcker {
    queue: Arc<Queue>,
    envelope: Option<Envelope>,
    /// The consumer's prefetch slot (none for a taken message).
    _permit: Option<OwnedSemaphorePermit>,
    /// The consumer's turn at a single-active-consumer queue (none for a taken message).
    _turn: Option<Arc<Turn>>,
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
