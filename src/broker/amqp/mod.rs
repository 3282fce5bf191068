//! The RabbitMQ transport: Knutpunkt's broker semantics on AMQP 0.9.1 (lapin 4, tokio).
//!
//! - **Topology** ([`Broker::declare`], idempotent): durable topic exchanges
//!   (`knut.ingress` and those named); per route a durable work queue `knut.route.<id>`
//!   (quorum by default, see [`QueueType`]) bound to `knut.ingress` with the route id and
//!   to its bindings, and a durable dead-letter queue `knut.dlq.<id>`; per ordered route
//!   its partition queues, with `x-single-active-consumer` (see [`definitions`]). The
//!   retry ladder (see [`delay`]) is declared on first use.
//! - **Publishing**: one channel per connection in confirm mode, shared by concurrent
//!   publishers (each awaits its own confirm, nothing is serialised while waiting). Every
//!   message is persistent and `mandatory`: a returned message is `Unroutable`, a nack is
//!   `NotConfirmed`, no confirm within [`AmqpOptions::confirm_timeout`] is `NotConfirmed`.
//!   An exchange that is not known to exist is checked (passive declare, on a channel of
//!   its own) before the first publish to it, so a publish to an undeclared exchange is
//!   `NotDeclared` and never closes the shared publishing channel under other publishers.
//!   Should the publishing channel close anyway, the next publish opens a new one.
//! - **Consuming**: a channel per consumer, `basic.qos(prefetch)`, manual acks, written by
//!   the channel's settler, which joins a run of acks into one `multiple` ack where no
//!   unsettled delivery is in reach (see [`settle`]). A delivery dropped unsettled is
//!   nacked with requeue. The channel closes once the stream and every
//!   delivery from it are gone (so a worker can still ack its in-flight deliveries after it
//!   stopped consuming); closing it gives back what the consumer held and ends the consumer
//!   in one step, never cancel-then-close (which lets a single active consumer's successor
//!   overtake the messages still held).
//! - **Recovery**: a supervisor task watches the connection. When it drops, every operation
//!   fails at once with the transient [`BrokerError::Connection`], consumer streams end
//!   (the worker consumes again), and the supervisor reconnects with capped, jittered
//!   exponential backoff (200 ms to 5 s, forever), declares the known topology again and
//!   opens a new publishing channel. Publishes that failed are the caller's to repeat
//!   (they got a transient error, and their delivery stays unacked). lapin's own
//!   auto-recovery is not used: it gives up after a fixed number of attempts and keeps
//!   consumer streams open across the outage, while Knutpunkt's workers expect a stream to
//!   end and re-consume.
//! - **Browsing** a queue (listing dead letters) and **taking** a message out of it by id
//!   rotate the queue once — `basic.get`, a confirmed copy to the tail, ack — and never
//!   return a message to it, so no quorum-queue delivery limit can drop one (see
//!   [`browse`] for the technique and its cost).
//! - Every broker round trip is bounded by `confirm_timeout`: nothing hangs forever.

mod browse;
pub mod codec;
pub mod definitions;
pub mod delay;
mod settle;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use backon::BackoffBuilder;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind, Event,
    ExchangeKind,
};
use tokio_util::sync::CancellationToken;

use self::settle::{Settle, Settler};
use super::{
    Acker, Broker, BrokerError, Browsed, Consumer, Delivery, INGRESS_EXCHANGE, OutletQueue,
    RouteQueue, Topology, Window, work_queue,
};
use crate::core::envelope::Envelope;
use codec::short;

/// How long connecting may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks at the connection besides listening for its events.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The RabbitMQ queue type of work and dead-letter queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Replicated, durable Raft-based queues: RabbitMQ's choice for data safety (default).
    #[default]
    Quorum,
    /// Classic queues (single node; for brokers that cannot run quorum queues).
    Classic,
}

