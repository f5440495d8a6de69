//! The replicated partition leader: [`PartitionProxy`] over the local [`Partition`] (the
//! leader's replica) plus the replication state of `replication::isr` and the delayed-produce
//! purgatory of `replication::purgatory`. Followers replicate with Fetch carrying their
//! replica id ([`ReplicatedPartition::follower_fetch`]): they read up to the log end, their
//! fetch offset is their log end, and the high watermark (what consumers read up to) moves
//! with the slowest ISR member.
//!
//! acks semantics (Kafka's): acks=0/1 answer after the leader's append; acks=all checks
//! min.insync.replicas against the ISR before appending (NOT_ENOUGH_REPLICAS, nothing
//! written), then waits in the purgatory until the high watermark passes the batch
//! (NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below min.insync.replicas meanwhile,
//! REQUEST_TIMED_OUT after the Produce request's `timeout_ms`). Durability per ack stays the single-replica
//! policy (`log.flush.on.acks.all`): the leader fsyncs an acks=all batch before answering
//! when it is set; followers do not fsync per fetch (Kafka's default).
//!
//! Invariants: consumers never see past the high watermark; the high watermark never goes
//! back; every purgatory waiter is answered (completed, timed out, or NOT_LEADER_OR_FOLLOWER
//! when the partition resigns); ISR proposals leave through `take_isr_proposals` and only a
//! commit from the controller changes the ISR.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use super::api::{DeleteRecordsResult, OffsetOk, ReadOk};
use super::proxy::{AppendRequest, Appended, PartitionProxy};
use super::{LeaderEpochError, Partition, PartitionError, TopicPartition};
use crate::replication::isr::{AckError, IsrProposal, LeaderRegistration, LeaderState};
use crate::replication::purgatory::ProducePurgatory;
use crate::replication::truncation::{diverging_epoch, EpochEndOffset};

/// The replication settings of one leader (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub local_broker_id: i32,
    /// `replica.lag.time.max.ms` (Kafka's default 30 s).
    pub replica_lag_time_max_ms: i64,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// How long an acks=all append without a request timeout (`AppendRequest::timeout_ms`
    /// `None`) waits for replication (Kafka's producer default `request.timeout.ms` 30 s).
    pub produce_timeout_ms: i64,
    /// `produce.purgatory.waiters.max`: acks=all produces waiting per partition.
    pub purgatory_waiters_max: usize,
    /// `delete.records.purgatory.waiters.max`: DeleteRecords waiting per partition for the
    /// followers' log start offsets.
    pub delete_records_waiters_max: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            local_broker_id: 1,
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            produce_timeout_ms: 30_000,
            purgatory_waiters_max: 4_096,
            delete_records_waiters_max: 1_024,
        }
    }
}

impl ReplicationConfig {
    /// The broker-wide settings for a partition of a topic with `min_insync_replicas`.
    pub fn from_broker(
        c: &crate::config::BrokerConfig,
        local_broker_id: i32,
        min_insync_replicas: i32,
    ) -> Self {
        Self {
            local_broker_id,
            replica_lag_time_max_ms: i64::try_from(c.replication.replica_lag_time_max_ms)
                .unwrap_or(i64::MAX),
            min_insync_replicas: usize::try_from(min_insync_replicas).unwrap_or(1).max(1),
            produce_timeout_ms: ReplicationConfig::default().produce_timeout_ms,
            purgatory_waiters_max: usize::try_from(c.replication.produce_purgatory_waiters_max)
                .unwrap_or(usize::MAX),
            delete_records_waiters_max: usize::try_from(
                c.replication.delete_records_purgatory_waiters_max,
            )
            .unwrap_or(usize::MAX),
        }
    }
}

pub use super::api::FollowerFetchOk;

/// See the module documentation.
pub struct ReplicatedPartition {
    local: Rc<Partition>,
    config: ReplicationConfig,
    state: RefCell<LeaderState>,
    purgatory: RefCell<ProducePurgatory>,
    /// ISR changes proposed and not yet handed to the AlterPartition sender.
    outbox: RefCell<Vec<IsrProposal>>,
    /// The replica's role this leader set: it leads while the replica's role is still this
    /// one (after `resign`, or once a newer leader of the replica took over, appends answer
    /// NOT_LEADER_OR_FOLLOWER).
    role: super::ReplicaRole,
    /// Each follower's log start offset from its last fetch (`low_watermark`).
    follower_log_starts: RefCell<std::collections::HashMap<i32, i64>>,
    /// DeleteRecords waiting for the low watermark (`low_watermark`).
    low_watermark_waiters: RefCell<LowWatermarkWaiters>,
}

