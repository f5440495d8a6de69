//! Routing: which shard owns a partition, the messages shards exchange, and the split / call /
//! merge of requests that touch partitions on several shards.
//!
//! Invariants: a partition operation always runs on the partition's owner (`Placement`); work
//! for the local shard is executed directly (no mailbox hop); answers come back in the order of
//! the request's items; every message type is `Send` and carries only owned data.

pub mod admin;
pub mod local;
pub mod split;

use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::join_all;
use shards::{Reply, ShardId};

use crate::partition::TopicPartition;
use crate::shard::Shard;
use crate::topics::{TopicError, TopicMeta};

/// Why one partition's operation failed (crosses shards, so plain data).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PartitionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The topic id a fetch session holds is no longer in the metadata image (the topic was
    /// deleted, maybe re-created under a new id).
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    #[error("cannot append to internal topic {0}")]
    InternalTopic(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("broker is shutting down or shard unavailable")]
    Unavailable,
    #[error("{0}")]
    OutOfOrderSequence(String),
    #[error("{0}")]
    InvalidProducerEpoch(String),
    /// message.timestamp.before/after.max.ms refused a record's timestamp.
    #[error("{0}")]
    InvalidTimestamp(String),
    #[error("leader epoch {requested} is newer than the partition's {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("leader epoch {requested} is older than the partition's {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// The authorizer refused the operation on the topic (handlers::authz).
    #[error("Topic authorization failed.")]
    TopicAuthorizationFailed,
}

impl From<crate::partition::LeaderEpochError> for PartitionError {
    fn from(error: crate::partition::LeaderEpochError) -> Self {
        use crate::partition::LeaderEpochError as E;
        match error {
            E::Unknown { requested, current } => Self::UnknownLeaderEpoch { requested, current },
            E::Fenced { requested, current } => Self::FencedLeaderEpoch { requested, current },
        }
    }
}

impl PartitionError {
    /// Storage's typed errors to partition errors. I/O errors on the write path are fatal and
    /// never reach here (see `local::io_is_fatal`).
    pub fn from_storage(error: storage::StorageError) -> Self {
        use storage::StorageError as S;
        match error {
            S::CorruptBatch(msg) => Self::Corrupt(msg),
            // Damaged stored data: Kafka answers a fetch CORRUPT_MESSAGE (CorruptRecordException).
            e @ S::DamagedSegment { .. } => Self::Corrupt(e.to_string()),
            S::InvalidMagic(magic) => Self::Corrupt(format!("unsupported magic {magic}")),
            S::BatchTooLarge { size, max } => Self::TooLarge { size, max },
            S::InvalidRecord(msg) => Self::InvalidRecord(msg),
            S::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            } => Self::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            },
            other => Self::Storage(other.to_string()),
        }
    }

    /// An idempotent batch the producer state refused.
    pub fn from_sequence(error: crate::producers::SequenceError) -> Self {
        use crate::producers::SequenceError as S;
        let message = error.to_string();
        match error {
            S::OutOfOrder { .. } => Self::OutOfOrderSequence(message),
            S::InvalidEpoch { .. } => Self::InvalidProducerEpoch(message),
            S::InvalidSequence { .. } => Self::InvalidRecord(message),
        }
    }
}

