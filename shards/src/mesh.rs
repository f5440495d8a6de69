//! Typed, bounded mailboxes between shards.
//!
//! Invariants:
//! - every inbox is a bounded flume channel of `mailbox_capacity` messages, so a slow shard slows
//!   its senders (`send` waits) instead of growing a queue;
//! - a `Mesh` holds exactly one sender per shard, indexed by `ShardId`; an id out of range is a
//!   typed error, never a panic;
//! - a request/response (`call`) carries its own one-shot `Reply`, so the callee needs no routing
//!   table to answer;
//! - a `call` never waits forever on a gone shard: dropping an `Inbox` drops every request still
//!   queued for it (and so their `Reply`s), and later sends fail with `Closed`.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use futures_channel::oneshot;

use crate::{MeshError, ShardId};

/// The sending side of one shard's inbox.
///
/// flume keeps queued messages alive after the last receiver is gone, so a `call` whose request
/// was still queued would wait forever. Hence `closed` plus a receiver clone: a dropped `Inbox`
/// sets `closed` and drains the queue, and a sender that finds `closed` set after its push
/// drains whatever it may have stranded. Dropping a request drops its `Reply`, and the caller
/// gets `MeshError::Closed`.
struct Slot<M> {
    tx: flume::Sender<M>,
    rx: flume::Receiver<M>,
    closed: Arc<AtomicBool>,
}

impl<M> Slot<M> {
    fn check_open(&self) -> Result<(), MeshError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(MeshError::Closed)
        } else {
            Ok(())
        }
    }

    /// Called after a successful push. The fence pairs with the one in `Inbox::drop`: either
    /// this load sees `closed`, or the inbox's drain sees the pushed message.
    fn after_push(&self) {
        fence(Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            drain(&self.rx);
        }
    }
}

fn drain<M>(rx: &flume::Receiver<M>) {
    // Terminates: the inbox is closed, so new pushes stop once every in-flight sender is done,
    // and each message is removed at most once.
    while rx.try_recv().is_ok() {}
}

/// Handles to every shard's inbox. Cheap to clone; `Send + Sync` when `M: Send`.
pub struct Mesh<M> {
    slots: Arc<[Slot<M>]>,
}

impl<M> Clone for Mesh<M> {
    fn clone(&self) -> Self {
        Self {
            slots: Arc::clone(&self.slots),
        }
    }
}

impl<M> std::fmt::Debug for Mesh<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("shard_count", &self.slots.len())
            .finish()
    }
}

impl<M: Send + 'static> Mesh<M> {
    /// Builds the mailboxes for `shard_count` shards: the mesh, and the inbox of shard i at
    /// position i. `run` does this itself; it is public for tests that drive shards by hand.
    pub fn new(shard_count: usize, mailbox_capacity: usize) -> (Mesh<M>, Vec<Inbox<M>>) {
        assert!(mailbox_capacity > 0, "a mailbox needs room for one message");
        let (slots, inboxes): (Vec<_>, Vec<_>) = (0..shard_count)
            .map(|_| {
                let (tx, rx) = flume::bounded(mailbox_capacity);
                let closed = Arc::new(AtomicBool::new(false));
                let inbox = Inbox {
                    rx: rx.clone(),
                    closed: Arc::clone(&closed),
                };
                (Slot { tx, rx, closed }, inbox)
            })
            .unzip();
        let mesh = Mesh {
            slots: slots.into(),
        };
        (mesh, inboxes)
    }

    pub fn shard_count(&self) -> usize {
        self.slots.len()
    }

    pub fn shards(&self) -> impl Iterator<Item = ShardId> {
        // shard_count <= 65536 (checked by `run`), so every index fits in u16.
        (0..self.slots.len()).map(|index| ShardId(index as u16))
    }

    /// Queues `msg` for shard `to`, waiting while its inbox is full. `Ok` means queued, not
    /// processed: a shard that returns drops what is still queued for it.
    pub async fn send(&self, to: ShardId, msg: M) -> Result<(), MeshError> {
        let slot = self.slot(to)?;
        slot.check_open()?;
        slot.tx
            .send_async(msg)
            .await
            .map_err(|_| MeshError::Closed)?;
        slot.after_push();
        Ok(())
    }

    /// Queues `msg` for shard `to` only if its inbox has room now.
    pub fn try_send(&self, to: ShardId, msg: M) -> Result<(), MeshError> {
        let slot = self.slot(to)?;
        slot.check_open()?;
        slot.tx.try_send(msg).map_err(|error| match error {
            flume::TrySendError::Full(_) => MeshError::Full,
            flume::TrySendError::Disconnected(_) => MeshError::Closed,
        })?;
        slot.after_push();
        Ok(())
    }

    /// Sends the message built around a fresh `Reply<R>` and waits for the answer; `Closed`
    /// when the target inbox is gone or the `Reply` is dropped unanswered.
    pub async fn call<R: Send + 'static>(
        &self,
        to: ShardId,
        make: impl FnOnce(Reply<R>) -> M,
    ) -> Result<R, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.send(to, make(Reply { tx })).await?;
        rx.await.map_err(|_| MeshError::Closed)
    }

    /// Number of messages waiting in shard `to`'s inbox (for metrics and tests).
    pub fn queued(&self, to: ShardId) -> Result<usize, MeshError> {
        Ok(self.slot(to)?.tx.len())
    }

    fn slot(&self, to: ShardId) -> Result<&Slot<M>, MeshError> {
        self.slots.get(to.index()).ok_or(MeshError::UnknownShard {
            shard: to,
            shard_count: self.slots.len(),
        })
    }
}

