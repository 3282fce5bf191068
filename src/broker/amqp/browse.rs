//! Browsing a queue and taking messages out of it by id, on RabbitMQ: by **rotation**.
//!
//! AMQP 0.9.1 has no "peek". The obvious browse — `basic.get` every message, then give them
//! all back (nack with requeue, or close the channel) — is not safe: on RabbitMQ 4.0–4.2
//! every return of a message to a quorum queue counts toward the queue's delivery limit (20
//! by default), after which RabbitMQ drops the message (Knutpunkt's dead-letter queues have
//! no dead-letter exchange of their own). Twenty listings of a dead-letter queue would
//! empty it, and a lower `delivery-limit` policy on any version does the same sooner.
//!
//! So a browse rotates the queue once. The first `basic.get` tells the number `N` of ready
//! messages; `N` times it takes the head (`basic.get`, manual ack), publishes an exact copy —
//! the same properties, headers and body; only quorum queues' `x-delivery-count` is
//! left out — to the tail through the default exchange, and acks the original once the
//! copy's publisher confirm came (up to 64 copies are in flight at a time; confirms of one
//! channel come in order). After `N` steps the queue holds the same messages in the same
//! order. The copy is stored before the original is removed, so a failure or a crash at
//! any point leaves every message in the queue — at worst twice (the same message id),
//! never lost. No message is returned to the queue in a pass that completes, so no
//! delivery count grows, on any RabbitMQ 3.x or 4.x, whatever the queue type or limit. A
//! pass that fails settles what is in flight first (the original of every confirmed copy
//! is acked); only the originals of unconfirmed copies — after a crash, of the copies in
//! flight — are returned by the broker when the channel closes, so at most 64 messages
//! stay twice and count one delivery each.
//!
//! `take` is the same pass: a message with an asked-for id is kept unacked instead of
//! being copied, and handed out as a [`Delivery`]; the others rotate, so their order is
//! kept. A taken message that is given back (nack with requeue, or dropped unsettled) is
//! rotated back the same way — copy to the tail, confirm, ack — so giving back is not a
//! return either. Only when that copy cannot be published is it nacked with requeue (or,
//! with the connection gone, returned by the broker), which counts once.
//!
//! **Cost.** Every browse or take rewrites the queue: per message a `basic.get`, a
//! confirmed publish (on a quorum queue a Raft commit; up to 64 in flight) and an ack —
//! about a millisecond per message on a small broker (50,000 dead letters: 46 s on two
//! cores), whatever page is kept. That suits dead-letter queues, which are read by people;
//! it is not meant for work queues.
//! Rotations of one queue take turns within a knut process. A message that arrives during
//! a rotation (a new dead letter) ends up among the rotated ones rather than strictly after
//! them, and a rotation by another knut instance at the same moment can make a listing show
//! a message twice or miss one — never lose one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use uuid::Uuid;

use super::{AmqpBroker, PendingConfirm, amqp_err, codec, lock, settled, short};
use crate::broker::{Acker, BrokerError, Browsed, Delivery, Selection, Window};

/// The header in which quorum queues count deliveries; not copied.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// The ready messages of `queue` in `window`, head first; the queue is left as it was.
pub(super) async fn browse(
    broker: &AmqpBroker,
    queue: &str,
    window: Window,
) -> Result<Browsed, BrokerError> {
    Ok(rotate(broker, queue, &[], window.select())
        .await?
        .seen
        .finish())
}

/// The messages of `queue` with these ids, taken out unsettled (see the module docs).
pub(super) async fn take(
    broker: &AmqpBroker,
    queue: &str,
    ids: &[Uuid],
) -> Result<Vec<Delivery>, BrokerError> {
    let taken = rotate(
        broker,
        queue,
        ids,
        Window::Page {
            after: None,
            limit: 0,
        }
        .select(),
    )
    .await?
    .taken;
    if taken.is_empty() {
        return Err(BrokerError::MessageNotFound {
            queue: queue.to_string(),
            ids: ids.to_vec(),
        });
    }
    Ok(taken)
}

