//! Settling a consumer's deliveries with as few frames as is safe.
//!
//! Every delivery of a consumer channel is entered in its [`Ledger`] when the consumer
//! stream hands it out, before anyone can settle it; delivery tags grow on a channel (one
//! consumer per channel, no `basic.recover`), so the ledger holds them in order. Its acker
//! does not write `basic.ack` itself: it hands the settlement to the channel's settler
//! task, which lets the deliveries finishing at the same moment hand theirs too (best
//! effort: it yields once) and then writes:
//!
//! - one `basic.ack` with `multiple` for the longest run of acked deliveries at the head of
//!   the ledger (every delivery the broker still holds on this channel up to that tag is in
//!   the run, so the ack covers exactly those);
//! - a single `basic.ack` or `basic.nack` for each other settled delivery. A delivery still
//!   being processed, or released (left unsettled on purpose, so the channel's close gives
//!   it back at the head of its queue), stays in the ledger and ends the run: a `multiple`
//!   ack never covers it.
//!
//! Each acker waits until the frame that settles its delivery is written, as before, and
//! gets that frame's error if the channel closed first; after a failed frame nothing more
//! is written on the channel. One ack for a run of deliveries is one frame for the broker
//! to read and one settlement for the queue to apply, instead of one per delivery.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::{mpsc, oneshot};

/// How a delivery is to be settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settle {
    /// Done: remove it from the queue.
    Ack,
    /// Not done: put it back (`requeue`) or drop it.
    Nack {
        /// Put it back in the queue.
        requeue: bool,
    },
}

/// A frame that settles deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    /// `basic.ack`; with `multiple`, every unsettled delivery up to `tag` as well.
    Ack {
        /// The delivery tag.
        tag: u64,
        /// Cover the unsettled deliveries before it too.
        multiple: bool,
    },
    /// `basic.nack` of one delivery.
    Nack {
        /// The delivery tag.
        tag: u64,
        /// Put it back in the queue.
        requeue: bool,
    },
}

/// One delivery in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Being processed, or released (left unsettled on purpose): the broker keeps it until
    /// it is settled or the channel closes.
    Held,
    /// To be settled so.
    To(Settle),
}

/// The deliveries of one consumer channel that no frame has settled yet, in tag order.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    entries: VecDeque<(u64, Entry)>,
}

impl Ledger {
    /// A delivery arrived. Tags grow on a channel, so it goes at the end.
    pub(super) fn deliver(&mut self, tag: u64) {
        debug_assert!(
            self.entries.back().is_none_or(|&(last, _)| last < tag),
            "delivery tags grow on a channel"
        );
        self.entries.push_back((tag, Entry::Held));
    }

    /// A delivery is to be settled. False if the ledger does not hold it.
    pub(super) fn settle(&mut self, tag: u64, how: Settle) -> bool {
        match self.entries.binary_search_by_key(&tag, |(t, _)| *t) {
            Ok(i) => {
                self.entries[i].1 = Entry::To(how);
                true
            }
            Err(_) => false,
        }
    }

    /// The frames that settle what is to be settled, each with the tags it settles; those
    /// deliveries leave the ledger. The frames may be written in any order.
    pub(super) fn frames(&mut self) -> Vec<(Frame, Vec<u64>)> {
        let mut frames = Vec::new();
        let mut run = Vec::new();
        while let Some(&(tag, Entry::To(Settle::Ack))) = self.entries.front() {
            run.push(tag);
            self.entries.pop_front();
        }
        if let Some(&last) = run.last() {
            let multiple = run.len() > 1;
            frames.push((
                Frame::Ack {
                    tag: last,
                    multiple,
                },
                run,
            ));
        }
        self.entries.retain(|&(tag, entry)| {
            let frame = match entry {
                Entry::Held => return true,
                Entry::To(Settle::Ack) => Frame::Ack {
                    tag,
                    multiple: false,
                },
                Entry::To(Settle::Nack { requeue }) => Frame::Nack { tag, requeue },
            };
            frames.push((frame, vec![tag]));
            false
        });
        frames
    }
}