/// The answer half of a `Mesh::call`.
#[derive(Debug)]
pub struct Reply<R> {
    tx: oneshot::Sender<R>,
}

impl<R> Reply<R> {
    /// Answers the caller. A caller that stopped waiting is not an error: the value is dropped.
    pub fn send(self, value: R) {
        let _ = self.tx.send(value);
    }

    /// True when the caller stopped waiting, so the callee may skip the work.
    pub fn is_canceled(&self) -> bool {
        self.tx.is_canceled()
    }
}

/// One shard's receiving end.
#[derive(Debug)]
pub struct Inbox<M> {
    rx: flume::Receiver<M>,
    closed: Arc<AtomicBool>,
}

impl<M> Drop for Inbox<M> {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Pairs with the fence in `Slot::after_push`.
        fence(Ordering::SeqCst);
        drain(&self.rx);
    }
}

impl<M> Inbox<M> {
    /// Next message; `None` once every `Mesh` (every sender) is gone and the inbox is empty.
    pub async fn recv(&self) -> Option<M> {
        self.rx.recv_async().await.ok()
    }

    /// Next message if one is waiting now.
    pub fn try_recv(&self) -> Option<M> {
        self.rx.try_recv().ok()
    }

    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("compio runtime")
            .block_on(future)
    }

    #[test]
    fn send_then_recv_in_order() {
        let (mesh, inboxes) = Mesh::<u32>::new(2, 4);
        block_on(async {
            mesh.send(ShardId(1), 7).await.expect("send");
            mesh.send(ShardId(1), 8).await.expect("send");
            assert_eq!(mesh.queued(ShardId(1)), Ok(2));
            assert_eq!(inboxes[1].recv().await, Some(7));
            assert_eq!(inboxes[1].recv().await, Some(8));
            assert!(inboxes[0].is_empty());
        });
    }

    #[test]
    fn back_pressure_full_then_pending_send_completes_after_recv() {
        let (mesh, inboxes) = Mesh::<u32>::new(1, 2);
        let to = ShardId(0);
        assert_eq!(mesh.try_send(to, 1), Ok(()));
        assert_eq!(mesh.try_send(to, 2), Ok(()));
        assert_eq!(mesh.try_send(to, 3), Err(MeshError::Full));
        block_on(async {
            let mut pending = pin!(mesh.send(to, 4));
            assert!(futures_util::poll!(pending.as_mut()).is_pending());
            assert!(futures_util::poll!(pending.as_mut()).is_pending());
            assert_eq!(inboxes[0].recv().await, Some(1));
            assert_eq!(pending.await, Ok(()));
            assert_eq!(inboxes[0].try_recv(), Some(2));
            assert_eq!(inboxes[0].try_recv(), Some(4));
            assert_eq!(inboxes[0].try_recv(), None);
        });
    }

    #[test]
    fn send_to_dropped_inbox_is_closed() {
        let (mesh, mut inboxes) = Mesh::<u32>::new(2, 2);
        drop(inboxes.pop());
        assert_eq!(mesh.try_send(ShardId(1), 1), Err(MeshError::Closed));
        block_on(async {
            assert_eq!(mesh.send(ShardId(1), 1).await, Err(MeshError::Closed));
            let answer = mesh.call(ShardId(1), |_: Reply<u32>| 5).await;
            assert_eq!(answer, Err(MeshError::Closed));
        });
    }

    enum Request {
        Double(u32, Reply<u32>),
    }

    #[test]
    fn call_gets_the_answer() {
        let (mesh, inboxes) = Mesh::<Request>::new(2, 2);
        block_on(async {
            let mut call = pin!(mesh.call(ShardId(1), |reply| Request::Double(21, reply)));
            assert!(futures_util::poll!(call.as_mut()).is_pending());
            match inboxes[1].recv().await {
                Some(Request::Double(value, reply)) => reply.send(value * 2),
                None => panic!("request lost"),
            }
            assert_eq!(call.await, Ok(42));
        });
    }

    #[test]
    fn dropped_reply_is_closed() {
        let (mesh, inboxes) = Mesh::<Request>::new(1, 2);
        block_on(async {
            let mut call = pin!(mesh.call(ShardId(0), |reply| Request::Double(1, reply)));
            assert!(futures_util::poll!(call.as_mut()).is_pending());
            drop(inboxes[0].recv().await);
            assert_eq!(call.await, Err(MeshError::Closed));
        });
    }

    #[test]
    fn queued_call_is_closed_when_inbox_drops() {
        let (mesh, mut inboxes) = Mesh::<Request>::new(1, 2);
        block_on(async {
            let mut call = pin!(mesh.call(ShardId(0), |reply| Request::Double(1, reply)));
            assert!(futures_util::poll!(call.as_mut()).is_pending());
            assert_eq!(mesh.queued(ShardId(0)), Ok(1));
            drop(inboxes.pop());
            assert_eq!(mesh.queued(ShardId(0)), Ok(0));
            assert_eq!(call.await, Err(MeshError::Closed));
        });
    }

    #[test]
    fn call_waiting_on_a_full_inbox_is_closed_when_inbox_drops() {
        let (mesh, mut inboxes) = Mesh::<Request>::new(1, 1);
        let (filler, _answer) = oneshot::channel();
        assert_eq!(
            mesh.try_send(ShardId(0), Request::Double(0, Reply { tx: filler })),
            Ok(())
        );
        block_on(async {
            let mut call = pin!(mesh.call(ShardId(0), |reply| Request::Double(1, reply)));
            assert!(futures_util::poll!(call.as_mut()).is_pending());
            drop(inboxes.pop());
            assert_eq!(call.await, Err(MeshError::Closed));
            assert_eq!(mesh.queued(ShardId(0)), Ok(0));
        });
    }

    #[test]
    fn reply_to_gone_caller_is_ignored() {
        let (tx, rx) = oneshot::channel::<u32>();
        drop(rx);
        let reply = Reply { tx };
        assert!(reply.is_canceled());
        reply.send(1);
    }

    #[test]
    fn unknown_shard_is_an_error() {
        let (mesh, _inboxes) = Mesh::<u32>::new(2, 2);
        let expected = Err(MeshError::UnknownShard {
            shard: ShardId(2),
            shard_count: 2,
        });
        assert_eq!(mesh.try_send(ShardId(2), 1), expected);
        block_on(async {
            assert!(matches!(
                mesh.send(ShardId(9), 1).await,
                Err(MeshError::UnknownShard { .. })
            ));
            assert_eq!(
                mesh.call(ShardId(2), |_: Reply<u32>| 1).await,
                expected.map(|()| 0)
            );
        });
        assert_eq!(
            mesh.shards().collect::<Vec<_>>(),
            vec![ShardId(0), ShardId(1)]
        );
    }

    #[test]
    fn recv_is_none_when_all_senders_are_gone() {
        let (mesh, inboxes) = Mesh::<u32>::new(1, 2);
        assert_eq!(mesh.try_send(ShardId(0), 3), Ok(()));
        drop(mesh);
        block_on(async {
            assert_eq!(inboxes[0].recv().await, Some(3));
            assert_eq!(inboxes[0].recv().await, None);
        });
    }
}