impl QueueType {
    /// The value of the `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

/// How to reach RabbitMQ and how to lay out queues.
#[derive(Clone)]
pub struct AmqpOptions {
    /// `amqp://user:password@host:port/vhost` (or `amqps://`). Never logged.
    pub url: String,
    /// Further nodes of the same cluster, as `host:port`: reached with the URL's scheme,
    /// credentials, vhost and query. Knutpunkt connects to the first node that answers (the
    /// URL's first) and, after losing a connection, tries the next node first.
    pub nodes: Vec<String>,
    /// Type of work and dead-letter queues (retry delay queues are always classic).
    pub queue_type: QueueType,
    /// How long a publish waits for the broker's confirm, and the bound on every other
    /// broker round trip.
    pub confirm_timeout: Duration,
}

impl AmqpOptions {
    /// Options for `url` with quorum queues and a 10 s confirm timeout.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpOptions {
            url: url.into(),
            nodes: Vec::new(),
            queue_type: QueueType::default(),
            confirm_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions::new("amqp://127.0.0.1:5672/%2f")
    }
}

impl fmt::Debug for AmqpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpOptions")
            .field("url", &redacted(&self.url))
            .field("nodes", &self.nodes)
            .field("queue_type", &self.queue_type)
            .field("confirm_timeout", &self.confirm_timeout)
            .finish()
    }
}

/// The URL without its user info (credentials never reach a log).
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Whether `node` names a node as `broker.nodes` wants it: `host:port` (or `[v6]:port`).
pub fn check_node(node: &str) -> Result<(), String> {
    // A URL may hold a password: never echo one.
    if node.contains("://") || node.contains('@') {
        return Err(
            "an entry looks like a URL: give only `host:port` (e.g. `rabbit-2.example.se:5671`); \
             the user, password and vhost come from broker.url"
                .into(),
        );
    }
    let port_ok = node
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok || node.contains(['/', '@', '?', '#']) {
        return Err(format!(
            "`{node}` is not `host:port` (e.g. `rabbit-2.example.se:5671`)"
        ));
    }
    Ok(())
}

/// Where the `host:port` (or host) of an AMQP URL stands in it, without user info.
fn host_range(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let host_at = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    Some(host_at..end)
}

/// The `host:port` (or host) of an AMQP URL, without user info.
pub fn host_of(url: &str) -> Option<&str> {
    url.get(host_range(url)?)
}

/// `url` with its host and port replaced by `node` (see [`check_node`]): the same scheme,
/// credentials, vhost and query on another node of the cluster.
fn with_node(url: &str, node: &str) -> Result<String, String> {
    let node = node.trim();
    check_node(node).map_err(|e| format!("broker.nodes: {e}"))?;
    let host = host_range(url).ok_or("broker.url is not a URL")?;
    Ok(format!("{}{node}{}", &url[..host.start], &url[host.end..]))
}

/// A publish whose confirm is still to come (see [`AmqpBroker::confirmed`]).
struct PendingConfirm {
    confirm: lapin::PublisherConfirm,
    exchange: String,
    key: String,
}

/// A broker on RabbitMQ. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct AmqpBroker {
    shared: Arc<Shared>,
}

struct Shared {
    opts: AmqpOptions,
    /// The node (0: the URL's, then `opts.nodes`) of the current or last connection.
    node: AtomicUsize,
    /// The current connection; `None` while reconnecting.
    live: RwLock<Option<Arc<Live>>>,
    closed: AtomicBool,
    shutdown: CancellationToken,
    /// Exchanges known to exist (declared by us or found by a passive declare).
    known_exchanges: RwLock<HashSet<String>>,
    /// Everything declared so far, declared again after a reconnect.
    topology: Mutex<Declared>,
    /// One lock per queue being browsed: rotations of a queue take turns (see [`browse`]).
    rotations: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Default)]
struct Declared {
    exchanges: BTreeSet<String>,
    routes: BTreeMap<String, RouteQueue>,
    outlets: BTreeMap<String, OutletQueue>,
}

impl Declared {
    fn topology(&self) -> Topology {
        Topology {
            exchanges: self.exchanges.iter().cloned().collect(),
            routes: self.routes.values().cloned().collect(),
            outlets: self.outlets.values().cloned().collect(),
        }
    }
}

