//! Routing: which shard owns a partition, and the split / call / merge of requests that touch
//! partitions on several shards (as `ShardMsg`s, `shard::msg`). A `Router` borrows the narrow
//! `RouterContext` the shard builds (`shard::contexts_txn`); work for the registry shard goes
//! through `admin::Registry`, so routing never names the shard's state.
//!
//! Invariants: a partition operation always runs on the partition's owner (`Placement`); work
//! for the local shard is executed directly (no mailbox hop); answers come back in the order of
//! the request's items; every message type is `Send` and carries only owned data; an item for
//! a partition this broker does not lead in the metadata image never reaches a shard
//! (NOT_LEADER_OR_FOLLOWER, Kafka's ReplicaManager rule).

pub mod admin;
mod epoch_first;
pub mod markers;
pub mod placement;
pub mod split;

use std::cell::RefCell;
use std::future::Future;
use std::time::Instant;

use futures_util::future::join_all;
use shards::{Mesh, Reply, ShardId};

use crate::partition::api::PartitionMsg;
pub use crate::partition::api::{
    OffsetOk, OffsetQuery, OffsetResult, ProduceItem, ProduceOk, ProduceResult, ReadItem, ReadOk,
    ReadResult,
};
pub use crate::partition::PartitionError;
use crate::partition::{PartitionService, TopicPartition};
use crate::shard::ShardMsg;
use crate::topics::TopicError;

use self::admin::Registry;
pub use crate::cluster::controller::{CreateResult, NewTopic, REGISTRY_SHARD};

/// What routing uses of the shard it runs on (built by the shard, `shard::contexts_txn`):
/// where partitions live and which this broker leads, the partition service for local work,
/// the mesh for the other shards' work, and the registry for work shard 0 does.
#[derive(Clone, Copy)]
pub struct RouterContext<'a> {
    pub shard_id: ShardId,
    pub mesh: &'a Mesh<ShardMsg>,
    /// Which shard owns each partition.
    pub placement: &'a placement::PlacementTable,
    /// The metadata image: which partitions this broker leads, their leader epochs.
    pub image: &'a RefCell<crate::cluster::MetadataImage>,
    /// This broker (`node.id`).
    pub node_id: i32,
    /// A KRaft node (`process.roles` set), not the single node of old.
    pub is_cluster: bool,
    /// This shard's partitions (work for this shard runs on them directly).
    pub partitions: &'a PartitionService,
    /// This shard's block of producer ids.
    pub producer_ids: &'a crate::producers::IdAllocator,
    /// The controller's operations, run on the registry shard (`admin::Registry`).
    pub registry: &'a dyn Registry,
}

/// Per-request routing helper bound to the current shard.
pub struct Router<'a> {
    ctx: RouterContext<'a>,
}

impl<'a> Router<'a> {
    pub fn new(ctx: RouterContext<'a>) -> Self {
        Self { ctx }
    }

    fn owner(&self, tp: &TopicPartition) -> ShardId {
        self.ctx.placement.shard_for(&tp.topic, tp.partition)
    }

