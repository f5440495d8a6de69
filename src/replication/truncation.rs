//! Where a follower's log diverges from its leader's, and how far it truncates (KIP-101,
//! KIP-279, and the diverging-epoch field of Fetch v12+, KIP-595/KIP-320): pure decisions over
//! the two replicas' leader-epoch caches, after Kafka's `AbstractFetcherThread` and
//! `Partition.fetchRecords`.
//!
//! A follower never truncates to its high watermark alone: the high watermark it learnt may be
//! behind what the ISR acknowledged, so truncating to it could lose acknowledged records when
//! this follower is elected next. It truncates exactly its divergent tail: the records written
//! in a leader epoch the leader does not have, or past where that epoch ends on the leader.
//!
//! Invariants: a truncation offset is never above the follower's log end; a completed decision
//! leaves the follower a prefix of the leader's log for every epoch both know.

use crate::partition::epochs::{UNDEFINED_EPOCH, UNDEFINED_OFFSET};

/// (leader epoch, end offset) as OffsetForLeaderEpoch / the diverging-epoch field carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub leader_epoch: i32,
    pub end_offset: i64,
}

impl EpochEndOffset {
    pub fn new(leader_epoch: i32, end_offset: i64) -> Self {
        Self {
            leader_epoch,
            end_offset,
        }
    }
}

/// A follower's truncation step (Kafka's `OffsetTruncationState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Truncate the log to this offset (remove everything at and after it).
    pub offset: i64,
    /// False: the leader answered an epoch this follower does not know; truncate to
    /// `offset`, then ask the leader again about the follower's (new) latest epoch.
    pub completed: bool,
}

/// Leader side (Kafka's `Partition.fetchRecords` for a fetch carrying `last_fetched_epoch`):
/// the follower's log diverges when the leader's `last_fetched_epoch` ends before the fetch
/// offset, or the leader does not have that epoch at all (it answers an older one). Returns
/// the diverging epoch to put in the Fetch response (no records are returned then).
/// `leader_end_for_epoch` is the leader's `end_offset_for(last_fetched_epoch)`.
pub fn diverging_epoch(
    fetch_offset: i64,
    last_fetched_epoch: i32,
    leader_end_for_epoch: EpochEndOffset,
) -> Option<EpochEndOffset> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let diverged = leader_end_for_epoch.leader_epoch < last_fetched_epoch
        || leader_end_for_epoch.end_offset < fetch_offset;
    diverged.then_some(leader_end_for_epoch)
}

/// Follower side (Kafka's `getOffsetTruncationState`): given the leader's answer about an
/// epoch (from OffsetForLeaderEpoch, or a Fetch response's diverging epoch), where to truncate.
/// `follower_end_for` is the follower's own `end_offset_for` (its leader-epoch cache over its
/// log end); `follower_log_end` its log end; `fetch_offset` where it was about to fetch (its
/// high watermark when the leader knows no offset at all).
pub fn truncation_offset(
    leader: EpochEndOffset,
    follower_end_for: impl Fn(i32) -> EpochEndOffset,
    follower_log_end: i64,
    fetch_offset: i64,
) -> Truncation {
    let done = |offset: i64| Truncation {
        offset: offset.min(follower_log_end),
        completed: true,
    };
    if leader.end_offset == UNDEFINED_OFFSET {
        // The leader knows nothing of this epoch's offsets (an empty or much newer log).
        return done(fetch_offset);
    }
    if leader.leader_epoch == UNDEFINED_EPOCH {
        return done(leader.end_offset);
    }
    let ours = follower_end_for(leader.leader_epoch);
    if ours.end_offset == UNDEFINED_OFFSET {
        // The follower tracks no epoch at or below the leader's answer: the leader's answer
        // is older than anything here, so its end offset is where the logs agree.
        return done(leader.end_offset);
    }
    if ours.leader_epoch != leader.leader_epoch {
        // The follower does not know the leader's epoch: cut back to the end of the largest
        // older epoch it knows, then ask again.
        return Truncation {
            offset: ours.end_offset.min(follower_log_end),
            completed: false,
        };
    }
    done(ours.end_offset.min(leader.end_offset))
}

