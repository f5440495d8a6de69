//! Transaction markers to their partitions' owners: the seam the transaction coordinator
//! (WriteTxnMarkers, and its own marker writes after EndTxn or a timeout) calls from any
//! shard. Routes only: the marker is written by the owner's partition service.
//!
//! Invariant: exactly one answer per item, in the items' order (`Unavailable` for a shard that
//! did not answer).

use std::rc::Rc;

use super::Router;
use crate::partition::api::{MarkerItem, MarkerResult, PartitionMsg};
use crate::shard::Shard;

impl Router {
    /// Writes each marker on its partition's owning shard; answers in the items' order.
    pub async fn write_markers(&self, items: Vec<MarkerItem>) -> Vec<MarkerResult> {
        self.scatter(
            items,
            |item| self.owner(&item.tp),
            |items| self.shard.partitions.write_markers(items),
            |items, reply| PartitionMsg::WriteMarkers { items, reply }.into(),
        )
        .await
    }
}

/// [`Router::write_markers`] for callers holding the shard (the transaction coordinator).
pub async fn write_markers(shard: &Rc<Shard>, items: Vec<MarkerItem>) -> Vec<MarkerResult> {
    Router::new(shard.clone()).write_markers(items).await
}