/// One partition's produce payload: the batches as received.
#[derive(Debug)]
pub struct ProduceItem {
    pub tp: TopicPartition,
    pub records: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceOk {
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

pub type ProduceResult = Result<ProduceOk, PartitionError>;

/// One partition read of a fetch.
#[derive(Debug, Clone)]
pub struct ReadItem {
    pub tp: TopicPartition,
    pub offset: i64,
    pub max_bytes: u32,
    /// Return the first batch even when it alone exceeds `max_bytes` (KIP-74: only for the
    /// first partition of a response that has data).
    pub min_one_batch: bool,
    /// KIP-320: the leader epoch the client believes current; -1 skips the check.
    pub current_leader_epoch: i32,
}

/// A partition's state plus the batches read (a `ReadSlice`: file ranges, not bytes yet).
#[derive(Debug)]
pub struct ReadOk {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub slice: Option<storage::ReadSlice>,
}

impl ReadOk {
    pub fn bytes(&self) -> u32 {
        self.slice.as_ref().map_or(0, |s| s.total_bytes)
    }
}

pub type ReadResult = Result<ReadOk, PartitionError>;

/// ListOffsets / OffsetForLeaderEpoch query: Kafka's special timestamps (-1 latest, -2
/// earliest, -3 max timestamp, -4 earliest local) or a timestamp in ms.
#[derive(Debug, Clone)]
pub struct OffsetQuery {
    pub tp: TopicPartition,
    pub timestamp: i64,
    /// KIP-320: the leader epoch the client believes current; -1 skips the check.
    pub current_leader_epoch: i32,
    /// OffsetForLeaderEpoch: answer the end offset of this leader epoch (from the partition's
    /// leader-epoch cache) instead of a timestamp lookup.
    pub end_of_epoch: Option<i32>,
}

/// (offset, timestamp); offset -1 when no batch matches the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetOk {
    pub offset: i64,
    pub timestamp: i64,
    /// The leader epoch of `offset` (for OffsetForLeaderEpoch: the epoch answered); -1 unknown.
    pub leader_epoch: i32,
}

pub type OffsetResult = Result<OffsetOk, PartitionError>;

/// A topic to create (already name-checked by the handler or not: shard 0 re-validates).
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: crate::topics::config::TopicOverrides,
    /// CreateTopics' manual replica assignment: one broker list per partition.
    pub assignments: Option<Vec<Vec<i32>>>,
}

pub type CreateResult = Result<TopicMeta, TopicError>;

/// Every message a shard can receive from another.
pub enum ShardMsg {
    Produce {
        items: Vec<ProduceItem>,
        acks: i16,
        reply: Reply<Vec<ProduceResult>>,
    },
    Read {
        items: Vec<ReadItem>,
        reply: Reply<Vec<ReadResult>>,
    },
    /// Answered when any listed partition's high watermark passes its offset, or at `deadline`.
    Wait {
        items: Vec<(TopicPartition, i64)>,
        deadline: Instant,
        reply: Reply<()>,
    },
    Offsets {
        items: Vec<OffsetQuery>,
        reply: Reply<Vec<OffsetResult>>,
    },
    /// Only to shard 0: validate, persist, broadcast, then answer.
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: Reply<Vec<CreateResult>>,
    },
    /// From the controller (shard 0) to every shard: apply these metadata records to the
    /// shard's image, then open the partitions owned here (`cluster::controller`).
    MetadataChanged {
        records: Vec<crate::cluster::MetadataRecord>,
        reply: Reply<()>,
    },
    /// Answered once the shard serves its inbox (startup barrier).
    Ping { reply: Reply<()> },
    /// From the shard serving /metrics: this shard's metrics now.
    Metrics {
        reply: Reply<crate::metrics::ShardSnapshot>,
    },
    /// To a group's coordinator shard (see `groups::route`).
    Group {
        op: crate::groups::GroupOp,
        reply: Reply<crate::groups::GroupAnswer>,
    },
    /// Only to shard 0: delete topics, add partitions or change configs (see `admin`).
    Admin {
        change: admin::RegistryChange,
        reply: Reply<Vec<admin::ChangeResult>>,
    },
    /// Only to shard 0: change the dynamic broker configs of one BROKER resource.
    BrokerConfigs {
        scope: crate::topics::dynamic::Scope,
        change: crate::topics::dynamic::BrokerChange,
        validate_only: bool,
        reply: Reply<Result<(), admin::AdminError>>,
    },
    /// From shard 0 to every shard: forget these topics, delete the partitions owned here.
    TopicsRemoved {
        topics: Vec<TopicMeta>,
        reply: Reply<crate::cluster::deletion::RemovalFailures>,
    },
    DeleteRecords {
        items: Vec<admin::DeleteRecordsItem>,
        reply: Reply<Vec<admin::DeleteRecordsResult>>,
    },
    /// Only to shard 0: reserve (and persist) the next block of producer ids.
    ProducerIdBlock {
        reply: Reply<Result<crate::producers::IdBlock, crate::producers::IdError>>,
    },
}

