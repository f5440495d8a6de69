//! A led partition as the partition service serves it: the single-replica [`Partition`] or the
//! replicated leader ([`ReplicatedPartition`]), behind one [`PartitionProxy`] by delegation
//! (the trait's async methods make it unusable as `dyn`, so an enum is the seam's runtime
//! form).
//!
//! Invariants: a handle delegates every call unchanged; which variant a partition has is
//! decided by the partition service (`PartitionService::make_replicated`) only.

use std::rc::Rc;

use futures_channel::oneshot;

use super::api::{DeleteRecordsResult, OffsetOk, ReadOk};
use super::proxy::{AppendRequest, Appended, PartitionProxy};
use super::replicated::ReplicatedPartition;
use super::{LeaderEpochError, Partition, PartitionError, TopicPartition};

/// See the module documentation.
#[derive(Clone)]
pub enum PartitionHandle {
    Local(Rc<Partition>),
    Replicated(Rc<ReplicatedPartition>),
}

macro_rules! delegate {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            PartitionHandle::Local($p) => $call,
            PartitionHandle::Replicated($p) => $call,
        }
    };
}

impl PartitionHandle {
    /// [`PartitionProxy::append`] without wrapping the handle in an `Rc` (the produce path).
    pub async fn append_request(self, request: AppendRequest) -> Result<Appended, PartitionError> {
        match self {
            PartitionHandle::Local(p) if p.is_following() => {
                Err(PartitionError::NotLeaderOrFollower)
            }
            PartitionHandle::Local(p) => p.append(request).await,
            PartitionHandle::Replicated(p) => p.append(request).await,
        }
    }
}

impl PartitionHandle {
    /// The single-replica partition that holds the log (the leader's own, when replicated):
    /// transaction markers, producer views and epoch look-ups act on it.
    pub fn local(&self) -> &Rc<Partition> {
        match self {
            PartitionHandle::Local(p) => p,
            PartitionHandle::Replicated(p) => p.local(),
        }
    }

    /// See [`Partition::write_marker`]; a replicated leader's marker replicates like any batch.
    pub async fn write_marker(
        &self,
        item: super::api::MarkerItem,
        now_ms: i64,
        durable: bool,
    ) -> super::api::MarkerResult {
        self.local()
            .clone()
            .write_marker(item, now_ms, durable)
            .await?;
        match self {
            PartitionHandle::Local(_) => Ok(()),
            PartitionHandle::Replicated(p) => p.await_marker_replication(now_ms).await,
        }
    }

    /// See [`Partition::epoch_of_offset`].
    pub fn epoch_of_offset(&self, offset: i64) -> i32 {
        self.local().epoch_of_offset(offset)
    }

    /// See [`Partition::producer_views`].
    pub fn producer_views(&self) -> Vec<crate::producers::ProducerView> {
        self.local().producer_views()
    }
}

impl PartitionProxy for PartitionHandle {
    fn topic_partition(&self) -> &TopicPartition {
        delegate!(self, p => p.topic_partition())
    }

    fn log_start_offset(&self) -> i64 {
        delegate!(self, p => p.log_start_offset())
    }

    fn log_end_offset(&self) -> i64 {
        delegate!(self, p => p.log_end_offset())
    }

    fn high_watermark(&self) -> i64 {
        delegate!(self, p => p.high_watermark())
    }

    fn last_stable_offset(&self) -> i64 {
        delegate!(self, p => p.last_stable_offset())
    }

    fn leader_epoch(&self) -> i32 {
        delegate!(self, p => PartitionProxy::leader_epoch(p.as_ref()))
    }

    fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), LeaderEpochError> {
        delegate!(self, p => p.check_leader_epoch(current_leader_epoch))
    }

    async fn append(self: Rc<Self>, request: AppendRequest) -> Result<Appended, PartitionError> {
        match self.as_ref() {
            PartitionHandle::Local(p) if p.is_following() => {
                Err(PartitionError::NotLeaderOrFollower)
            }
            PartitionHandle::Local(p) => p.clone().append(request).await,
            PartitionHandle::Replicated(p) => p.clone().append(request).await,
        }
    }

    async fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        current_leader_epoch: i32,
        read_committed: bool,
    ) -> Result<ReadOk, PartitionError> {
        delegate!(self, p => p
            .read(offset, max_bytes, min_one_batch, current_leader_epoch, read_committed)
            .await)
    }

    async fn offset_for_timestamp(&self, timestamp: i64) -> Result<OffsetOk, PartitionError> {
        delegate!(self, p => p.offset_for_timestamp(timestamp).await)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        delegate!(self, p => p.end_offset_for_epoch(epoch))
    }

    async fn delete_records(&self, offset: i64) -> DeleteRecordsResult {
        delegate!(self, p => p.delete_records(offset).await)
    }

    fn subscribe(&self) -> Option<oneshot::Receiver<()>> {
        delegate!(self, p => p.subscribe())
    }
}
