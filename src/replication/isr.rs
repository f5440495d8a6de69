//! The leader side of one replicated partition, as a state machine without I/O (Kafka's
//! `Partition` leader fields: `remoteReplicasMap`, `partitionState`, the high watermark).
//!
//! The leader learns each follower's log end offset from the follower's Fetch (the fetch
//! offset is the follower's log end), keeps the in-sync replica set (ISR) and moves the high
//! watermark: the smallest log end over the *maximal* ISR (the committed ISR plus a pending
//! addition; a pending removal still counts), so the high watermark never passes what an
//! ISR member, committed or about to be, lacks (KIP-497). ISR changes are proposals sent to the
//! controller (AlterPartition) and take effect only when the controller commits them; one
//! proposal is in flight at a time, as in Kafka.
//!
//! Invariants: the high watermark never goes backwards and never passes the leader's log end;
//! the leader is always in the ISR; at most one ISR change is in flight; a follower's log end
//! only moves with its fetches (a fetch below it is a truncated follower and is believed).

use std::collections::BTreeMap;

/// What the leader knows of one follower (Kafka's `Replica` / `ReplicaState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset as of its last fetch; -1 before its first fetch.
    pub log_end_offset: i64,
    /// The last time the follower was known caught up to the leader's log end (Kafka's
    /// `lastCaughtUpTimeMs`); the ISR shrinks when it is older than `replica.lag.time.max.ms`.
    pub last_caught_up_time_ms: i64,
    /// The leader's log end at the follower's previous fetch, and when that fetch came.
    pub last_fetch_leader_log_end_offset: i64,
    pub last_fetch_time_ms: i64,
}

impl FollowerState {
    /// A follower the new leader knows nothing of yet (Kafka's `resetReplicaState` on
    /// becoming leader): an ISR member counts as caught up now, so it gets a full lag window
    /// to fetch before it is removed.
    fn reset(in_isr: bool, now_ms: i64) -> Self {
        Self {
            log_end_offset: -1,
            last_caught_up_time_ms: if in_isr { now_ms } else { 0 },
            last_fetch_leader_log_end_offset: -1,
            last_fetch_time_ms: 0,
        }
    }

    /// Kafka's `Replica.updateFetchStateOrThrow`: a fetch at the leader's log end makes the
    /// follower caught up as of this fetch; a fetch at least at the leader's log end of the
    /// previous fetch makes it caught up as of that previous fetch.
    fn update(&mut self, fetch_offset: i64, leader_log_end: i64, now_ms: i64) {
        if fetch_offset >= leader_log_end {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_log_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(self.last_fetch_time_ms);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_log_end_offset = leader_log_end;
        self.last_fetch_time_ms = now_ms;
    }
}

/// The ISR as the leader sees it (Kafka's `PartitionState`: committed, or a change in flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrState {
    Committed {
        isr: Vec<i32>,
    },
    /// An AlterPartition adding `adding` is in flight.
    PendingExpand {
        isr: Vec<i32>,
        adding: i32,
    },
    /// An AlterPartition removing `removing` is in flight.
    PendingShrink {
        isr: Vec<i32>,
        removing: Vec<i32>,
    },
}

impl IsrState {
    /// The last committed ISR: what min.insync.replicas is checked against.
    pub fn isr(&self) -> &[i32] {
        match self {
            Self::Committed { isr }
            | Self::PendingExpand { isr, .. }
            | Self::PendingShrink { isr, .. } => isr,
        }
    }

    /// The ISR the high watermark waits for: the committed one plus a pending addition (a
    /// pending removal still counts until it commits).
    pub fn maximal_isr(&self) -> Vec<i32> {
        match self {
            Self::PendingExpand { isr, adding } => {
                let mut all = isr.clone();
                all.push(*adding);
                all
            }
            other => other.isr().to_vec(),
        }
    }

    pub fn is_inflight(&self) -> bool {
        !matches!(self, Self::Committed { .. })
    }
}