/// A message as RabbitMQ holds it, to be copied to the tail of its queue.
struct RawMessage {
    properties: BasicProperties,
    payload: Vec<u8>,
}

impl RawMessage {
    fn of(properties: &BasicProperties, payload: Vec<u8>) -> RawMessage {
        let properties = match properties.headers() {
            Some(headers) if headers.contains_key(DELIVERY_COUNT) => {
                let kept: BTreeMap<_, _> = headers
                    .inner()
                    .iter()
                    .filter(|(name, _)| name.as_str() != DELIVERY_COUNT)
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                properties.clone().with_headers(FieldTable::from(kept))
            }
            _ => properties.clone(),
        };
        RawMessage {
            properties,
            payload,
        }
    }

    /// Publish the copy to the tail of `queue` and wait for the confirm.
    async fn append(&self, broker: &AmqpBroker, queue: &str) -> Result<(), BrokerError> {
        broker
            .publish_raw("", queue, &self.payload, self.properties.clone())
            .await
    }

    /// Publish the copy to the tail of `queue`; the confirm is still to come.
    async fn append_pending(
        &self,
        broker: &AmqpBroker,
        queue: &str,
    ) -> Result<PendingConfirm, BrokerError> {
        broker
            .publish_pending("", queue, &self.payload, self.properties.clone())
            .await
    }
}

/// What one pass over a queue kept and took.
struct Rotation {
    seen: Selection,
    taken: Vec<Delivery>,
}

impl AmqpBroker {
    /// The lock that makes rotations of `queue` in this process take turns.
    fn rotation_lock(&self, queue: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.shared.rotations)
            .entry(queue.to_string())
            .or_default()
            .clone()
    }
}

/// One pass over `queue`: every ready message is read; those whose id is in `take` are held
/// unacked and handed out, the others are copied to the tail and acked; `seen` keeps the
/// messages its window wants.
async fn rotate(
    broker: &AmqpBroker,
    queue: &str,
    take: &[Uuid],
    seen: Selection,
) -> Result<Rotation, BrokerError> {
    let turn = broker.rotation_lock(queue);
    let _turn = turn.lock().await;
    let channel = Arc::new(
        broker
            .bounded("opening a channel", broker.scratch_channel())
            .await?,
    );
    let mut rotation = Rotation {
        seen,
        taken: Vec::new(),
    };
    // Copies published whose originals wait for the copy's confirm before their ack.
    let mut in_flight: VecDeque<(PendingConfirm, lapin::Acker)> = VecDeque::new();
    let visited = visit(broker, &channel, queue, take, &mut rotation, &mut in_flight).await;
    // Whatever happened, settle what is in flight: the original of every confirmed copy is
    // acked, so a failure leaves at most the unconfirmed few in the queue twice.
    let settled = settle_all(broker, &mut in_flight).await;
    visited?;
    settled?;
    Ok(rotation)
}

/// The pass itself: get each message; take it, or publish its copy to the tail (the
/// original's ack waits in `in_flight` for the copy's confirm).
async fn visit(
    broker: &AmqpBroker,
    channel: &Arc<Channel>,
    queue: &str,
    take: &[Uuid],
    rotation: &mut Rotation,
    in_flight: &mut VecDeque<(PendingConfirm, lapin::Acker)>,
) -> Result<(), BrokerError> {
    let name = short(queue, "the queue name")?;
    let subject = || format!("queue `{queue}`");
    // Messages still to visit after the current one: the first `basic.get-ok` tells how many
    // were behind the head at that moment.
    let mut behind: Option<u32> = None;
    while behind != Some(0) {
        let got = broker
            .bounded("a basic.get", async {
                channel
                    .basic_get(name.clone(), BasicGetOptions { no_ack: false })
                    .await
                    .map_err(|e| amqp_err(&e, subject))
            })
            .await?;
        // Empty, or fewer than counted (another instance took some meanwhile).
        let Some(got) = got else { break };
        behind = Some(behind.map_or(got.message_count, |n| n.saturating_sub(1)));
        let d = got.delivery;
        let envelope = codec::decode(&d.properties, d.data.clone());
        let copy = RawMessage::of(&d.properties, d.data);
        if take.contains(&envelope.id) {
            let acker = TakenAcker {
                acker: Some(d.acker),
                channel: channel.clone(),
                broker: broker.clone(),
                queue: queue.to_string(),
                copy: Some(copy),
            };
            rotation.taken.push(Delivery::new(
                envelope.clone(),
                d.redelivered,
                Box::new(acker),
            ));
        } else {
            // On an error here the original stays unacked: the broker keeps it when the
            // channel closes.
            let pending = copy.append_pending(broker, queue).await?;
            in_flight.push_back((pending, d.acker));
            if in_flight.len() >= IN_FLIGHT {
                settle_oldest(broker, in_flight).await?;
            }
        }
        if rotation.seen.wants(&envelope) {
            rotation.seen.keep(envelope);
        }
    }
    Ok(())
}