    /// Splits `items` by owning shard, runs each group on its owner (directly with `local_fn`
    /// when that is this shard, else as the message `make_msg` builds) and merges the answers
    /// back into the items' order; a shard that does not answer yields `Unavailable` for its
    /// items. Items for partitions this broker does not lead in the metadata image never reach
    /// a shard: they answer NOT_LEADER_OR_FOLLOWER (UNKNOWN_TOPIC_OR_PARTITION when the image
    /// does not have the partition), as Kafka's ReplicaManager does.
    pub(super) async fn scatter<T, R, F>(
        &self,
        items: Vec<T>,
        tp_of: impl Fn(&T) -> &TopicPartition,
        local_fn: impl Fn(Vec<T>) -> F,
        make_msg: impl Fn(Vec<T>, Reply<Vec<Result<R, PartitionError>>>) -> ShardMsg,
    ) -> Vec<Result<R, PartitionError>>
    where
        F: Future<Output = Vec<Result<R, PartitionError>>>,
        R: Send + 'static,
    {
        let (led, refused) = self.split_led(items, &tp_of);
        let groups = split::split(led, |item| self.owner(tp_of(item)));
        let (local_fn, make_msg) = (&local_fn, &make_msg);
        let mut calls = groups
            .groups
            .into_iter()
            .map(|(owner, (indices, items))| async move {
                let answers = if owner == self.ctx.shard_id {
                    local_fn(items).await
                } else {
                    let call = self.ctx.mesh.call(owner, |reply| make_msg(items, reply));
                    call.await.unwrap_or_default()
                };
                (indices, answers)
            });
        let unavailable = || Err(PartitionError::Unavailable);
        // One owner (the common case): its call awaited as it is, without `join_all`'s two
        // lists per request (issue 16).
        let one = match calls.len() {
            1 => calls.next(),
            _ => None,
        };
        let mut answers = match one {
            Some(call) => split::merge(groups.len, std::iter::once(call.await), unavailable),
            None => split::merge(groups.len, join_all(calls).await, unavailable),
        };
        if self.ctx.is_cluster {
            // The image names this broker the leader but the owner has not opened the
            // partition yet (a new topic a moment after its records applied): Kafka's
            // ReplicaManager answers NOT_LEADER_OR_FOLLOWER for a partition the metadata has
            // and the replica manager not yet, so the client refreshes and retries.
            for answer in &mut answers {
                if matches!(answer, Err(PartitionError::UnknownTopicOrPartition)) {
                    *answer = Err(PartitionError::NotLeaderOrFollower);
                }
            }
        }
        refused.merge(answers)
    }

    /// Separates the items of partitions this broker leads from the others (answered here).
    fn split_led<T>(
        &self,
        mut items: Vec<T>,
        tp_of: &impl Fn(&T) -> &TopicPartition,
    ) -> (Vec<T>, Refused) {
        let image = self.ctx.image.borrow();
        let node = self.ctx.node_id;
        let mut refused = Refused::default();
        // Kept in place, in order: no second list per request (issue 16).
        let mut index = 0;
        items.retain(|item| {
            let tp = tp_of(item);
            let led =
                match crate::cluster::view::check_leader(&image, &tp.topic, tp.partition, node) {
                    Ok(()) => true,
                    Err(true) => {
                        refused.push(index, PartitionError::NotLeaderOrFollower);
                        false
                    }
                    Err(false) => {
                        refused.push(index, PartitionError::UnknownTopicOrPartition);
                        false
                    }
                };
            index += 1;
            led
        });
        (items, refused)
    }

    pub async fn produce(&self, items: Vec<ProduceItem>, acks: i16) -> Vec<ProduceResult> {
        self.scatter(
            items,
            |item| &item.tp,
            |items| self.ctx.partitions.produce(items, acks),
            |items, reply| PartitionMsg::Produce { items, acks, reply }.into(),
        )
        .await
    }

    pub async fn read(&self, items: Vec<ReadItem>) -> Vec<ReadResult> {
        let asked = self.epochs_asked(&items, |i| (&i.tp, i.current_leader_epoch));
        let mut answers = self
            .scatter(
                items,
                |item| &item.tp,
                |items| self.ctx.partitions.read(items),
                |items, reply| PartitionMsg::Read { items, reply }.into(),
            )
            .await;
        self.epoch_before_leadership(&asked, &mut answers);
        answers
    }

