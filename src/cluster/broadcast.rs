//! How shard 0 has every shard apply a metadata change: the records (`broadcast_records`,
//! each shard adopts them: `controller::adopt_records`) or the removal of deleted topics
//! (`broadcast_removal`, `deletion::remove_topics`), on this shard directly and on the others
//! through the mesh. What a shard does with them is `ShardApply` (implemented by the shard,
//! `shard::contexts_cluster`), so this module names no shard state.
//!
//! Invariants: every shard gets the same change; the call returns once every shard answered
//! (a shard that does not answer is logged, or counted as a failed removal).

use futures_util::future::{join_all, LocalBoxFuture};
use shards::{Mesh, ShardId};

use super::deletion::RemovalFailures;
use super::records::MetadataRecord;
use super::topics::TopicMeta;
use crate::shard::ShardMsg;

/// What one shard does with a broadcast change.
pub trait ShardApply {
    /// Applies the records to this shard's image and everything kept from it
    /// (`controller::adopt_records`).
    fn adopt(&self, records: Vec<MetadataRecord>) -> LocalBoxFuture<'_, ()>;
    /// Removes the topics' data and everything keyed by them on this shard
    /// (`deletion::remove_topics`); the topics whose data stayed.
    fn remove_topics(&self, doomed: Vec<TopicMeta>) -> LocalBoxFuture<'_, RemovalFailures>;
}

/// The shards a change goes to: this one (`local`) and the others (`mesh`).
#[derive(Clone, Copy)]
pub struct Broadcast<'a> {
    pub shard_id: ShardId,
    pub mesh: &'a Mesh<ShardMsg>,
    pub local: &'a dyn ShardApply,
}

/// Sends `records` to every shard (itself directly) and waits until all adopted them.
pub async fn broadcast_records(to: &Broadcast<'_>, records: Vec<MetadataRecord>) {
    let others = to.mesh.shards().filter(|&id| id != to.shard_id).map(|id| {
        let records = records.clone();
        async move {
            if let Err(e) = to
                .mesh
                .call(id, |reply| {
                    ShardMsg::run(move |shard| async move {
                        shard.adopt(records).await;
                        reply.send(());
                    })
                })
                .await
            {
                tracing::warn!(shard = %id, error = %e, "metadata broadcast not delivered");
            }
        }
    });
    let others: Vec<_> = others.collect();
    to.local.adopt(records).await;
    join_all(others).await;
}

/// Removes the topics' partitions on every shard; answers the topics whose data stayed.
pub async fn broadcast_removal(to: &Broadcast<'_>, doomed: &[TopicMeta]) -> RemovalFailures {
    let others = to.mesh.shards().filter(|&id| id != to.shard_id).map(|id| {
        let topics = doomed.to_vec();
        async move {
            match to
                .mesh
                .call(id, |reply| {
                    ShardMsg::run(move |shard| async move {
                        reply.send(shard.remove_topics(topics).await);
                    })
                })
                .await
            {
                Ok(failed) => failed,
                Err(e) => {
                    tracing::warn!(shard = %id, error = %e, "topic removal not delivered");
                    topics_of(doomed, &format!("shard {id} did not answer: {e}"))
                }
            }
        }
    });
    let others: Vec<_> = others.collect();
    let mut failed = to.local.remove_topics(doomed.to_vec()).await;
    for more in join_all(others).await {
        failed.extend(more);
    }
    failed
}

fn topics_of(doomed: &[TopicMeta], why: &str) -> RemovalFailures {
    doomed
        .iter()
        .map(|meta| (meta.name.clone(), why.to_owned()))
        .collect()
}