/// Settle every copy in flight, each on its own: an original whose copy was confirmed is
/// acked; one whose copy was not stays unacked (the broker keeps it when the channel
/// closes). The first error, if any.
async fn settle_all(
    broker: &AmqpBroker,
    in_flight: &mut VecDeque<(PendingConfirm, lapin::Acker)>,
) -> Result<(), BrokerError> {
    let mut first = Ok(());
    while !in_flight.is_empty() {
        if let Err(e) = settle_oldest(broker, in_flight).await
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

/// Copies in flight at most during a rotation: the confirms of one channel come in order,
/// so the originals are acked in order as their copies are confirmed, and a rotation costs
/// about one round trip per message instead of a confirm's wait each.
const IN_FLIGHT: usize = 64;

/// Wait for the oldest copy's confirm, then ack its original.
async fn settle_oldest(
    broker: &AmqpBroker,
    in_flight: &mut VecDeque<(PendingConfirm, lapin::Acker)>,
) -> Result<(), BrokerError> {
    let Some((pending, acker)) = in_flight.pop_front() else {
        return Ok(());
    };
    broker.confirmed(pending).await?;
    broker
        .bounded("an ack", async {
            settled(acker.ack(BasicAckOptions::default()).await)
        })
        .await
}

/// Settles a taken message: ack removes it; giving it back copies it to the tail first.
struct TakenAcker {
    acker: Option<lapin::Acker>,
    /// The channel it was got on stays open until it is settled.
    channel: Arc<Channel>,
    broker: AmqpBroker,
    queue: String,
    copy: Option<RawMessage>,
}

/// Give a taken message back: a confirmed copy to the tail, then ack the original; when
/// the copy cannot be published, nack with requeue.
async fn give_back(
    acker: lapin::Acker,
    broker: &AmqpBroker,
    queue: &str,
    copy: &RawMessage,
) -> Result<(), BrokerError> {
    match copy.append(broker, queue).await {
        Ok(()) => settled(acker.ack(BasicAckOptions::default()).await),
        Err(e) => {
            tracing::warn!(queue, error = %e, "could not copy a taken message back; returning it");
            settled(
                acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await,
            )
        }
    }
}

#[async_trait]
impl Acker for TakenAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BrokerError> {
        match self.acker.take() {
            Some(acker) => settled(acker.ack(BasicAckOptions::default()).await),
            None => Ok(()),
        }
    }

    async fn nack(mut self: Box<Self>, requeue: bool) -> Result<(), BrokerError> {
        let (Some(acker), Some(copy)) = (self.acker.take(), self.copy.take()) else {
            return Ok(());
        };
        if requeue {
            give_back(acker, &self.broker, &self.queue, &copy).await
        } else {
            settled(acker.nack(BasicNackOptions::default()).await)
        }
    }
}

impl Drop for TakenAcker {
    fn drop(&mut self) {
        let (Some(acker), Some(copy)) = (self.acker.take(), self.copy.take()) else {
            return;
        };
        // Without a runtime the channel closes with the process: RabbitMQ keeps the message.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let broker = self.broker.clone();
            let queue = std::mem::take(&mut self.queue);
            let channel = self.channel.clone();
            runtime.spawn(async move {
                let _ = give_back(acker, &broker, &queue, &copy).await;
                drop(channel);
            });
        }
    }
}