/// A follower's high watermark: the leader's, bounded by what the follower has (Kafka's
/// `ReplicaFetcherThread.processPartitionData`).
pub fn follower_high_watermark(leader_high_watermark: i64, follower_log_end: i64) -> i64 {
    leader_high_watermark.min(follower_log_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::epochs::LeaderEpochCache;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for (epoch, offset) in entries {
            assert!(c.assign(*epoch, *offset));
        }
        c
    }

    fn end_for(c: &LeaderEpochCache, log_end: i64) -> impl Fn(i32) -> EpochEndOffset + '_ {
        move |epoch| {
            let (e, o) = c.end_offset_for(epoch, log_end);
            EpochEndOffset::new(e, o)
        }
    }

    /// Runs the follower's OffsetForLeaderEpoch loop against the leader until done; returns
    /// the final truncation offset.
    fn reconcile(
        leader: &LeaderEpochCache,
        leader_end: i64,
        follower: &LeaderEpochCache,
        end: i64,
    ) -> i64 {
        let mut follower = follower.clone();
        let mut end = end;
        for _ in 0..10 {
            let asked = follower.latest_epoch().unwrap_or(UNDEFINED_EPOCH);
            let (e, o) = leader.end_offset_for(asked, leader_end);
            let t = truncation_offset(EpochEndOffset::new(e, o), end_for(&follower, end), end, 0);
            end = t.offset;
            // Truncating the log truncates the follower's epoch cache too.
            let kept: Vec<_> = follower
                .entries()
                .iter()
                .filter(|x| x.start_offset < end || (x.start_offset == end && end == 0))
                .map(|x| (x.epoch, x.start_offset))
                .collect();
            follower = cache(&kept);
            if t.completed {
                return end;
            }
        }
        panic!("no convergence");
    }

    /// KIP-101's scenario: the follower wrote in epoch 1 past where the new leader's epoch 1
    /// ended; it truncates exactly the divergent tail, not to its high watermark.
    #[test]
    fn divergent_tail_in_the_same_epoch() {
        let leader = cache(&[(0, 0), (1, 5), (2, 8)]);
        let follower = cache(&[(0, 0), (1, 5)]);
        // The follower has offsets 0..12 (epoch 1 up to 12); the leader's epoch 1 ends at 8.
        assert_eq!(reconcile(&leader, 20, &follower, 12), 8);
    }

    /// The follower was leader in an epoch the new leader never saw (KIP-279): the leader
    /// answers its largest epoch below, and the follower keeps only what that epoch shares.
    #[test]
    fn follower_epoch_unknown_to_the_leader() {
        let leader = cache(&[(0, 0), (3, 6)]);
        let follower = cache(&[(0, 0), (2, 4)]);
        // Follower: epoch 0 at 0..4, epoch 2 at 4..9. Leader: epoch 0 at 0..6, epoch 3 after.
        let (e, o) = leader.end_offset_for(2, 10);
        assert_eq!(
            (e, o),
            (0, 6),
            "the leader answers its largest epoch at or below 2"
        );
        let first = truncation_offset(EpochEndOffset::new(e, o), end_for(&follower, 9), 9, 0);
        assert_eq!(
            first,
            Truncation {
                offset: 4,
                completed: true
            }
        );
        assert_eq!(reconcile(&leader, 10, &follower, 9), 4);
    }

    /// A follower whose log is a prefix of the leader's truncates nothing.
    #[test]
    fn prefix_follower_keeps_everything() {
        let leader = cache(&[(0, 0), (1, 5)]);
        let follower = cache(&[(0, 0), (1, 5)]);
        assert_eq!(reconcile(&leader, 20, &follower, 7), 7);
        let empty = LeaderEpochCache::default();
        assert_eq!(reconcile(&leader, 20, &empty, 0), 0);
    }

    /// The leader answers an epoch the follower does not know: the follower cuts back to the
    /// end of its older epoch (an incomplete step), asks again, and converges.
    #[test]
    fn walks_back_over_an_epoch_it_does_not_know() {
        let leader = cache(&[(0, 0), (1, 3), (5, 7)]);
        let follower = cache(&[(0, 0), (4, 6)]);
        // Asked about epoch 4, the leader answers epoch 1 ending at 7; the follower knows
        // no epoch 1 (its epoch 0 runs to 6).
        let t = truncation_offset(EpochEndOffset::new(1, 7), end_for(&follower, 9), 9, 0);
        assert_eq!(
            t,
            Truncation {
                offset: 6,
                completed: false
            }
        );
        // Then asked about epoch 0, the leader answers 0 ending at 3.
        assert_eq!(reconcile(&leader, 10, &follower, 9), 3);
    }

    /// Kafka's fallbacks: an undefined offset truncates to the fetch offset; an undefined
    /// epoch to the leader's offset; never above the follower's log end.
    #[test]
    fn fallbacks_and_bounds() {
        let follower = cache(&[(0, 0)]);
        let t = truncation_offset(EpochEndOffset::new(-1, -1), end_for(&follower, 9), 9, 4);
        assert_eq!(
            t,
            Truncation {
                offset: 4,
                completed: true
            }
        );
        let t = truncation_offset(EpochEndOffset::new(-1, 30), end_for(&follower, 9), 9, 4);
        assert_eq!(
            t,
            Truncation {
                offset: 9,
                completed: true
            }
        );
        let t = truncation_offset(EpochEndOffset::new(0, 30), end_for(&follower, 9), 9, 4);
        assert_eq!(
            t,
            Truncation {
                offset: 9,
                completed: true
            }
        );
    }

    /// The leader flags divergence when its copy of the follower's last epoch ends before
    /// the fetch offset, or it does not have that epoch; not otherwise.
    #[test]
    fn leader_detects_divergence_on_fetch() {
        let leader = cache(&[(0, 0), (1, 5), (3, 8)]);
        let ask = |offset: i64, epoch: i32| {
            let (e, o) = leader.end_offset_for(epoch, 12);
            diverging_epoch(offset, epoch, EpochEndOffset::new(e, o))
        };
        assert_eq!(ask(7, 1), None);
        assert_eq!(ask(8, 1), None);
        assert_eq!(ask(9, 1), Some(EpochEndOffset::new(1, 8)));
        assert_eq!(ask(9, 2), Some(EpochEndOffset::new(1, 8)));
        assert_eq!(ask(12, 3), None);
        assert_eq!(ask(3, -1), None, "no last fetched epoch: no check");
    }

    #[test]
    fn follower_high_watermark_is_bounded_by_its_log() {
        assert_eq!(follower_high_watermark(10, 7), 7);
        assert_eq!(follower_high_watermark(5, 7), 5);
    }
}
