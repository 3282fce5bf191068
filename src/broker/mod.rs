//! The message broker: the `Broker` trait, the topology it is given, and its implementations.
//!
//! Every broker has the same semantics (proved by the conformance suite in `conformance`):
//! - durable topic exchanges; a publish is done only when the broker has confirmed it, and a
//!   message no queue is bound for is an error (`Unroutable`), never silently dropped;
//! - one work queue per route (`knut.route.<id>`), bound to its exchanges and to the ingress
//!   exchange `knut.ingress` with the route id as key;
//! - deliveries are acked explicitly; a delivery dropped without ack or nack is redelivered;
//! - prefetch bounds the unacked deliveries of a consumer (back-pressure);
//! - `retry_later` redelivers a message to a route's work queue after a delay held by the
//!   broker, never by the worker; `dead_letter` parks it in `knut.dlq.<id>`;
//! - an ordered route (`ordered_by`) also has partition queues `knut.route.<id>.p<k>`; its
//!   work queue and partition queues have a *single active consumer*: of several consumers
//!   only the first delivers, the next takes over when it is gone (failover, in order).
//! - `browse` lists the ready messages of a queue without removing or reordering them, and
//!   `take` hands out the messages with given ids as deliveries, so that the caller can
//!   republish one (a dead-letter replay) and only then ack it: a crash in between leaves it
//!   in its queue (at-least-once, never lost).

pub mod amqp;
pub mod conformance;
pub mod embedded;
pub mod topic;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use uuid::Uuid;

use crate::core::envelope::Envelope;

/// The exchange every route's work queue is bound to with its route id as routing key:
/// HTTP, file and timer endpoints, `knut send` and dead-letter replay publish here.
pub const INGRESS_EXCHANGE: &str = "knut.ingress";

/// The work queue of a route.
pub fn work_queue(route: &str) -> String {
    format!("knut.route.{route}")
}

/// The queue of partition `k` of an ordered route.
pub fn partition_queue(route: &str, k: u16) -> String {
    format!("knut.route.{route}.p{k}")
}

/// The dead-letter (parking-lot) queue of a route.
pub fn dead_letter_queue(route: &str) -> String {
    format!("knut.dlq.{route}")
}

/// A failure of the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No queue is bound for this exchange and routing key: the message would be lost.
    #[error("no queue is bound to exchange `{exchange}` for routing key `{key}`")]
    Unroutable {
        /// The exchange.
        exchange: String,
        /// The routing key.
        key: String,
    },
    /// The exchange or queue has not been declared.
    #[error("`{0}` is not declared on the broker")]
    NotDeclared(String),
    /// The broker refused the message (negative confirm).
    #[error("the broker did not confirm the publish: {0}")]
    NotConfirmed(String),
    /// The connection is down; the operation may succeed later.
    #[error("broker connection: {0}")]
    Connection(String),
    /// The broker is shutting down.
    #[error("the broker is closed")]
    Closed,
    /// None of the messages asked for is ready in the queue.
    #[error("no message with id {} is waiting in `{queue}`", ids_text(.ids))]
    MessageNotFound {
        /// The queue.
        queue: String,
        /// The message ids asked for.
        ids: Vec<Uuid>,
    },
}

fn ids_text(ids: &[Uuid]) -> String {
    match ids {
        [one] => one.to_string(),
        many => format!(
            "among the {} asked for ({}…)",
            many.len(),
            many.first().map(Uuid::to_string).unwrap_or_default()
        ),
    }
}

impl BrokerError {
    /// May the same operation succeed if tried again later?
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BrokerError::Connection(_) | BrokerError::NotConfirmed(_) | BrokerError::Closed
        )
    }
}

/// The queues and exchanges of a set of routes.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Topic exchanges to declare (besides the ingress exchange).
    pub exchanges: Vec<String>,
    /// One entry per route.
    pub routes: Vec<RouteQueue>,
    /// Queues a system outside Knutpunkt reads (outlets): declared and bound, never consumed.
    pub outlets: Vec<OutletQueue>,
}

/// An outlet's queue: named by its owner, bound to an exchange, read outside Knutpunkt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutletQueue {
    /// The queue name.
    pub queue: String,
    /// Its type; `None`: the broker's configured type.
    pub queue_type: Option<amqp::QueueType>,
    /// (exchange, routing key pattern) pairs bound to the queue.
    pub bindings: Vec<(String, String)>,
}