impl ReplicatedPartition {
    /// Kafka's `makeLeader`: `local` already leads with the registration's epoch
    /// (`Partition::become_leader`); `high_watermark` is what this replica had learnt or
    /// checkpointed as a follower.
    pub fn new(
        local: Rc<Partition>,
        registration: &LeaderRegistration,
        high_watermark: i64,
        config: ReplicationConfig,
        now_ms: i64,
    ) -> Rc<Self> {
        let role = local.lead_with_followers(registration.leader_epoch);
        let state = LeaderState::new(
            config.local_broker_id,
            registration,
            local.log.log_end_offset().0,
            high_watermark,
            config.replica_lag_time_max_ms,
            now_ms,
        );
        let partition = Rc::new(Self {
            local,
            config,
            state: RefCell::new(state),
            purgatory: RefCell::new(ProducePurgatory::new(config.purgatory_waiters_max)),
            outbox: RefCell::new(Vec::new()),
            role,
            follower_log_starts: RefCell::default(),
            low_watermark_waiters: RefCell::new(LowWatermarkWaiters::new(
                config.delete_records_waiters_max,
            )),
        });
        // A leader alone in the ISR has everything replicated already.
        partition.after_state_change(false);
        partition
    }

    pub fn local(&self) -> &Rc<Partition> {
        &self.local
    }