    /// A follower's Fetch of partitions this broker leads (see
    /// `PartitionService::follower_fetch`); every owner long-polls until `deadline`.
    pub async fn follower_fetch(
        &self,
        replica_id: i32,
        items: Vec<crate::partition::api::FollowerFetchItem>,
        deadline: Instant,
    ) -> Vec<crate::partition::api::FollowerFetchResult> {
        let asked = self.epochs_asked(&items, |i| (&i.tp, i.current_leader_epoch));
        let mut answers = self
            .scatter(
                items,
                |item| &item.tp,
                |items| {
                    self.ctx
                        .partitions
                        .follower_fetch(replica_id, items, deadline)
                },
                |items, reply| {
                    PartitionMsg::FollowerFetch {
                        replica_id,
                        items,
                        deadline,
                        reply,
                    }
                    .into()
                },
            )
            .await;
        self.epoch_before_leadership(&asked, &mut answers);
        answers
    }

    /// Waits until any of the partitions has data past its offset, or until `deadline`.
    pub async fn wait_for_data(&self, items: Vec<(TopicPartition, i64)>, deadline: Instant) {
        self.wait_for(items, deadline, false).await;
    }

    /// `wait_for_data` for read_committed fetches: until any LSO passes its offset.
    pub async fn wait_for_stable_data(&self, items: Vec<(TopicPartition, i64)>, deadline: Instant) {
        self.wait_for(items, deadline, true).await;
    }

    /// A follower Fetch's long poll: until any partition's log end passes the follower's
    /// fetch offset (checked on the owner: `PartitionService::wait_follower`), or `deadline`.
    pub async fn wait_for_follower_data(
        &self,
        items: Vec<(TopicPartition, i64)>,
        deadline: Instant,
    ) {
        self.wait_on(items, deadline, WaitOn::FollowerData).await;
    }

    async fn wait_for(&self, items: Vec<(TopicPartition, i64)>, deadline: Instant, stable: bool) {
        let on = if stable {
            WaitOn::StableOffset
        } else {
            WaitOn::HighWatermark
        };
        self.wait_on(items, deadline, on).await;
    }

    async fn wait_on(&self, items: Vec<(TopicPartition, i64)>, deadline: Instant, on: WaitOn) {
        let groups = split::split(items, |(tp, _)| self.owner(tp));
        let waits = groups.groups.into_iter().map(|(owner, (_, items))| {
            Box::pin(async move {
                if owner == self.ctx.shard_id {
                    let partitions = self.ctx.partitions;
                    match on {
                        WaitOn::FollowerData => partitions.wait_follower(items, deadline).await,
                        WaitOn::HighWatermark | WaitOn::StableOffset => {
                            let stable = on == WaitOn::StableOffset;
                            partitions.wait_bounded(items, deadline, stable).await
                        }
                    }
                } else {
                    let call = self.ctx.mesh.call(owner, |reply| match on {
                        WaitOn::StableOffset => PartitionMsg::WaitStable {
                            items,
                            deadline,
                            reply,
                        }
                        .into(),
                        WaitOn::HighWatermark => PartitionMsg::Wait {
                            items,
                            deadline,
                            reply,
                        }
                        .into(),
                        WaitOn::FollowerData => PartitionMsg::WaitFollower {
                            items,
                            deadline,
                            reply,
                        }
                        .into(),
                    });
                    if call.await.is_err() {
                        // The owner is gone (shutdown): do not spin, sleep out the deadline.
                        compio::time::sleep_until(deadline).await;
                    }
                }
            })
        });
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            compio::time::sleep_until(deadline).await;
            return;
        }
        futures_util::future::select_all(waits).await;
    }

    pub async fn offsets(&self, items: Vec<OffsetQuery>) -> Vec<OffsetResult> {
        let asked = self.epochs_asked(&items, |i| (&i.tp, i.current_leader_epoch));
        let mut answers = self
            .scatter(
                items,
                |item| &item.tp,
                |items| self.ctx.partitions.offsets(items),
                |items, reply| PartitionMsg::Offsets { items, reply }.into(),
            )
            .await;
        self.epoch_before_leadership(&asked, &mut answers);
        answers
    }

    /// A producer id never handed out before (this shard's block, refilled from shard 0).
    pub async fn next_producer_id(
        &self,
    ) -> Result<crate::producers::ProducerId, crate::producers::IdError> {
        let ctx = &self.ctx;
        ctx.producer_ids
            .next_id(|| async {
                if ctx.shard_id == REGISTRY_SHARD {
                    return ctx.registry.allocate_producer_ids().await;
                }
                let call = ctx.mesh.call(REGISTRY_SHARD, |reply| {
                    ShardMsg::run(move |registry| async move {
                        reply.send(Registry::allocate_producer_ids(&*registry).await);
                    })
                });
                call.await
                    .unwrap_or(Err(crate::producers::IdError::Unavailable))
            })
            .await
    }

    /// Creates topics through shard 0; answers per topic in request order.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<CreateResult> {
        let len = topics.len();
        self.on_registry(
            topics,
            len,
            |topics| self.ctx.registry.create_topics(topics, validate_only),
            |topics, reply| {
                ShardMsg::run(move |registry| async move {
                    let created = Registry::create_topics(&*registry, topics, validate_only);
                    reply.send(created.await);
                })
            },
            || Err(TopicError::Io("registry shard unavailable".into())),
        )
        .await
    }

    /// Runs `request` (of `len` items) on the registry shard (directly with `local_fn` when
    /// that is this shard, else as the message `make_msg` builds); exactly `len` answers in
    /// order, `missing()` for those the registry shard did not give.
    pub(super) async fn on_registry<P, R, F>(
        &self,
        request: P,
        len: usize,
        local_fn: impl FnOnce(P) -> F,
        make_msg: impl FnOnce(P, Reply<Vec<R>>) -> ShardMsg,
        mut missing: impl FnMut() -> R,
    ) -> Vec<R>
    where
        F: Future<Output = Vec<R>>,
        R: Send + 'static,
    {
        let answers = if self.ctx.shard_id == REGISTRY_SHARD {
            local_fn(request).await
        } else {
            let call = self
                .ctx
                .mesh
                .call(REGISTRY_SHARD, |reply| make_msg(request, reply));
            call.await.unwrap_or_default()
        };
        let mut answers = answers.into_iter();
        (0..len)
            .map(|_| answers.next().unwrap_or_else(&mut missing))
            .collect()
    }
}