impl Topology {
    /// The topology of one route with no bindings besides the ingress one.
    pub fn single(route: &str) -> Topology {
        Topology {
            exchanges: Vec::new(),
            outlets: Vec::new(),
            routes: vec![RouteQueue {
                route: route.to_string(),
                bindings: Vec::new(),
                partitions: None,
            }],
        }
    }
}

/// A route's work queue and its bindings.
#[derive(Debug, Clone)]
pub struct RouteQueue {
    /// The route id.
    pub route: String,
    /// (exchange, routing key pattern) pairs bound to the work queue, besides the ingress binding.
    pub bindings: Vec<(String, String)>,
    /// The partitions of an ordered route, `None` for a route without `ordered_by`. The work
    /// queue and the partition queues of an ordered route have a single active consumer.
    pub partitions: Option<u16>,
}

impl RouteQueue {
    /// The partition queues of an ordered route, in partition order (none when unordered).
    pub fn partition_queues(&self) -> Vec<String> {
        partition_queues(&self.route, self.partitions)
    }
}

/// The partition queues of a route with `partitions` (none for `None`), in partition order.
pub fn partition_queues(route: &str, partitions: Option<u16>) -> Vec<String> {
    (0..partitions.unwrap_or(0))
        .map(|k| partition_queue(route, k))
        .collect()
}

/// Settles a delivery.
#[async_trait]
pub trait Acker: Send {
    /// The delivery is done: remove it from the queue.
    async fn ack(self: Box<Self>) -> Result<(), BrokerError>;
    /// The delivery is not done: put it back (`requeue`) or drop it.
    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BrokerError>;
    /// Can the delivery still be settled? False once its channel is gone: the broker has
    /// then given the message back to its queue (and maybe to another consumer).
    fn is_live(&self) -> bool {
        true
    }
    /// Give the delivery back *at the head of its queue*, without settling it: the broker
    /// returns it when the consumer's channel closes, so drop the consumer soon after. (A
    /// nack with requeue puts it at the back of a RabbitMQ 3.10 quorum queue, behind the
    /// messages waiting: not what an ordered route may do.)
    async fn release(self: Box<Self>) {
        let _ = self.nack(true).await;
    }
}

/// Which messages of a browse are kept (see [`Broker::browse_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every message.
    All,
    /// At most `limit` messages: from the head, or from the one after the message `after`.
    Page {
        /// The last message of the previous page, if any.
        after: Option<Uuid>,
        /// How many to keep.
        limit: usize,
    },
    /// The message with this id (its first copy).
    Id(Uuid),
}

/// What a browse kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Browsed {
    /// The kept messages, in queue order.
    pub messages: Vec<Envelope>,
    /// Messages follow the kept ones (a page filled up before the queue's end).
    pub more: bool,
    /// For a page with `after`: whether that message was in the queue (it may have been
    /// replayed or discarded meanwhile; then nothing is kept).
    pub after_found: bool,
}

impl Window {
    /// A fresh selection over one pass of a queue.
    pub fn select(self) -> Selection {
        Selection {
            window: self,
            started: !matches!(self, Window::Page { after: Some(_), .. }),
            browsed: Browsed::default(),
            ids: std::collections::HashSet::new(),
        }
    }
}

/// One pass's choice of messages for a [`Window`]: offer each message in queue order.
/// A message id met again in the pass (a copy an interrupted rotation left) counts once,
/// at its first place, so a page that ends on an id always leads past it.
#[derive(Debug)]
pub struct Selection {
    window: Window,
    started: bool,
    browsed: Browsed,
    ids: std::collections::HashSet<Uuid>,
}

impl Selection {
    /// True when `e` is kept; a kept message is the caller's to add with [`Selection::keep`].
    pub fn wants(&mut self, e: &Envelope) -> bool {
        if !self.ids.insert(e.id) {
            return false;
        }
        match self.window {
            Window::All => true,
            Window::Id(id) => e.id == id,
            Window::Page { after, limit } => {
                if !self.started {
                    self.started = after == Some(e.id);
                    self.browsed.after_found |= self.started;
                    return false;
                }
                if self.browsed.messages.len() < limit {
                    return true;
                }
                self.browsed.more = true;
                false
            }
        }
    }

    /// Keep `e` (after [`Selection::wants`] said so).
    pub fn keep(&mut self, e: Envelope) {
        self.browsed.messages.push(e);
    }

    /// What was kept.
    pub fn finish(mut self) -> Browsed {
        if matches!(self.window, Window::All | Window::Id(_))
            || matches!(self.window, Window::Page { after: None, .. })
        {
            self.browsed.after_found = true;
        }
        self.browsed
    }
}