    pub fn state(&self) -> std::cell::Ref<'_, LeaderState> {
        self.state.borrow()
    }

    fn log_end(&self) -> i64 {
        self.local.log.log_end_offset().0
    }

    /// Whether this (not a newer, not a resigned) leader leads its replica.
    fn is_leading(&self) -> bool {
        self.local.role() == self.role
    }

    /// After anything that may move the high watermark: move it, answer the waiters it
    /// covers, wake long-polling consumers.
    /// `moved`: the state change itself already moved the high watermark.
    fn after_state_change(&self, moved: bool) {
        let log_end = self.log_end();
        let moved = self
            .state
            .borrow_mut()
            .maybe_increment_high_watermark(log_end)
            || moved;
        let (hw, isr_len) = {
            let s = self.state.borrow();
            (s.high_watermark(), s.isr_state().isr().len())
        };
        self.purgatory.borrow_mut().complete(hw, isr_len);
        // An ISR change may drop the follower that held the low watermark back.
        self.complete_low_watermark_waiters();
        if moved {
            self.local.notify_appended();
        }
    }

    /// A follower's Fetch (replica id `broker_id`) at `fetch_offset` (its log end), having
    /// last fetched in `last_fetched_epoch` (-1 if unknown): records up to the leader's log
    /// end, the high watermark, or the diverging epoch when the follower must truncate.
    pub async fn follower_fetch(
        &self,
        broker_id: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        current_leader_epoch: i32,
        max_bytes: u32,
        now_ms: i64,
    ) -> Result<FollowerFetchOk, PartitionError> {
        if !self.is_leading() {
            return Err(PartitionError::Unavailable);
        }
        self.local.check_leader_epoch(current_leader_epoch)?;
        let (epoch, end) = self.local.end_offset_for_epoch(last_fetched_epoch);
        // Kafka's `Partition.readRecords`: an epoch the leader cannot place, or an offset
        // outside its log, is OFFSET_OUT_OF_RANGE (the follower resolves it with ListOffsets).
        let (log_start, log_end) = (self.log_start_offset(), self.log_end());
        let unplaced_epoch = last_fetched_epoch >= 0 && (epoch < 0 || end < 0);
        let out_of_range = Err(PartitionError::OffsetOutOfRange {
            offset: fetch_offset,
            log_start,
            log_end,
        });
        if unplaced_epoch || fetch_offset < log_start {
            return out_of_range;
        }
        let diverging = diverging_epoch(
            fetch_offset,
            last_fetched_epoch,
            EpochEndOffset::new(epoch, end),
        );
        // The divergence answer comes first (a divergent tail past our end truncates by
        // epoch); otherwise an offset past the log end is out of range.
        if diverging.is_none() && fetch_offset > log_end {
            return out_of_range;
        }
        if diverging.is_none() {
            let log_end = self.log_end();
            let (moved, proposal) = self
                .state
                .borrow_mut()
                .on_follower_fetch(broker_id, fetch_offset, log_end, now_ms)
                .map_err(|_| PartitionError::Unavailable)?;
            self.outbox.borrow_mut().extend(proposal);
            self.after_state_change(moved);
        }
        let log_end = self.local.log.log_end_offset();
        let read = if diverging.is_some() || fetch_offset == log_end.0 {
            self.answer(None, None)
        } else {
            let slice = self
                .local
                .log
                .read(storage::Offset(fetch_offset), max_bytes, true, log_end)
                .await
                .map_err(PartitionError::from_storage)?;
            self.answer((slice.total_bytes > 0).then_some(slice), None)
        };
        Ok(FollowerFetchOk {
            read,
            diverging_epoch: diverging,
        })
    }

    fn answer(
        &self,
        slice: Option<storage::ReadSlice>,
        aborted_transactions: Option<Vec<(i64, i64)>>,
    ) -> ReadOk {
        ReadOk {
            high_watermark: self.high_watermark(),
            last_stable_offset: self.last_stable_offset(),
            log_start_offset: self.log_start_offset(),
            slice,
            aborted_transactions,
        }
    }

    /// Kafka's `maybeShrinkIsr`, run every `replica.lag.time.max.ms / 2` by the replica
    /// manager: proposes removing followers that fell behind.
    pub fn maybe_shrink_isr(&self, now_ms: i64) {
        let log_end = self.log_end();
        let proposal = self.state.borrow_mut().maybe_shrink_isr(log_end, now_ms);
        self.outbox.borrow_mut().extend(proposal);
    }

    /// Answers REQUEST_TIMED_OUT to acks=all waiters past their deadline (their callers'
    /// own timers answer them too; this frees the purgatory's places).
    pub fn expire_waiters(&self, now_ms: i64) -> usize {
        self.purgatory.borrow_mut().expire(now_ms)
    }

    /// The ISR changes to send to the controller as AlterPartition.
    pub fn take_isr_proposals(&self) -> Vec<IsrProposal> {
        std::mem::take(&mut *self.outbox.borrow_mut())
    }

    /// The controller committed an ISR (AlterPartition answer or the metadata image).
    pub fn on_isr_committed(&self, leader_epoch: i32, partition_epoch: i32, isr: Vec<i32>) {
        let log_end = self.log_end();
        let moved =
            self.state
                .borrow_mut()
                .on_isr_committed(leader_epoch, partition_epoch, isr, log_end);
        self.after_state_change(moved);
    }

    /// A newer registration of this partition in the metadata image while this broker still
    /// leads it (Kafka's `makeLeader` again): see `LeaderState::on_registration`.
    pub fn on_registration(&self, registration: &LeaderRegistration, now_ms: i64) {
        let log_end = self.log_end();
        let moved = self
            .state
            .borrow_mut()
            .on_registration(registration, log_end, now_ms);
        self.after_state_change(moved);
    }

    /// The controller refused the proposal (INELIGIBLE_REPLICA and the like).
    pub fn on_isr_rejected(&self) {
        self.state.borrow_mut().on_isr_rejected();
    }

    /// Leadership moved away: waiting acks=all produces answer NOT_LEADER_OR_FOLLOWER.
    pub fn resign(&self) {
        self.local.resign_leadership(self.role);
        self.purgatory.borrow_mut().fail_all();
        self.fail_low_watermark_waiters();
        self.local.notify_appended();
    }

    /// A transaction marker just written to the leader's log (`Partition::write_marker`):
    /// answered once replicated to the ISR, as Kafka appends markers with acks=-1 (a marker
    /// lost with its leader would leave the transaction open on the new one, its coordinator
    /// done with it).
    pub async fn await_marker_replication(&self, now_ms: i64) -> Result<(), PartitionError> {
        let required_offset = self.log_end();
        self.after_state_change(false);
        self.await_replication(required_offset, now_ms, self.config.produce_timeout_ms)
            .await
            .map_err(ack_error)
    }

    /// Waits for the high watermark to reach `required_offset`, bounded by the produce
    /// timeout; `Ok` once replicated to the ISR.
    async fn await_replication(
        &self,
        required_offset: i64,
        now_ms: i64,
        timeout_ms: i64,
    ) -> Result<(), AckError> {
        // Resigned while the append ran: nobody would complete a waiter parked now.
        if !self.is_leading() {
            return Err(AckError::NotLeaderOrFollower);
        }
        let rx = {
            let mut purgatory = self.purgatory.borrow_mut();
            let deadline = now_ms.saturating_add(timeout_ms);
            purgatory
                .park(required_offset, self.config.min_insync_replicas, deadline)
                .map_err(|_| AckError::RequestTimedOut)?
        };
        // Replicated already (the ISR is the leader alone, or followers were quick).
        self.after_state_change(false);
        let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        match compio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_cancelled)) => Err(AckError::NotLeaderOrFollower),
            Err(_elapsed) => Err(AckError::RequestTimedOut),
        }
    }
}

