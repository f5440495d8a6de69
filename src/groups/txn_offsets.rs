//! Transactional offset commits (TxnOffsetCommit, KIP-98/447): the group coordinator's side.
//!
//! A TxnOffsetCommit is validated against the group like Kafka's classic group
//! (`doTxnCommitOffsets`: a named member must exist, a generation >= 0 must be the group's),
//! written to the group's offsets partition as a transactional batch carrying the producer's
//! id and epoch (`store::append_txn_locked`), and kept in `GroupEntry::pending_txn`, invisible
//! to OffsetFetch. When the transaction's marker has been written to that offsets partition
//! the transaction coordinator calls `complete` there: COMMIT moves the producer's pending
//! offsets into the committed ones, ABORT drops them. A replay does the same from the log's
//! transactional batches and control batches (`store`).
//!
//! Invariant: pending offsets change only under the offsets partition's lock, like commits.

use super::code::GroupCode;
use super::table::GroupEntry;
use super::GroupContext;
use super::{CommitRequest, GroupAnswer};

/// Kafka's member/generation check of a TxnOffsetCommit on an existing group.
pub fn validate(entry: &GroupEntry, request: &CommitRequest) -> GroupCode {
    let group = &entry.group;
    if !request.member_id.is_empty() && !group.members().any(|m| m.id == request.member_id) {
        return GroupCode::UnknownMemberId;
    }
    if let Some(instance) = &request.instance_id {
        let fenced = group
            .members()
            .any(|m| m.instance_id.as_ref() == Some(instance) && m.id != request.member_id);
        if fenced {
            return GroupCode::FencedInstanceId;
        }
    }
    if request.generation >= 0 && request.generation != group.generation() {
        return GroupCode::IllegalGeneration;
    }
    GroupCode::None
}

/// The marker of `producer_id`'s transaction is on offsets partition `partition`: commit or
/// drop its pending offsets in every group of that partition.
pub async fn complete(
    shard: &GroupContext<'_>,
    partition: u32,
    producer_id: i64,
    commit: bool,
) -> GroupAnswer {
    let Some(log_state) = shard.groups.log(partition) else {
        return GroupAnswer::Error(GroupCode::CoordinatorLoadInProgress);
    };
    let _guard = log_state.lock.lock().await;
    let mut groups = shard.groups.groups.borrow_mut();
    for entry in groups.values_mut().filter(|e| e.partition == partition) {
        if let Some(offsets) = entry.pending_txn.remove(&producer_id) {
            if commit {
                entry.offsets.extend(offsets);
            }
        }
    }
    GroupAnswer::Code(GroupCode::None)
}