/// A message handed to a consumer, to be acked or nacked.
pub struct Delivery {
    /// The message.
    pub envelope: Envelope,
    /// True when the broker delivered this message before (a crash or nack happened).
    pub redelivered: bool,
    acker: Box<dyn Acker>,
}

impl Delivery {
    /// A delivery settled through `acker`.
    pub fn new(envelope: Envelope, redelivered: bool, acker: Box<dyn Acker>) -> Self {
        Delivery {
            envelope,
            redelivered,
            acker,
        }
    }

    /// Ack: the message and everything it caused is durable.
    pub async fn ack(self) -> Result<(), BrokerError> {
        self.acker.ack().await
    }

    /// Nack: give the message back (`requeue`) or discard it.
    pub async fn nack(self, requeue: bool) -> Result<(), BrokerError> {
        self.acker.nack(requeue).await
    }

    /// Give the delivery back at the head of its queue (see [`Acker::release`]).
    pub async fn release(self) {
        self.acker.release().await
    }

    /// Can the delivery still be settled (see [`Acker::is_live`])?
    pub fn is_live(&self) -> bool {
        self.acker.is_live()
    }

    /// Split into the message and its acker.
    pub fn into_parts(self) -> (Envelope, Box<dyn Acker>) {
        (self.envelope, self.acker)
    }
}

/// A stream of deliveries from one queue. Dropping it cancels the consumer; unacked
/// deliveries are then redelivered.
pub type Consumer = Pin<Box<dyn Stream<Item = Delivery> + Send>>;

/// A message broker with Knutpunkt's semantics.
#[async_trait]
pub trait Broker: Send + Sync {
    /// `embedded` or `rabbitmq`.
    fn kind(&self) -> &'static str;

    /// Declare exchanges, work queues, bindings, retry and dead-letter queues. Idempotent.
    async fn declare(&self, topology: &Topology) -> Result<(), BrokerError>;

    /// Publish to a topic exchange; returns once the broker has confirmed the message.
    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), BrokerError>;

    /// Put a message straight into a queue (the default exchange); confirmed like `publish`.
    async fn send_to_queue(&self, queue: &str, envelope: &Envelope) -> Result<(), BrokerError>;

    /// Deliver `envelope` to the route's work queue again after `delay`, held by the broker.
    async fn retry_later(
        &self,
        route: &str,
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<(), BrokerError>;

    /// Park a message in the route's dead-letter queue (its headers carry the reason).
    async fn dead_letter(&self, route: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        self.send_to_queue(&dead_letter_queue(route), envelope)
            .await
    }

    /// The ready messages of a queue, head first, without removing or reordering them
    /// (unacked deliveries are not listed). Meant for dead-letter queues: it may cost a
    /// broker round trip per message (see the RabbitMQ transport).
    async fn browse(&self, queue: &str) -> Result<Vec<Envelope>, BrokerError> {
        Ok(self.browse_window(queue, Window::All).await?.messages)
    }

    /// Browse a queue as [`Broker::browse`] does, keeping only the messages in `window`
    /// (a page, or one id): every message is visited, but only the window's are held, so
    /// memory and answer stay the window's size whatever the queue's length.
    async fn browse_window(&self, queue: &str, window: Window) -> Result<Browsed, BrokerError>;

    /// Take the ready messages whose ids are in `ids` out of a queue, in queue order, as
    /// deliveries: ack removes one for good; nack with requeue, or a drop unsettled, gives it
    /// back to the queue. The other messages keep their order. A message may be in a queue
    /// more than once (a copy left by an interrupted browse): every copy is taken.
    /// [`BrokerError::MessageNotFound`] when none of them is there.
    async fn take(&self, queue: &str, ids: &[Uuid]) -> Result<Vec<Delivery>, BrokerError>;

    /// Consume a declared queue with at most `prefetch` unacked deliveries at a time.
    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BrokerError>;

    /// Declare a private, temporary queue for replies to this process; returns its name.
    async fn declare_reply_queue(&self) -> Result<String, BrokerError>;

    /// Messages ready in a queue (not counting unacked deliveries).
    async fn queue_depth(&self, queue: &str) -> Result<u64, BrokerError>;

    /// Is the broker reachable now?
    fn is_connected(&self) -> bool;

    /// Close connections; consumers end.
    async fn close(&self);
}

/// A shared broker.
pub type SharedBroker = Arc<dyn Broker>;