fn ack_error(error: AckError) -> PartitionError {
    match error {
        AckError::NotEnoughReplicas { isr, min_isr } => {
            PartitionError::NotEnoughReplicas { isr, min_isr }
        }
        AckError::NotEnoughReplicasAfterAppend { isr, min_isr } => {
            PartitionError::NotEnoughReplicasAfterAppend { isr, min_isr }
        }
        AckError::RequestTimedOut => PartitionError::RequestTimedOut,
        AckError::NotLeaderOrFollower => PartitionError::Unavailable,
    }
}

impl PartitionProxy for ReplicatedPartition {
    fn topic_partition(&self) -> &TopicPartition {
        &self.local.tp
    }

    fn log_start_offset(&self) -> i64 {
        self.local.log.log_start_offset().0
    }

    fn log_end_offset(&self) -> i64 {
        self.log_end()
    }

    fn high_watermark(&self) -> i64 {
        self.state.borrow().high_watermark()
    }

    /// No transactions on replicated partitions yet: the LSO is the high watermark.
    fn last_stable_offset(&self) -> i64 {
        // The oldest open transaction's first offset, never past the high watermark.
        self.local.stable_offset().min(self.high_watermark())
    }

    fn leader_epoch(&self) -> i32 {
        self.local.leader_epoch()
    }

    fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), LeaderEpochError> {
        self.local.check_leader_epoch(current_leader_epoch)
    }

    async fn append(self: Rc<Self>, request: AppendRequest) -> Result<Appended, PartitionError> {
        if !self.is_leading() {
            return Err(PartitionError::Unavailable);
        }
        let acks_all = request.acks == -1;
        if acks_all {
            self.state
                .borrow()
                .check_min_isr(self.config.min_insync_replicas)
                .map_err(ack_error)?;
        }
        let now_ms = request.now_ms;
        // Kafka's DelayedProduce waits the request's timeout_ms (0 or less: answer at once).
        let timeout_ms = request
            .timeout_ms
            .unwrap_or(self.config.produce_timeout_ms)
            .max(0);
        let appended = self.local.clone().append(request).await?;
        // The batch ends at or below the log end now (a retry found in the log ends earlier).
        let required_offset = self.log_end();
        self.after_state_change(false);
        if acks_all {
            self.await_replication(required_offset, now_ms, timeout_ms)
                .await
                .map_err(ack_error)?;
        }
        Ok(appended)
    }

    /// Consumers read below the high watermark only (read_committed ones below the LSO, with
    /// the aborted transactions of the range).
    async fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        current_leader_epoch: i32,
        read_committed: bool,
    ) -> Result<ReadOk, PartitionError> {
        self.check_leader_epoch(current_leader_epoch)?;
        let bounds = super::local::ReadBounds {
            high_watermark: self.high_watermark(),
            last_stable_offset: self.last_stable_offset(),
            read_committed,
        };
        self.local
            .read_visible(offset, max_bytes, min_one_batch, bounds)
            .await
    }

    async fn offset_for_timestamp(&self, timestamp: i64) -> Result<OffsetOk, PartitionError> {
        if timestamp == -1 {
            let offset = self.high_watermark();
            return Ok(OffsetOk {
                offset,
                timestamp: -1,
                leader_epoch: self.local.epoch_of_offset(offset),
            });
        }
        let mut ok = self.local.offset_for_timestamp(timestamp).await?;
        // EARLIEST (-2) and EARLIEST_LOCAL (-4) are the log start offset, even at or past the
        // high watermark (an empty or wholly deleted log): Kafka's `fetchOffsetForTimestamp`
        // bounds only timestamp lookups by the last fetchable offset.
        if !matches!(timestamp, -2 | -4) && ok.offset >= self.high_watermark() {
            // Not yet replicated: not visible (Kafka looks up below the high watermark).
            ok = OffsetOk {
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            };
        }
        Ok(ok)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.local.end_offset_for_epoch(epoch)
    }

    /// DeleteRecords up to the high watermark at most (Kafka's rule).
    async fn delete_records(&self, offset: i64) -> DeleteRecordsResult {
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                log_end: high_watermark,
            });
        }
        self.local.delete_records(target).await
    }

    fn subscribe(&self) -> Option<oneshot::Receiver<()>> {
        self.local.subscribe()
    }
}

#[path = "low_watermark.rs"]
mod low_watermark;
use low_watermark::LowWatermarkWaiters;

#[cfg(test)]
#[path = "replicated_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "failover_tests.rs"]
mod failover_tests;

#[cfg(test)]
#[path = "failover_model_tests.rs"]
mod failover_model_tests;

#[cfg(test)]
#[path = "replicated_txn_tests.rs"]
mod txn_tests;