/// One connection and what hangs on it.
struct Live {
    connection: Connection,
    /// The shared publishing channel (confirm mode).
    publisher: Mutex<Channel>,
    /// Held while a closed publishing channel is replaced.
    reopen: tokio::sync::Mutex<()>,
    /// Delay queues declared on this connection.
    delay_queues: Mutex<HashSet<String>>,
    /// Cancelled when this connection is lost or the broker closes: ends its consumers.
    lost: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn down() -> BrokerError {
    BrokerError::Connection(
        "the connection to RabbitMQ is down and being re-established; try again later".into(),
    )
}

/// A lapin error as a broker error; `subject` names the exchange or queue concerned.
fn amqp_err(e: &lapin::Error, subject: impl FnOnce() -> String) -> BrokerError {
    if let ErrorKind::ProtocolError(p) = e.kind() {
        match p.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => {
                return BrokerError::NotDeclared(subject());
            }
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => {
                return BrokerError::NotDeclared(format!(
                    "{} as asked: it exists with other arguments ({}); delete it once it is \
                     drained, or make broker.queue_type (and the route's ordered_by) match \
                     how it was declared",
                    subject(),
                    p.get_message()
                ));
            }
            _ => {}
        }
    }
    BrokerError::Connection(e.to_string())
}

fn conn_err(e: &lapin::Error) -> BrokerError {
    BrokerError::Connection(e.to_string())
}

fn text_arg(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

async fn confirm_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| conn_err(&e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| conn_err(&e))?;
    Ok(channel)
}

