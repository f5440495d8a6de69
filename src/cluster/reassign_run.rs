//! Runs the reassignment APIs on the controller (`cluster::reassign` decides, from an image,
//! what they change): AlterPartitionReassignments committed under the registry lock before
//! its answer, ListPartitionReassignments from the controller's image. Kept apart from
//! `reassign` so that the AlterPartition path (`alter_partition`), which completes moves, does
//! not import the controller.

use super::controller::{self, CommitError, ControllerContext};
use super::image::MetadataImage;
use super::reassign::{
    alter_reassignments, list_reassignments, Ongoing, ReassignRequest, ReassignResults,
};

/// The image the controller decides from: the committed one on a KRaft node (only its active
/// controller decides), this shard's on a single node.
fn controller_image(shard: &ControllerContext<'_>) -> Result<MetadataImage, CommitError> {
    match &shard.cluster {
        Some(node) if node.is_active_controller() => Ok(node.image.current().image),
        Some(_) => Err(CommitError::NotController),
        None => Ok(shard.image.borrow().clone()),
    }
}

/// Runs AlterPartitionReassignments on the registry shard of the controller: computed from the
/// committed image and committed before the answer, under the registry lock.
pub async fn run_alter(
    shard: &ControllerContext<'_>,
    request: ReassignRequest,
    allow_replication_factor_change: bool,
) -> Result<ReassignResults, CommitError> {
    controller_image(shard)?;
    let _guard = shard.registry_lock.lock().await;
    let image = controller_image(shard)?;
    let unclean = |topic: &str| unclean_for_topic(shard, &image, topic);
    let (records, results) =
        alter_reassignments(&image, &request, allow_replication_factor_change, unclean);
    if !records.is_empty() {
        tracing::info!(partitions = records.len(), "partition reassignment changed");
        controller::commit(shard, records).await?;
    }
    Ok(results)
}

/// Runs ListPartitionReassignments against the controller's image.
pub fn run_list(
    shard: &ControllerContext<'_>,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<Ongoing>)>, CommitError> {
    let image = controller_image(shard)?;
    Ok(list_reassignments(&image, wanted.as_deref()))
}

/// `unclean.leader.election.enable` for `topic`: its override, else the broker's.
fn unclean_for_topic(shard: &ControllerContext<'_>, image: &MetadataImage, topic: &str) -> bool {
    let dynamic = shard.dynamic_configs.borrow().clone();
    let configs = image
        .get(topic)
        .map(|m| m.configs.clone())
        .unwrap_or_default();
    crate::topics::dynamic::resolve_with(shard.default_log, &dynamic, &configs)
        .is_ok_and(|c| c.unclean_leader_election_enable)
}