/// Items answered without reaching a shard, by their index in the request.
#[derive(Default)]
struct Refused {
    entries: Vec<(usize, PartitionError)>,
}

impl Refused {
    fn push(&mut self, index: usize, error: PartitionError) {
        self.entries.push((index, error));
    }

    /// Puts the refused items back at their indices among the routed items' answers.
    fn merge<R>(self, routed: Vec<Result<R, PartitionError>>) -> Vec<Result<R, PartitionError>> {
        if self.entries.is_empty() {
            return routed;
        }
        let total = routed.len() + self.entries.len();
        let mut refused = self.entries.into_iter().peekable();
        let mut routed = routed.into_iter();
        (0..total)
            .map(|index| match refused.next_if(|(i, _)| *i == index) {
                Some((_, error)) => Err(error),
                None => routed.next().unwrap_or(Err(PartitionError::Unavailable)),
            })
            .collect()
    }
}

/// What a long poll waits for on each owner: a consumer's data (past the high watermark, or
/// the LSO for read_committed), or a follower's (past the log end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitOn {
    HighWatermark,
    StableOffset,
    FollowerData,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_items_keep_their_places() {
        let mut refused = Refused::default();
        refused.push(0, PartitionError::NotLeaderOrFollower);
        refused.push(2, PartitionError::UnknownTopicOrPartition);
        let merged = refused.merge(vec![Ok(1), Ok(3)]);
        assert_eq!(
            merged,
            vec![
                Err(PartitionError::NotLeaderOrFollower),
                Ok(1),
                Err(PartitionError::UnknownTopicOrPartition),
                Ok(3),
            ]
        );
        assert_eq!(Refused::default().merge(vec![Ok(5)]), vec![Ok(5)]);
    }
}