/// A connection to the first node that answers, trying them in turn from node `from`
/// (0: the URL's, then `opts.nodes`); the connection and the node's index.
async fn open(
    opts: &AmqpOptions,
    shutdown: &CancellationToken,
    from: usize,
) -> Result<(Live, usize), BrokerError> {
    let count = opts.nodes.len() + 1;
    let mut failures = Vec::new();
    for i in (0..count).map(|k| (from + k) % count) {
        let url = match i {
            0 => opts.url.clone(),
            _ => with_node(&opts.url, &opts.nodes[i - 1]).map_err(BrokerError::Connection)?,
        };
        match open_one(&url, shutdown).await {
            Ok(live) => return Ok((live, i)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(BrokerError::Connection(failures.join("; ")))
}

async fn open_one(url: &str, shutdown: &CancellationToken) -> Result<Live, BrokerError> {
    let props = ConnectionProperties::default().with_connection_name("knut".into());
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props))
        .await
        .map_err(|_| {
            BrokerError::Connection(format!(
                "RabbitMQ at {} did not answer within {} s",
                redacted(url),
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            BrokerError::Connection(format!(
                "cannot connect to RabbitMQ at {}: {e}",
                redacted(url)
            ))
        })?;
    let publisher = confirm_channel(&connection).await?;
    Ok(Live {
        connection,
        publisher: Mutex::new(publisher),
        reopen: tokio::sync::Mutex::new(()),
        delay_queues: Mutex::new(HashSet::new()),
        lost: shutdown.child_token(),
    })
}

fn queue_args(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text_arg(queue_type.as_str()));
    args
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

async fn declare_exchange(channel: &Channel, name: &str) -> Result<(), BrokerError> {
    channel
        .exchange_declare(
            short(name, "an exchange name")?,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_err(&e, || format!("exchange `{name}`")))
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), BrokerError> {
    channel
        .queue_declare(short(name, "a queue name")?, durable_queue(), args)
        .await
        .map(|_| ())
        .map_err(|e| amqp_err(&e, || format!("queue `{name}`")))
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), BrokerError> {
    channel
        .queue_bind(
            short(queue, "a queue name")?,
            short(exchange, "an exchange name")?,
            short(key, "a binding key")?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_err(&e, || format!("binding of `{queue}` to `{exchange}`")))
}

/// Declare `topology` on `channel` (idempotent on the broker's side), as laid out by
/// [`definitions::plan`].
async fn declare_on(
    channel: &Channel,
    topology: &Topology,
    queue_type: QueueType,
) -> Result<(), BrokerError> {
    let plan = definitions::plan(topology, queue_type);
    for exchange in &plan.exchanges {
        declare_exchange(channel, exchange).await?;
    }
    for queue in &plan.queues {
        declare_queue(channel, &queue.name, queue.field_table()).await?;
    }
    for b in &plan.bindings {
        bind(channel, &b.queue, &b.exchange, &b.key).await?;
    }
    Ok(())
}

impl AmqpBroker {
    /// Connect to RabbitMQ. Fails with [`BrokerError::Connection`] when the first connection
    /// cannot be made; once connected, connection losses are recovered in the background.
    pub async fn connect(opts: AmqpOptions) -> Result<AmqpBroker, BrokerError> {
        let shutdown = CancellationToken::new();
        let (live, node) = open(&opts, &shutdown, 0).await?;
        let live = Arc::new(live);
        let shared = Arc::new(Shared {
            opts,
            node: node.into(),
            live: RwLock::new(Some(live.clone())),
            closed: AtomicBool::new(false),
            shutdown: shutdown.clone(),
            known_exchanges: RwLock::new(
                [String::new(), INGRESS_EXCHANGE.to_string()]
                    .into_iter()
                    .collect(),
            ),
            topology: Mutex::new(Declared::default()),
            rotations: Mutex::new(HashMap::new()),
        });
        tokio::spawn(supervise(Arc::downgrade(&shared), shutdown, live));
        Ok(AmqpBroker { shared })
    }

    /// The options this broker was connected with.
    pub fn options(&self) -> &AmqpOptions {
        &self.shared.opts
    }

    fn live(&self) -> Result<Arc<Live>, BrokerError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(BrokerError::Closed);
        }
        self.shared
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|l| l.connection.status().connected())
            .ok_or_else(down)
    }

    /// Run one broker round trip within `confirm_timeout`.
    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, BrokerError>>,
    ) -> Result<T, BrokerError> {
        let limit = self.shared.opts.confirm_timeout;
        tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(BrokerError::Connection(format!(
                "RabbitMQ did not answer {what} within {} ms",
                limit.as_millis()
            )))
        })
    }

    /// A fresh channel for an operation that may fail with a channel error (passive
    /// declares, declarations): such an error closes only this channel.
    async fn scratch_channel(&self) -> Result<Channel, BrokerError> {
        let live = self.live()?;
        live.connection
            .create_channel()
            .await
            .map_err(|e| conn_err(&e))
    }

    /// The publishing channel, reopened if it was closed.
    async fn publisher(live: &Live) -> Result<Channel, BrokerError> {
        {
            let ch = lock(&live.publisher);
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let _reopening = live.reopen.lock().await;
        {
            let ch = lock(&live.publisher);
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = confirm_channel(&live.connection).await?;
        *lock(&live.publisher) = ch.clone();
        Ok(ch)
    }

    /// Make sure `exchange` exists before publishing to it (see the module docs).
    async fn ensure_exchange(&self, exchange: &str) -> Result<(), BrokerError> {
        if self
            .shared
            .known_exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(exchange)
        {
            return Ok(());
        }
        let name = short(exchange, "the exchange name")?;
        self.bounded("a passive exchange declare", async {
            let ch = self.scratch_channel().await?;
            ch.exchange_declare(
                name,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_err(&e, || format!("exchange `{exchange}`")))
        })
        .await?;
        self.shared
            .known_exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(exchange.to_string());
        Ok(())
    }

    /// Publish with `mandatory` and await the confirm.
    async fn publish_confirmed(
        &self,
        exchange: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), BrokerError> {
        let (properties, payload) = codec::encode(envelope)?;
        self.publish_raw(exchange, key, &payload, properties).await
    }

    /// Publish a message as it is on the wire with `mandatory` and await the confirm.
    async fn publish_raw(
        &self,
        exchange: &str,
        key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let pending = self
            .publish_pending(exchange, key, payload, properties)
            .await?;
        self.confirmed(pending).await
    }

    /// Publish without waiting for the confirm: the pending confirm, for
    /// [`AmqpBroker::confirmed`]. Confirms of one channel come in publish order, so
    /// several may be in flight (a rotation keeps a window of them).
    async fn publish_pending(
        &self,
        exchange: &str,
        key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<PendingConfirm, BrokerError> {
        let ex = short(exchange, "the exchange name")?;
        let rk = short(key, "the routing key")?;
        let live = self.live()?;
        let subject = || {
            if exchange.is_empty() {
                format!("queue `{key}`")
            } else {
                format!("exchange `{exchange}`")
            }
        };
        let confirm = self
            .bounded("a publish", async {
                let ch = Self::publisher(&live).await?;
                ch.basic_publish(
                    ex,
                    rk,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    properties,
                )
                .await
                .map_err(|e| amqp_err(&e, subject))
            })
            .await?;
        Ok(PendingConfirm {
            confirm,
            exchange: exchange.to_string(),
            key: key.to_string(),
        })
    }

    /// Wait for a pending confirm (at most `confirm_timeout`).
    async fn confirmed(&self, pending: PendingConfirm) -> Result<(), BrokerError> {
        let PendingConfirm {
            confirm,
            exchange,
            key,
        } = pending;
        let subject = || {
            if exchange.is_empty() {
                format!("queue `{key}`")
            } else {
                format!("exchange `{exchange}`")
            }
        };
        let limit = self.shared.opts.confirm_timeout;
        let confirmation = tokio::time::timeout(limit, confirm)
            .await
            .map_err(|_| {
                BrokerError::NotConfirmed(format!(
                    "RabbitMQ sent no confirm within {} ms; the message may or may not be \
                     stored: publish it again",
                    limit.as_millis()
                ))
            })?
            .map_err(|e| amqp_err(&e, subject))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => {
                Err(BrokerError::Unroutable { exchange, key })
            }
            Confirmation::Nack(None) => Err(BrokerError::NotConfirmed(
                "RabbitMQ refused to store the message (negative confirm); publish it again".into(),
            )),
            Confirmation::NotRequested => Err(BrokerError::NotConfirmed(
                "the publishing channel is not in confirm mode".into(),
            )),
        }
    }

    /// Publish straight to a queue; an unroutable message means the queue does not exist.
    async fn publish_to_queue(&self, queue: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        match self.publish_confirmed("", queue, envelope).await {
            Err(BrokerError::Unroutable { .. }) => {
                Err(BrokerError::NotDeclared(format!("queue `{queue}`")))
            }
            other => other,
        }
    }

    /// Declare the delay queue of `route` for `rung_ms` unless this connection already did.
    async fn ensure_delay_queue(
        &self,
        route: &str,
        rung_ms: u64,
        queue: &str,
    ) -> Result<(), BrokerError> {
        let live = self.live()?;
        if lock(&live.delay_queues).contains(queue) {
            return Ok(());
        }
        let wq = work_queue(route);
        self.bounded("a delay queue declare", async {
            let ch = self.scratch_channel().await?;
            // Expired messages go to the work queue: it must exist, or RabbitMQ would drop them.
            ch.queue_declare(
                short(&wq, "the work queue name")?,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_err(&e, || format!("queue `{wq}`")))?;
            let spec = definitions::delay_queue_spec(route, rung_ms);
            declare_queue(&ch, &spec.name, spec.field_table()).await
        })
        .await?;
        lock(&live.delay_queues).insert(queue.to_string());
        Ok(())
    }
}

#[async_trait]
impl Broker for AmqpBroker {
    fn kind(&self) -> &'static str {
        "rabbitmq"
    }

    async fn declare(&self, topology: &Topology) -> Result<(), BrokerError> {
        let queue_type = self.shared.opts.queue_type;
        self.bounded("the topology declaration", async {
            let ch = self.scratch_channel().await?;
            declare_on(&ch, topology, queue_type).await
        })
        .await?;
        {
            let mut known = self
                .shared
                .known_exchanges
                .write()
                .unwrap_or_else(|e| e.into_inner());
            known.extend(topology.exchanges.iter().cloned());
            for rq in &topology.routes {
                known.extend(rq.bindings.iter().map(|(e, _)| e.clone()));
            }
            for o in &topology.outlets {
                known.extend(o.bindings.iter().map(|(e, _)| e.clone()));
            }
        }
        let mut declared = lock(&self.shared.topology);
        declared
            .exchanges
            .extend(topology.exchanges.iter().cloned());
        for rq in &topology.routes {
            declared.routes.insert(rq.route.clone(), rq.clone());
        }
        for o in &topology.outlets {
            declared.outlets.insert(o.queue.clone(), o.clone());
        }
        Ok(())
    }

    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), BrokerError> {
        self.ensure_exchange(exchange).await?;
        self.publish_confirmed(exchange, key, envelope).await
    }

    async fn send_to_queue(&self, queue: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        self.publish_to_queue(queue, envelope).await
    }

    async fn retry_later(
        &self,
        route: &str,
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        if delay.is_zero() {
            return self.publish_to_queue(&work_queue(route), envelope).await;
        }
        let rung = delay::rung_for(delay);
        let queue = delay::delay_queue(route, rung);
        self.ensure_delay_queue(route, rung, &queue).await?;
        self.publish_to_queue(&queue, envelope).await
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BrokerError> {
        let live = self.live()?;
        let name = short(queue, "the queue name")?;
        let (channel, consumer) = self
            .bounded("a consume", async {
                let ch = live
                    .connection
                    .create_channel()
                    .await
                    .map_err(|e| conn_err(&e))?;
                ch.basic_qos(prefetch.max(1), BasicQosOptions::default())
                    .await
                    .map_err(|e| conn_err(&e))?;
                let consumer = ch
                    .basic_consume(
                        name,
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| amqp_err(&e, || format!("queue `{queue}`")))?;
                Ok((ch, consumer))
            })
            .await?;
        // The channel stays open while the stream or any of its deliveries is alive.
        let settler = Settler::start(channel.clone());
        let channel = Arc::new(ConsumerChannel {
            channel,
            consumer: Some(consumer.clone()),
            settler,
        });
        let stream = consumer
            .take_while(|item| futures::future::ready(item.is_ok()))
            .filter_map(move |item| {
                let channel = channel.clone();
                futures::future::ready(item.ok().map(|d| {
                    channel.settler.deliver(d.delivery_tag);
                    let envelope = codec::decode(&d.properties, d.data);
                    let acker = AmqpAcker {
                        tag: Some(d.delivery_tag),
                        channel,
                    };
                    Delivery::new(envelope, d.redelivered, Box::new(acker))
                }))
            })
            .take_until(live.lost.clone().cancelled_owned());
        Ok(Box::pin(stream))
    }

    async fn browse_window(&self, queue: &str, window: Window) -> Result<Browsed, BrokerError> {
        browse::browse(self, queue, window).await
    }

    async fn take(&self, queue: &str, ids: &[uuid::Uuid]) -> Result<Vec<Delivery>, BrokerError> {
        browse::take(self, queue, ids).await
    }

    async fn declare_reply_queue(&self) -> Result<String, BrokerError> {
        let name = format!("knut.reply.{}", uuid::Uuid::new_v4().simple());
        self.bounded("a reply queue declare", async {
            let ch = self.scratch_channel().await?;
            ch.queue_declare(
                short(&name, "the reply queue name")?,
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                queue_args(QueueType::Classic),
            )
            .await
            .map_err(|e| amqp_err(&e, || format!("queue `{name}`")))
        })
        .await?;
        Ok(name)
    }

    async fn queue_depth(&self, queue: &str) -> Result<u64, BrokerError> {
        let name = short(queue, "the queue name")?;
        self.bounded("a queue depth query", async {
            let ch = self.scratch_channel().await?;
            let q = ch
                .queue_declare(
                    name,
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp_err(&e, || format!("queue `{queue}`")))?;
            Ok(u64::from(q.message_count()))
        })
        .await
    }

    fn is_connected(&self) -> bool {
        self.live().is_ok()
    }

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.shutdown.cancel();
        let live = self
            .shared
            .live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(live) = live {
            let closed = tokio::time::timeout(
                self.shared.opts.confirm_timeout,
                live.connection.close(200, "knut is shutting down".into()),
            )
            .await;
            if closed.is_err() {
                tracing::warn!(timeout = ?self.shared.opts.confirm_timeout, "RabbitMQ did not confirm the connection's close in time; leaving it");
            }
        }
    }
}

