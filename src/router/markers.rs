//! Transaction markers to their partitions' owners: the seam the transaction coordinator
//! (WriteTxnMarkers, and its own marker writes after EndTxn or a timeout) calls from any
//! shard. Routes only: the marker is written by the owner's partition service. Also
//! DescribeProducers' reads of the partitions' producer state.
//!
//! Invariant: exactly one answer per item, in the items' order (`Unavailable` for a shard that
//! did not answer).

use super::Router;
use crate::partition::api::{
    MarkerItem, MarkerResult, PartitionMsg, ProducersResult, VerifyItem, VerifyResult,
};
use crate::partition::TopicPartition;

impl Router<'_> {
    /// Writes each marker on its partition's owning shard; answers in the items' order.
    pub async fn write_markers(&self, items: Vec<MarkerItem>) -> Vec<MarkerResult> {
        self.scatter(
            items,
            |item| &item.tp,
            |items| self.ctx.partitions.write_markers(items),
            |items, reply| PartitionMsg::WriteMarkers { items, reply }.into(),
        )
        .await
    }

    /// DescribeProducers: each partition's producers, read on its owner.
    pub async fn describe_producers(&self, items: Vec<TopicPartition>) -> Vec<ProducersResult> {
        self.scatter(
            items,
            |tp| tp,
            |items| async move { self.ctx.partitions.describe_producers(&items) },
            |items, reply| PartitionMsg::DescribeProducers { items, reply }.into(),
        )
        .await
    }
}

impl Router<'_> {
    /// KIP-890: starts the verification of each producer's transactional batch on its
    /// partition's owner (the guard to append with).
    pub async fn start_verification(&self, items: Vec<VerifyItem>) -> Vec<VerifyResult> {
        self.scatter(
            items,
            |item| &item.tp,
            |items| async move { self.ctx.partitions.start_verification(&items) },
            |items, reply| PartitionMsg::StartVerification { items, reply }.into(),
        )
        .await
    }
}