/// An ISR change for the controller (the body of one AlterPartition partition entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// Why an acks=all produce fails (Kafka's `checkEnoughReplicasReachOffset` and the check
/// before the append).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The ISR is below min.insync.replicas before the append: nothing was written.
    #[error("the ISR has {isr} replicas, below min.insync.replicas {min_isr}")]
    NotEnoughReplicas { isr: usize, min_isr: usize },
    /// Written and replicated to the high watermark, but the ISR shrank below
    /// min.insync.replicas meanwhile.
    #[error("the ISR has {isr} replicas after the append, below min.insync.replicas {min_isr}")]
    NotEnoughReplicasAfterAppend { isr: usize, min_isr: usize },
    /// Not replicated to the high watermark within the request timeout.
    #[error("not replicated within the request timeout")]
    RequestTimedOut,
    /// This broker stopped leading the partition while the produce waited.
    #[error("no longer the leader")]
    NotLeaderOrFollower,
}

/// A fetch from a broker that is not a replica of the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("broker {0} is not a follower of this partition")]
pub struct UnknownReplica(pub i32);

/// A partition registration as the leader needs it (from the metadata image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct LeaderState {
    local_broker_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    followers: BTreeMap<i32, FollowerState>,
    isr_state: IsrState,
    high_watermark: i64,
    /// Where the current leader epoch starts in the log; a follower joins the ISR only once it
    /// has reached it (it holds everything of this leadership).
    leader_epoch_start_offset: i64,
    replica_lag_time_max_ms: i64,
}