/// The shard that owns the topic registry.
pub const REGISTRY_SHARD: ShardId = ShardId(0);

/// Per-request routing helper bound to the current shard.
pub struct Router {
    shard: Rc<Shard>,
}

impl Router {
    pub fn new(shard: Rc<Shard>) -> Self {
        Self { shard }
    }

    fn owner(&self, tp: &TopicPartition) -> ShardId {
        self.shard.placement.shard_for(&tp.topic, tp.partition)
    }

    /// Splits `items` by owning shard, runs each group on its owner (directly with `local_fn`
    /// when that is this shard, else as the message `make_msg` builds) and merges the answers
    /// back into the items' order; a shard that does not answer yields `Unavailable` for its
    /// items.
    pub(super) async fn scatter<T, R, F>(
        &self,
        items: Vec<T>,
        owner_of: impl Fn(&T) -> ShardId,
        local_fn: impl Fn(Vec<T>) -> F,
        make_msg: impl Fn(Vec<T>, Reply<Vec<Result<R, PartitionError>>>) -> ShardMsg,
    ) -> Vec<Result<R, PartitionError>>
    where
        F: Future<Output = Vec<Result<R, PartitionError>>>,
        R: Send + 'static,
    {
        let groups = split::split(items, owner_of);
        let (local_fn, make_msg) = (&local_fn, &make_msg);
        let calls = groups
            .groups
            .into_iter()
            .map(|(owner, (indices, items))| async move {
                let answers = if owner == self.shard.id {
                    local_fn(items).await
                } else {
                    let call = self.shard.mesh.call(owner, |reply| make_msg(items, reply));
                    call.await.unwrap_or_default()
                };
                (indices, answers)
            });
        split::merge(groups.len, join_all(calls).await, || {
            Err(PartitionError::Unavailable)
        })
    }

    pub async fn produce(&self, items: Vec<ProduceItem>, acks: i16) -> Vec<ProduceResult> {
        self.scatter(
            items,
            |item| self.owner(&item.tp),
            |items| local::produce(&self.shard, items, acks),
            |items, reply| ShardMsg::Produce { items, acks, reply },
        )
        .await
    }

    pub async fn read(&self, items: Vec<ReadItem>) -> Vec<ReadResult> {
        self.scatter(
            items,
            |item| self.owner(&item.tp),
            |items| local::read(&self.shard, items),
            |items, reply| ShardMsg::Read { items, reply },
        )
        .await
    }

    /// Waits until any of the partitions has data past its offset, or until `deadline`.
    pub async fn wait_for_data(&self, items: Vec<(TopicPartition, i64)>, deadline: Instant) {
        let groups = split::split(items, |(tp, _)| self.owner(tp));
        let waits = groups.groups.into_iter().map(|(owner, (_, items))| {
            Box::pin(async move {
                if owner == self.shard.id {
                    local::wait(&self.shard, items, deadline).await;
                } else {
                    let call = self.shard.mesh.call(owner, |reply| ShardMsg::Wait {
                        items,
                        deadline,
                        reply,
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
        self.scatter(
            items,
            |item| self.owner(&item.tp),
            |items| local::offsets(&self.shard, items),
            |items, reply| ShardMsg::Offsets { items, reply },
        )
        .await
    }

    /// A producer id never handed out before (this shard's block, refilled from shard 0).
    pub async fn next_producer_id(
        &self,
    ) -> Result<crate::producers::ProducerId, crate::producers::IdError> {
        let shard = &self.shard;
        shard
            .producer_ids
            .next_id(|| async {
                if shard.id == REGISTRY_SHARD {
                    return crate::cluster::controller::allocate_producer_ids(shard).await;
                }
                let call = shard
                    .mesh
                    .call(REGISTRY_SHARD, |reply| ShardMsg::ProducerIdBlock { reply });
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
            |topics| crate::cluster::controller::create_topics(&self.shard, topics, validate_only),
            |topics, reply| ShardMsg::CreateTopics {
                topics,
                validate_only,
                reply,
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
        let answers = if self.shard.id == REGISTRY_SHARD {
            local_fn(request).await
        } else {
            let call = self
                .shard
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
