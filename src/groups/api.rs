//! The group coordinator's requests and answers (plain data: they cross shards in `GroupMsg`)
//! and its errors.

pub use super::code::GroupCode;
use super::codec;
use super::state::{JoinArgs, JoinReply, SyncArgs, SyncReply};

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("offsets topic partition {0} is not open on this shard")]
    NotLoaded(u32),
    #[error("corrupt offsets record: {0}")]
    Codec(#[from] codec::CodecError),
    #[error("offsets log: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("offsets partition: {0}")]
    Partition(#[from] crate::partition::PartitionError),
}

/// A request for one group (or, for `List`, for every group of a shard).
#[derive(Debug)]
pub enum GroupOp {
    Join {
        group: String,
        args: JoinArgs,
    },
    Sync {
        group: String,
        args: SyncArgs,
    },
    Heartbeat {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    Leave {
        group: String,
        members: Vec<(String, Option<String>)>,
    },
    Commit(CommitRequest),
    FetchOffsets {
        group: String,
        /// None: every committed offset of the group.
        topics: Option<Vec<(String, Vec<i32>)>>,
        /// OffsetFetch v7+ (KIP-447): a partition with pending transactional offsets answers
        /// UNSTABLE_OFFSET_COMMIT instead of its last committed offset.
        require_stable: bool,
    },
    Describe {
        group: String,
    },
    List,
    Delete {
        group: String,
    },
    DeleteOffsets {
        group: String,
        topics: Vec<(String, Vec<i32>)>,
    },
    /// A transaction's marker landed on offsets partition `partition`: its producer's pending
    /// TxnOffsetCommit offsets there become committed (or are dropped). Runs on the
    /// partition's owner (`groups::complete_txn`).
    CompleteTxn {
        partition: u32,
        producer_id: i64,
        commit: bool,
    },
}

impl GroupOp {
    /// The group the operation is about (None: ListGroups).
    pub fn group(&self) -> Option<&str> {
        match self {
            Self::Join { group, .. }
            | Self::Sync { group, .. }
            | Self::Heartbeat { group, .. }
            | Self::Leave { group, .. }
            | Self::FetchOffsets { group, .. }
            | Self::Describe { group }
            | Self::Delete { group }
            | Self::DeleteOffsets { group, .. } => Some(group),
            Self::Commit(c) => Some(&c.group),
            Self::List | Self::CompleteTxn { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    /// TxnOffsetCommit: the transactional producer; the offsets stay pending until its
    /// transaction's marker (None: OffsetCommit, visible at once).
    pub txn: Option<crate::coordinator_log::TxnProducer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error: GroupCode,
}

#[derive(Debug, Clone)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: bytes::Bytes,
    pub assignment: bytes::Bytes,
}

#[derive(Debug, Clone)]
pub struct Described {
    pub found: bool,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone)]
pub struct Listed {
    pub group: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// The answer to a `GroupOp` (`Error` when the op could not run at all).
#[derive(Debug)]
pub enum GroupAnswer {
    Join(JoinReply),
    Sync(SyncReply),
    /// Heartbeat, DeleteGroups: one code.
    Code(GroupCode),
    /// LeaveGroup: one code per member, in request order.
    Leave(Vec<GroupCode>),
    /// OffsetCommit / OffsetDelete: one code per partition, in request order.
    Partitions(Vec<(String, Vec<(i32, GroupCode)>)>),
    Fetched(Vec<(String, Vec<FetchedOffset>)>),
    Described(Described),
    Listed(Vec<Listed>),
    /// The op failed as a whole with this Kafka error code.
    Error(GroupCode),
}

/// The group coordinator's message to a group's owner shard.
pub struct GroupMsg {
    pub op: GroupOp,
    pub reply: shards::Reply<GroupAnswer>,
}