/// A consumer's channel, shared by the consumer stream and every delivery from it. When the
/// last of them is gone the channel is closed *before* the consumer is let go: RabbitMQ
/// then gives back what the consumer still held (prefetched, unsettled) and removes the
/// consumer in one step. Cancelling first (what dropping a lapin consumer does) would let a
/// single active consumer's successor start on later messages while the held ones are
/// still out, and get those back after them: out of order.
struct ConsumerChannel {
    channel: Channel,
    consumer: Option<lapin::Consumer>,
    /// Settles the deliveries (see [`settle`]).
    settler: Settler,
}

impl Drop for ConsumerChannel {
    fn drop(&mut self) {
        let consumer = self.consumer.take();
        let channel = self.channel.clone();
        // Without a runtime the channel closes with the process, which gives back as well.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if channel.status().connected() {
                    let _ = channel.close(200, "consumer done".into()).await;
                }
                drop(consumer);
            });
        }
    }
}

/// The outcome of settling a delivery with its lapin acker.
fn settled(result: lapin::Result<bool>) -> Result<(), BrokerError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(BrokerError::Connection(
            "the delivery's channel closed before it was settled; RabbitMQ delivers the \
             message again"
                .into(),
        )),
        Err(e) => Err(conn_err(&e)),
    }
}