/// A settlement handed to the settler task.
struct Request {
    tag: u64,
    how: Settle,
    /// Told when the frame that settles it is written (or failed); none for a nack from a
    /// dropped delivery, which nobody waits for.
    done: Option<oneshot::Sender<Result<(), String>>>,
    /// Whatever must stay alive until the frame is written (the consumer channel, which
    /// closes once the last holder is gone).
    _keep: Option<Arc<dyn Send + Sync>>,
}

/// The handle a consumer channel's deliveries settle through.
#[derive(Clone)]
pub(super) struct Settler {
    ledger: Arc<Mutex<Ledger>>,
    requests: mpsc::UnboundedSender<Request>,
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

impl Settler {
    /// Start the settler task of `channel`. It ends when every handle is gone.
    pub(super) fn start(channel: Channel) -> Settler {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(channel, ledger.clone(), rx));
        Settler { ledger, requests }
    }

    /// A delivery arrived on the channel.
    pub(super) fn deliver(&self, tag: u64) {
        lock(&self.ledger).deliver(tag);
    }

    /// Settle a delivery and wait until the frame that does is written.
    pub(super) async fn settle(&self, tag: u64, how: Settle) -> Result<(), String> {
        let (done, written) = oneshot::channel();
        let request = Request {
            tag,
            how,
            done: Some(done),
            _keep: None,
        };
        if self.requests.send(request).is_err() {
            return Err("the consumer's channel is closed".into());
        }
        written.await.unwrap_or_else(|_| {
            Err("the consumer's channel closed before the delivery was settled".into())
        })
    }

    /// Settle a delivery without waiting; `keep` lives until the frame is written.
    pub(super) fn settle_later(&self, tag: u64, how: Settle, keep: Arc<dyn Send + Sync>) {
        let _ = self.requests.send(Request {
            tag,
            how,
            done: None,
            _keep: Some(keep),
        });
    }
}

/// The settler task: take what is to be settled, let the deliveries finishing at the same
/// time join it, write the frames, tell the waiters.
async fn run(
    channel: Channel,
    ledger: Arc<Mutex<Ledger>>,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    // The first frame that failed. A delivery whose frame failed is out of the ledger but
    // maybe not settled on the broker, where a later `multiple` ack could cover it: so once
    // one fails, nothing more is written on this channel (lapin fails a frame only when the
    // channel is closed or broken anyway), and RabbitMQ gives back what it holds when the
    // channel goes.
    let mut broken: Option<String> = None;
    while let Some(first) = rx.recv().await {
        // Best effort: the deliveries finishing at the same moment (woken by the same
        // confirms) hand in theirs before the batch is taken.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        if let Some(error) = &broken {
            for request in batch {
                if let Some(done) = request.done {
                    let _ = done.send(Err(error.clone()));
                }
            }
            continue;
        }
        let frames = {
            let mut ledger = lock(&ledger);
            // Not in the ledger (it cannot happen: every delivery is entered before it is
            // handed out): settled on its own rather than not at all.
            let stray: Vec<(Frame, Vec<u64>)> = batch
                .iter()
                .filter(|r| !ledger.settle(r.tag, r.how))
                .map(|r| (single(r.tag, r.how), vec![r.tag]))
                .collect();
            let mut frames = ledger.frames();
            frames.extend(stray);
            frames
        };
        // Order does not matter: a `multiple` ack covers only the run at the ledger's head
        // (every earlier frame is written already), the others one delivery each.
        let written =
            futures::future::join_all(frames.iter().map(|(frame, _)| write(&channel, *frame)))
                .await;
        let results: Vec<(Vec<u64>, Result<(), String>)> = frames
            .into_iter()
            .map(|(_, tags)| tags)
            .zip(written)
            .collect();
        broken = results.iter().find_map(|(_, r)| r.clone().err());
        for request in batch {
            let result = results
                .iter()
                .find(|(tags, _)| tags.contains(&request.tag))
                .map_or(Ok(()), |(_, r)| r.clone());
            if let Some(done) = request.done {
                let _ = done.send(result);
            }
        }
    }
}

