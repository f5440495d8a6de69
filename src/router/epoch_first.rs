//! KIP-320's order of checks on a replica that does not lead (Kafka's
//! `Partition.localLogWithEpochOrThrow` -> `checkCurrentLeaderEpoch` before `requireLeader`):
//! a request naming a current leader epoch other than the one this broker knows answers
//! FENCED_LEADER_EPOCH (older) or UNKNOWN_LEADER_EPOCH (newer), and only a matching (or
//! absent, -1) epoch answers NOT_LEADER_OR_FOLLOWER. Applies to Fetch, ListOffsets and
//! OffsetForLeaderEpoch, the APIs carrying `current_leader_epoch`.
//!
//! Invariant: only NOT_LEADER_OR_FOLLOWER answers of partitions this broker holds a replica
//! of (in the metadata image) change; every other answer is kept as it is.

use super::{PartitionError, Router, TopicPartition};

impl Router<'_> {
    /// Each item's partition and `current_leader_epoch` for `epoch_before_leadership`; empty
    /// (nothing to check, nothing copied) on a single broker or when no item names an epoch.
    pub(super) fn epochs_asked<T>(
        &self,
        items: &[T],
        asked: impl Fn(&T) -> (&TopicPartition, i32),
    ) -> Vec<(TopicPartition, i32)> {
        if !self.ctx.is_cluster || items.iter().all(|i| asked(i).1 < 0) {
            return Vec::new();
        }
        items
            .iter()
            .map(|i| {
                let (tp, epoch) = asked(i);
                (tp.clone(), epoch)
            })
            .collect()
    }

    /// `asked`: each item's partition and `current_leader_epoch`, in the answers' order.
    pub(super) fn epoch_before_leadership<R>(
        &self,
        asked: &[(TopicPartition, i32)],
        answers: &mut [Result<R, PartitionError>],
    ) {
        let image = self.ctx.image.borrow();
        let node = self.ctx.node_id;
        for ((tp, requested), answer) in asked.iter().zip(answers.iter_mut()) {
            if *requested < 0 || !matches!(answer, Err(PartitionError::NotLeaderOrFollower)) {
                continue;
            }
            let Some(registration) = image.partition(&tp.topic, tp.partition) else {
                continue;
            };
            if !registration.replicas.contains(&node) {
                continue;
            }
            if let Some(error) = epoch_error(*requested, registration.leader_epoch) {
                *answer = Err(error);
            }
        }
    }
}

/// Kafka's `checkCurrentLeaderEpoch`: None when `requested` is the current epoch.
fn epoch_error(requested: i32, current: i32) -> Option<PartitionError> {
    use std::cmp::Ordering;
    match requested.cmp(&current) {
        Ordering::Equal => None,
        Ordering::Less => Some(PartitionError::FencedLeaderEpoch { requested, current }),
        Ordering::Greater => Some(PartitionError::UnknownLeaderEpoch { requested, current }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_is_fenced_newer_unknown_equal_passes() {
        assert_eq!(epoch_error(3, 3), None);
        assert!(matches!(
            epoch_error(2, 3),
            Some(PartitionError::FencedLeaderEpoch {
                requested: 2,
                current: 3
            })
        ));
        assert!(matches!(
            epoch_error(9, 3),
            Some(PartitionError::UnknownLeaderEpoch {
                requested: 9,
                current: 3
            })
        ));
    }
}