/// Settles one RabbitMQ delivery through its channel's [`Settler`]; dropped unsettled, it
/// nacks with requeue.
struct AmqpAcker {
    /// The delivery tag, until the delivery is settled.
    tag: Option<u64>,
    channel: Arc<ConsumerChannel>,
}

impl AmqpAcker {
    async fn settle(&mut self, how: Settle) -> Result<(), BrokerError> {
        let Some(tag) = self.tag.take() else {
            return Ok(());
        };
        self.channel.settler.settle(tag, how).await.map_err(|e| {
            BrokerError::Connection(format!(
                "the delivery could not be settled: {e}; RabbitMQ delivers the message again"
            ))
        })
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        self.settle(Settle::Ack).await
    }

    async fn nack(mut self: Box<Self>, requeue: bool) -> Result<(), BrokerError> {
        self.settle(Settle::Nack { requeue }).await
    }

    fn is_live(&self) -> bool {
        self.tag.is_some() && self.channel.channel.status().connected()
    }

    async fn release(mut self: Box<Self>) {
        // Unsettled, the message goes back when the channel closes: to the head of its
        // queue, with nothing sent now. It stays in the channel's ledger, so no `multiple`
        // ack covers it.
        self.tag = None;
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        if let Some(tag) = self.tag.take() {
            // The channel stays open until the nack is written; should it close first, the
            // broker requeues the message all the same.
            let keep: Arc<dyn Send + Sync> = self.channel.clone();
            self.channel
                .settler
                .settle_later(tag, Settle::Nack { requeue: true }, keep);
        }
    }
}