fn single(tag: u64, how: Settle) -> Frame {
    match how {
        Settle::Nack { requeue } => Frame::Nack { tag, requeue },
        Settle::Ack => Frame::Ack {
            tag,
            multiple: false,
        },
    }
}

async fn write(channel: &Channel, frame: Frame) -> Result<(), String> {
    let written = match frame {
        Frame::Ack { tag, multiple } => channel.basic_ack(tag, BasicAckOptions { multiple }).await,
        Frame::Nack { tag, requeue } => {
            channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue,
                    },
                )
                .await
        }
    };
    written.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(tags: &[u64]) -> Ledger {
        let mut l = Ledger::default();
        for &t in tags {
            l.deliver(t);
        }
        l
    }

    fn ack(tag: u64, multiple: bool) -> Frame {
        Frame::Ack { tag, multiple }
    }

    #[test]
    fn a_run_of_acks_at_the_head_is_one_multiple_ack() {
        let mut l = ledger(&[1, 2, 3, 4]);
        for t in [2, 1, 3] {
            assert!(l.settle(t, Settle::Ack));
        }
        assert_eq!(l.frames(), vec![(ack(3, true), vec![1, 2, 3])]);
        // Only 4 is left; settled alone, it is a plain ack.
        assert!(l.settle(4, Settle::Ack));
        assert_eq!(l.frames(), vec![(ack(4, false), vec![4])]);
        assert!(l.frames().is_empty());
    }

    #[test]
    fn a_delivery_in_hand_is_never_covered() {
        let mut l = ledger(&[1, 2, 3, 4, 5]);
        for t in [1, 3, 5] {
            l.settle(t, Settle::Ack);
        }
        // 2 and 4 are still being processed: 1 is acked alone, 3 and 5 each on its own.
        assert_eq!(
            l.frames(),
            vec![
                (ack(1, false), vec![1]),
                (ack(3, false), vec![3]),
                (ack(5, false), vec![5]),
            ]
        );
        l.settle(2, Settle::Ack);
        l.settle(4, Settle::Ack);
        assert_eq!(l.frames(), vec![(ack(4, true), vec![2, 4])]);
    }

    #[test]
    fn a_released_delivery_stays_unsettled_and_ends_the_run() {
        // 7 is released: its acker settles nothing, and the ledger keeps it.
        let mut l = ledger(&[7, 8, 9]);
        l.settle(8, Settle::Ack);
        l.settle(9, Settle::Ack);
        // A `multiple` ack of 9 would settle 7, which the channel's close must give back.
        assert_eq!(
            l.frames(),
            vec![(ack(8, false), vec![8]), (ack(9, false), vec![9])]
        );
        assert_eq!(l.entries, VecDeque::from(vec![(7, Entry::Held)]));
    }

    #[test]
    fn nacks_go_one_by_one_and_a_run_stops_before_them() {
        let mut l = ledger(&[1, 2, 3, 4]);
        l.settle(1, Settle::Ack);
        l.settle(2, Settle::Ack);
        l.settle(3, Settle::Nack { requeue: true });
        l.settle(4, Settle::Ack);
        assert_eq!(
            l.frames(),
            vec![
                (ack(2, true), vec![1, 2]),
                (
                    Frame::Nack {
                        tag: 3,
                        requeue: true
                    },
                    vec![3]
                ),
                (ack(4, false), vec![4]),
            ]
        );
        assert!(l.entries.is_empty());
    }

    #[test]
    fn an_unknown_tag_is_refused() {
        let mut l = ledger(&[1]);
        assert!(!l.settle(2, Settle::Ack));
        assert!(l.frames().is_empty());
    }
}