impl LeaderState {
    /// Kafka's `makeLeader`: followers reset, the ISR as registered, the high watermark as this
    /// replica had it (a follower's learnt high watermark, or the checkpoint).
    pub fn new(
        local_broker_id: i32,
        registration: &LeaderRegistration,
        leader_log_end: i64,
        high_watermark: i64,
        replica_lag_time_max_ms: i64,
        now_ms: i64,
    ) -> Self {
        let followers = registration
            .replicas
            .iter()
            .filter(|r| **r != local_broker_id)
            .map(|r| {
                let in_isr = registration.isr.contains(r);
                (*r, FollowerState::reset(in_isr, now_ms))
            })
            .collect();
        let mut isr = registration.isr.clone();
        if !isr.contains(&local_broker_id) {
            // The controller only elects a leader from the ISR (or uncleanly with ISR = itself).
            isr.push(local_broker_id);
        }
        Self {
            local_broker_id,
            leader_epoch: registration.leader_epoch,
            partition_epoch: registration.partition_epoch,
            followers,
            isr_state: IsrState::Committed { isr },
            high_watermark: high_watermark.clamp(0, leader_log_end.max(0)),
            leader_epoch_start_offset: leader_log_end,
            replica_lag_time_max_ms,
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn isr_state(&self) -> &IsrState {
        &self.isr_state
    }

    pub fn follower(&self, broker_id: i32) -> Option<&FollowerState> {
        self.followers.get(&broker_id)
    }

    /// A follower's fetch at `fetch_offset` (its log end). Updates its state, moves the high
    /// watermark (true when it moved) and may propose adding it to the ISR.
    pub fn on_follower_fetch(
        &mut self,
        broker_id: i32,
        fetch_offset: i64,
        leader_log_end: i64,
        now_ms: i64,
    ) -> Result<(bool, Option<IsrProposal>), UnknownReplica> {
        let follower = self
            .followers
            .get_mut(&broker_id)
            .ok_or(UnknownReplica(broker_id))?;
        follower.update(fetch_offset, leader_log_end, now_ms);
        let expand = self.maybe_expand_isr(broker_id);
        let moved = self.maybe_increment_high_watermark(leader_log_end);
        Ok((moved, expand))
    }

    /// Kafka's `maybeIncrementLeaderHW`: the smallest log end over the maximal ISR, if above
    /// the current high watermark. A follower that has not fetched yet (-1) holds it.
    pub fn maybe_increment_high_watermark(&mut self, leader_log_end: i64) -> bool {
        let mut candidate = leader_log_end;
        for broker in self.isr_state.maximal_isr() {
            if broker == self.local_broker_id {
                continue;
            }
            let end = self.followers.get(&broker).map_or(-1, |f| f.log_end_offset);
            candidate = candidate.min(end);
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }

    /// Kafka's `isFollowerInSync` for an ISR addition: the follower has everything below the
    /// high watermark and everything of the current leader epoch's start.
    fn maybe_expand_isr(&mut self, broker_id: i32) -> Option<IsrProposal> {
        let IsrState::Committed { isr } = &self.isr_state else {
            return None;
        };
        if isr.contains(&broker_id) {
            return None;
        }
        let end = self.followers.get(&broker_id)?.log_end_offset;
        if end < self.high_watermark || end < self.leader_epoch_start_offset {
            return None;
        }
        let isr = isr.clone();
        let mut new_isr = isr.clone();
        new_isr.push(broker_id);
        self.isr_state = IsrState::PendingExpand {
            isr,
            adding: broker_id,
        };
        Some(self.proposal(new_isr))
    }

    /// Kafka's `getOutOfSyncReplicas`: ISR followers that are behind the leader's log end and
    /// have not been caught up for `replica.lag.time.max.ms`.
    pub fn out_of_sync_replicas(&self, leader_log_end: i64, now_ms: i64) -> Vec<i32> {
        self.isr_state
            .isr()
            .iter()
            .filter(|b| **b != self.local_broker_id)
            .filter(|b| {
                self.followers.get(b).is_none_or(|f| {
                    f.log_end_offset != leader_log_end
                        && now_ms.saturating_sub(f.last_caught_up_time_ms)
                            > self.replica_lag_time_max_ms
                })
            })
            .copied()
            .collect()
    }

    /// Kafka's `maybeShrinkIsr` (run every `replica.lag.time.max.ms / 2`): proposes the ISR
    /// without the out-of-sync followers. The high watermark keeps waiting for them until the
    /// controller commits the removal.
    pub fn maybe_shrink_isr(&mut self, leader_log_end: i64, now_ms: i64) -> Option<IsrProposal> {
        if self.isr_state.is_inflight() {
            return None;
        }
        let removing = self.out_of_sync_replicas(leader_log_end, now_ms);
        if removing.is_empty() {
            return None;
        }
        let isr = self.isr_state.isr().to_vec();
        let new_isr: Vec<i32> = isr
            .iter()
            .filter(|b| !removing.contains(b))
            .copied()
            .collect();
        self.isr_state = IsrState::PendingShrink { isr, removing };
        Some(self.proposal(new_isr))
    }

    fn proposal(&self, new_isr: Vec<i32>) -> IsrProposal {
        IsrProposal {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        }
    }

    /// The in-flight proposal again (for a retry after a retriable AlterPartition error).
    pub fn pending_proposal(&self) -> Option<IsrProposal> {
        match &self.isr_state {
            IsrState::Committed { .. } => None,
            IsrState::PendingExpand { isr, adding } => {
                let mut new_isr = isr.clone();
                new_isr.push(*adding);
                Some(self.proposal(new_isr))
            }
            IsrState::PendingShrink { isr, removing } => Some(
                self.proposal(
                    isr.iter()
                        .filter(|b| !removing.contains(b))
                        .copied()
                        .collect(),
                ),
            ),
        }
    }

    /// The controller committed an ISR (an AlterPartition answer, or the same leader epoch
    /// seen again in the metadata image with a newer partition epoch). A stale answer (an
    /// older partition epoch, another leader epoch) changes nothing. True when the high
    /// watermark moved.
    pub fn on_isr_committed(
        &mut self,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
        leader_log_end: i64,
    ) -> bool {
        if leader_epoch != self.leader_epoch || partition_epoch < self.partition_epoch {
            return false;
        }
        if partition_epoch == self.partition_epoch && !self.isr_state.is_inflight() {
            return false;
        }
        self.partition_epoch = partition_epoch;
        self.isr_state = IsrState::Committed { isr };
        self.maybe_increment_high_watermark(leader_log_end)
    }

    /// Kafka's `makeLeader` on a partition this broker already leads: the metadata image has
    /// a newer registration (an ISR change committed, replicas reassigned, or this broker
    /// re-elected with a new leader epoch). The image's ISR replaces the local view (a pending
    /// change is settled by it); a new leader epoch starts at the log end. A registration older
    /// than the one held is ignored. True when the high watermark moved.
    pub fn on_registration(
        &mut self,
        registration: &LeaderRegistration,
        leader_log_end: i64,
        now_ms: i64,
    ) -> bool {
        let newer_epoch = registration.leader_epoch > self.leader_epoch;
        let same_epoch_newer = registration.leader_epoch == self.leader_epoch
            && registration.partition_epoch > self.partition_epoch;
        if !newer_epoch && !same_epoch_newer {
            return false;
        }
        let mut followers = BTreeMap::new();
        for r in registration
            .replicas
            .iter()
            .filter(|r| **r != self.local_broker_id)
        {
            let kept = self.followers.get(r).copied();
            let in_isr = registration.isr.contains(r);
            followers.insert(
                *r,
                kept.unwrap_or_else(|| FollowerState::reset(in_isr, now_ms)),
            );
        }
        self.followers = followers;
        let mut isr = registration.isr.clone();
        if !isr.contains(&self.local_broker_id) {
            isr.push(self.local_broker_id);
        }
        self.isr_state = IsrState::Committed { isr };
        if newer_epoch {
            self.leader_epoch_start_offset = leader_log_end;
        }
        self.leader_epoch = registration.leader_epoch;
        self.partition_epoch = registration.partition_epoch;
        self.maybe_increment_high_watermark(leader_log_end)
    }

    /// The controller refused the proposal for good (INELIGIBLE_REPLICA,
    /// OPERATION_NOT_ATTEMPTED): back to the committed ISR, to propose again later.
    pub fn on_isr_rejected(&mut self) {
        let isr = self.isr_state.isr().to_vec();
        self.isr_state = IsrState::Committed { isr };
    }

    /// acks=all, before the append (Kafka's `appendRecordsToLeader`): the committed ISR must
    /// hold at least min.insync.replicas.
    pub fn check_min_isr(&self, min_isr: usize) -> Result<(), AckError> {
        let isr = self.isr_state.isr().len();
        if isr < min_isr {
            return Err(AckError::NotEnoughReplicas { isr, min_isr });
        }
        Ok(())
    }

    /// Kafka's `checkEnoughReplicasReachOffset`: `None` while the high watermark is below
    /// `required_offset` (the appended batch's last offset + 1); then Ok, or
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below min.insync.replicas.
    pub fn check_replicated(&self, required_offset: i64, min_isr: usize) -> Option<AckResult> {
        ack_outcome(
            self.high_watermark,
            self.isr_state.isr().len(),
            required_offset,
            min_isr,
        )
    }
}

/// An acks=all answer.
pub type AckResult = Result<(), AckError>;

/// `check_replicated` on plain numbers (the purgatory completes waiters with it).
pub fn ack_outcome(
    high_watermark: i64,
    isr_len: usize,
    required_offset: i64,
    min_isr: usize,
) -> Option<AckResult> {
    if high_watermark < required_offset {
        return None;
    }
    if isr_len < min_isr {
        return Some(Err(AckError::NotEnoughReplicasAfterAppend {
            isr: isr_len,
            min_isr,
        }));
    }
    Some(Ok(()))
}

#[cfg(test)]
#[path = "isr_tests.rs"]
mod tests;