/// Wait until `live`'s connection is lost (or the broker shuts down).
async fn wait_until_lost(live: &Live, shutdown: &CancellationToken) {
    let mut events = live.connection.events_listener();
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.next() => match event {
                // Channel errors (a 404 on a passive declare) are reported here too: only a
                // connection that is no longer open counts as lost.
                Some(Event::Error(_)) if !live.connection.status().connected() => return,
                None => return,
                Some(_) => {}
            },
            _ = tick.tick() => {
                if !live.connection.status().connected() {
                    return;
                }
            }
        }
    }
}

/// Watch the connection; when it is lost, reconnect with backoff and declare again.
async fn supervise(shared: Weak<Shared>, shutdown: CancellationToken, mut live: Arc<Live>) {
    loop {
        wait_until_lost(&live, &shutdown).await;
        live.lost.cancel();
        if shutdown.is_cancelled() {
            return;
        }
        match shared.upgrade() {
            Some(s) => *s.live.write().unwrap_or_else(|e| e.into_inner()) = None,
            None => return,
        }
        tracing::warn!("lost the connection to RabbitMQ; reconnecting");
        drop(live);
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build();
        live = loop {
            let pause = backoff.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            let Some(s) = shared.upgrade() else { return };
            match reconnect(&s, &shutdown).await {
                Ok(new) => {
                    let new = Arc::new(new);
                    *s.live.write().unwrap_or_else(|e| e.into_inner()) = Some(new.clone());
                    tracing::info!("reconnected to RabbitMQ");
                    break new;
                }
                Err(e) => tracing::debug!(error = %e, "reconnecting to RabbitMQ failed"),
            }
        };
    }
}

/// A new connection with the known topology declared on it.
async fn reconnect(shared: &Shared, shutdown: &CancellationToken) -> Result<Live, BrokerError> {
    // The next node first: the one just lost may be the one that is down.
    let next = shared.node.load(Ordering::Relaxed) + 1;
    let (live, node) = open(&shared.opts, shutdown, next).await?;
    shared.node.store(node, Ordering::Relaxed);
    if !shared.opts.nodes.is_empty() {
        tracing::info!(node, "connected to RabbitMQ node {node} of the cluster");
    }
    let topology = lock(&shared.topology).topology();
    let declared = tokio::time::timeout(shared.opts.confirm_timeout, async {
        let ch = live
            .connection
            .create_channel()
            .await
            .map_err(|e| conn_err(&e))?;
        declare_on(&ch, &topology, shared.opts.queue_type).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(BrokerError::Connection(
            "declaring the topology timed out".into(),
        ))
    });
    if let Err(e) = declared {
        let _ = live.connection.close(200, "retrying".into()).await;
        return Err(e);
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_node_keeps_scheme_credentials_vhost_and_query() {
        let url = "amqps://knut:p%40ss@rabbit-1:5671/skola?heartbeat=30";
        assert_eq!(
            with_node(url, "rabbit-2:5671").unwrap(),
            "amqps://knut:p%40ss@rabbit-2:5671/skola?heartbeat=30"
        );
        assert_eq!(
            with_node("amqp://127.0.0.1:5672", "[::1]:5673").unwrap(),
            "amqp://[::1]:5673"
        );
        for bad in [
            "rabbit-2",
            "rabbit-2:x",
            ":5672",
            "u@rabbit-2:5672",
            "rabbit-2:5672/v",
        ] {
            let err = with_node(url, bad).unwrap_err();
            assert!(err.contains("host:port"), "{bad}: {err}");
        }
    }

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(
            redacted("amqp://knut:hemligt@mq.example:5672/%2f"),
            "amqp://***@mq.example:5672/%2f"
        );
        assert_eq!(redacted("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        let debug = format!("{:?}", AmqpOptions::new("amqp://u:pw@h/v"));
        assert!(!debug.contains("pw"), "{debug}");
    }

    #[test]
    fn defaults() {
        let o = AmqpOptions::default();
        assert_eq!(o.queue_type, QueueType::Quorum);
        assert_eq!(o.confirm_timeout, Duration::from_secs(10));
        assert_eq!(QueueType::Classic.as_str(), "classic");
    }

    #[tokio::test]
    async fn unreachable_broker_fails_fast_and_transiently() {
        // Port 1 on loopback: nothing listens there.
        let started = std::time::Instant::now();
        let err = AmqpBroker::connect(AmqpOptions::new("amqp://u:pw@127.0.0.1:1/%2f"))
            .await
            .err()
            .expect("no broker there");
        assert!(err.is_transient(), "{err:?}");
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(started.elapsed() < CONNECT_TIMEOUT);
    }
}
