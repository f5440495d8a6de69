//! The leader's low watermark and DeleteRecords' wait for it (Kafka's
//! `Partition.lowWatermarkIfLeader` and `DelayedDeleteRecords`): each follower reports its
//! log start offset in its Fetch; DeleteRecords answers once the lowest log start offset of
//! the leader and its followers reached the requested offset, or REQUEST_TIMED_OUT at the
//! request's timeout. Followers take the leader's start from their fetch answers
//! (`log_start.rs`), so a leader elected after the answer keeps the deletion.
//!
//! Which followers count: Kafka takes every replica on an alive broker; here the ISR's
//! followers (the replicas that can become leader in a clean election). A follower not yet
//! heard from counts as -1 (Kafka's unknown offset), so the wait goes on until it fetches.
//!
//! The wait is woken, never polled: a waiter parks in [`LowWatermarkWaiters`] and is answered
//! where the low watermark can move, as Kafka's `tryCompleteDelayedRequests` completes the
//! delete-records purgatory: a follower's fetch moving its log start offset
//! (`record_follower_log_start`), an ISR change (`after_state_change`), and resignation.
//!
//! Invariants: the wait is bounded by the request's timeout and ends when leadership moves;
//! at most `delete.records.purgatory.waiters.max` waiters per partition (a Sluice limit:
//! Kafka bounds its purgatory only through `queued.max.requests`); one that finds the limit
//! reached is answered REQUEST_TIMED_OUT at once (its records are deleted on the leader
//! already, as after a timeout); every parked waiter is answered exactly once or dropped with
//! its caller.

use std::time::Instant;

use futures_channel::oneshot;

use super::{PartitionError, PartitionProxy, ReplicatedPartition};

/// One DeleteRecords waiting for the low watermark to reach its offset.
struct Waiter {
    offset: i64,
    reply: oneshot::Sender<Result<i64, PartitionError>>,
}

/// The DeleteRecords waiting on one leader (Kafka's delete-records purgatory, per partition).
pub struct LowWatermarkWaiters {
    waiters: Vec<Waiter>,
    waiters_max: usize,
}

impl LowWatermarkWaiters {
    pub fn new(waiters_max: usize) -> Self {
        Self {
            waiters: Vec::new(),
            waiters_max,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Parks a wait for `offset`; `None` when the limit is reached (after dropping the
    /// waiters whose callers went away).
    fn park(&mut self, offset: i64) -> Option<oneshot::Receiver<Result<i64, PartitionError>>> {
        self.waiters.retain(|w| !w.reply.is_canceled());
        if self.waiters.len() >= self.waiters_max {
            return None;
        }
        let (reply, rx) = oneshot::channel();
        self.waiters.push(Waiter { offset, reply });
        Some(rx)
    }

    /// Answers every waiter `low` reaches with `low`; returns how many.
    fn complete(&mut self, low: i64) -> usize {
        let (due, kept): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|w| w.offset <= low);
        self.waiters = kept;
        let count = due.len();
        for waiter in due {
            let _gone_is_fine = waiter.reply.send(Ok(low));
        }
        count
    }

    /// Leadership moved: every waiter is answered NOT_LEADER_OR_FOLLOWER.
    fn fail_all(&mut self) -> usize {
        let count = self.waiters.len();
        for waiter in self.waiters.drain(..) {
            let _gone_is_fine = waiter.reply.send(Err(PartitionError::NotLeaderOrFollower));
        }
        count
    }
}

impl ReplicatedPartition {
    /// A follower's Fetch carried its log start offset (-1: not sent); a move answers the
    /// DeleteRecords it lets through.
    pub fn record_follower_log_start(&self, broker_id: i32, log_start_offset: i64) {
        if log_start_offset < 0 {
            return;
        }
        let previous = self
            .follower_log_starts
            .borrow_mut()
            .insert(broker_id, log_start_offset);
        if previous != Some(log_start_offset) {
            self.complete_low_watermark_waiters();
        }
    }

    /// Kafka's `lowWatermarkIfLeader`: the lowest log start offset of this replica and the
    /// ISR's followers (-1 for one not heard from).
    pub fn low_watermark(&self) -> i64 {
        let own = self.log_start_offset();
        let starts = self.follower_log_starts.borrow();
        let state = self.state.borrow();
        state
            .isr_state()
            .isr()
            .iter()
            .filter(|id| **id != self.config.local_broker_id)
            .map(|id| starts.get(id).copied().unwrap_or(-1))
            .fold(own, i64::min)
    }

    /// Answers the waiting DeleteRecords the low watermark now reaches (cheap when none wait:
    /// this runs on every follower fetch).
    pub(super) fn complete_low_watermark_waiters(&self) {
        if self.low_watermark_waiters.borrow().is_empty() {
            return;
        }
        let low = self.low_watermark();
        self.low_watermark_waiters.borrow_mut().complete(low);
    }

    /// How many DeleteRecords wait parked (tests wait for a park with it).
    #[cfg(test)]
    pub(crate) fn low_watermark_waiting(&self) -> usize {
        self.low_watermark_waiters.borrow().waiters.len()
    }

    /// Leadership moved: waiting DeleteRecords answer NOT_LEADER_OR_FOLLOWER.
    pub(super) fn fail_low_watermark_waiters(&self) {
        self.low_watermark_waiters.borrow_mut().fail_all();
    }

    /// Waits until the low watermark reaches `offset` (answered as the low watermark) or
    /// `deadline` (REQUEST_TIMED_OUT); NOT_LEADER_OR_FOLLOWER once leadership moved.
    pub async fn await_low_watermark(
        &self,
        offset: i64,
        deadline: Instant,
    ) -> Result<i64, PartitionError> {
        if !self.is_leading() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        let low = self.low_watermark();
        if low >= offset {
            return Ok(low);
        }
        // Checked and parked with no await between: no follower fetch can slip past.
        let Some(rx) = self.low_watermark_waiters.borrow_mut().park(offset) else {
            return Err(PartitionError::RequestTimedOut);
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        match compio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            // The leader went away with its waiters (the partition closed).
            Ok(Err(_cancelled)) => Err(PartitionError::NotLeaderOrFollower),
            Err(_elapsed) => Err(PartitionError::RequestTimedOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::partition::proxy::{AppendOrigin, AppendRequest};
    use crate::partition::{Partition, TopicPartition};
    use crate::replication::isr::LeaderRegistration;

    /// Far beyond any answer a wake-up gives: a test that reaches it lost its wake-up.
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
    /// A generous bound on a woken answer (a loaded 2-core machine), far below the timeout.
    const WOKEN_WITHIN: Duration = Duration::from_secs(30);

    /// A leader of replicas 1, 2, 3 (all in the ISR) holding offsets 0..10, with at most
    /// `waiters_max` DeleteRecords waiting.
    async fn leader(dir: &std::path::Path, waiters_max: usize) -> Rc<ReplicatedPartition> {
        let log = storage::Log::open(dir.to_path_buf(), storage::LogConfig::default())
            .await
            .unwrap();
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = crate::producers::ProducerStates::new(limits.state);
        let local = Rc::new(Partition::new(
            TopicPartition::new("t", 0),
            log,
            8,
            producers,
        ));
        local.become_leader(1).await.unwrap();
        let mut builder = storage::BatchBuilder::new(1_000);
        for _ in 0..10 {
            builder = builder.record(Some(b"k"), Some(b"v"), &[]);
        }
        let request = AppendRequest {
            records: builder.build().freeze(),
            origin: AppendOrigin::Client,
            acks: 1,
            flush_on_acks_all: false,
            now_ms: 2_000,
            timeout_ms: None,
            verification_guard: None,
        };
        local.clone().append(request).await.unwrap();
        let registration = LeaderRegistration {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader_epoch: 1,
            partition_epoch: 0,
        };
        let config = super::super::ReplicationConfig {
            local_broker_id: 1,
            delete_records_waiters_max: waiters_max,
            ..Default::default()
        };
        ReplicatedPartition::new(local, &registration, 10, config, 0)
    }

    /// [`leader`] with its own log start at 5 (DeleteRecords ran on it), in a fresh dir.
    async fn deleted_to_5(waiters_max: usize) -> (tempfile::TempDir, Rc<ReplicatedPartition>) {
        let dir = tempfile::tempdir().unwrap();
        let leader = leader(dir.path(), waiters_max).await;
        assert_eq!(leader.local().delete_records(5).await, Ok(5));
        (dir, leader)
    }

    /// A DeleteRecords wait for `offset` running on its own task, with [`REQUEST_TIMEOUT`].
    fn waiting(
        leader: &Rc<ReplicatedPartition>,
        offset: i64,
    ) -> compio::runtime::JoinHandle<Result<i64, PartitionError>> {
        let leader = Rc::clone(leader);
        compio::runtime::spawn(async move {
            let deadline = Instant::now() + REQUEST_TIMEOUT;
            leader.await_low_watermark(offset, deadline).await
        })
    }

    /// Lets spawned waits run up to their park (`count` parked).
    async fn until_parked(leader: &ReplicatedPartition, count: usize) {
        let deadline = Instant::now() + WOKEN_WITHIN;
        while leader.low_watermark_waiting() < count {
            assert!(Instant::now() < deadline, "the wait did not park");
            compio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The answer of a woken wait, failing the test if it was not woken.
    async fn woken(
        wait: compio::runtime::JoinHandle<Result<i64, PartitionError>>,
    ) -> Result<i64, PartitionError> {
        compio::time::timeout(WOKEN_WITHIN, wait)
            .await
            .expect("answered by a wake-up, long before the request's timeout")
            .unwrap()
    }

    /// The low watermark is the lowest log start of the leader and the ISR's followers (-1
    /// for one not heard from); the wait answers it once it reaches the offset, times out
    /// with REQUEST_TIMED_OUT, and ends with leadership.
    #[compio::test]
    async fn delete_records_waits_for_every_isr_followers_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let leader = leader(dir.path(), 16).await;
        assert_eq!(leader.low_watermark(), -1, "followers not heard from");
        assert_eq!(leader.local().delete_records(5).await, Ok(5));
        leader.record_follower_log_start(2, 5);
        leader.record_follower_log_start(3, 3);
        leader.record_follower_log_start(4, 0); // not a replica: ignored
        leader.record_follower_log_start(3, -1); // not sent: ignored
        assert_eq!(leader.low_watermark(), 3);
        let soon = Instant::now() + Duration::from_millis(30);
        assert_eq!(
            leader.await_low_watermark(5, soon).await,
            Err(PartitionError::RequestTimedOut)
        );
        leader.record_follower_log_start(3, 7);
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(leader.await_low_watermark(5, later).await, Ok(5));
        leader.resign();
        assert_eq!(
            leader.await_low_watermark(5, later).await,
            Err(PartitionError::NotLeaderOrFollower)
        );
    }

    /// Woken, not polled: a parked wait (its timeout far away) is answered by the follower
    /// fetch that moves the last lagging log start, and only by that one.
    #[compio::test]
    async fn a_follower_fetch_moving_its_log_start_wakes_the_wait() {
        let (_dir, leader) = deleted_to_5(16).await;
        leader.record_follower_log_start(2, 0);
        leader.record_follower_log_start(3, 0);
        let wait = waiting(&leader, 5);
        until_parked(&leader, 1).await;
        leader.record_follower_log_start(2, 5);
        leader.record_follower_log_start(3, 4);
        assert_eq!(
            leader.low_watermark_waiting(),
            1,
            "follower 3 is still below 5"
        );
        leader.record_follower_log_start(3, 6);
        assert_eq!(woken(wait).await, Ok(5));
        assert_eq!(leader.low_watermark_waiting(), 0);
    }

    /// An ISR change that drops the lagging follower wakes the wait (Kafka completes the
    /// purgatory on ISR changes too); resignation answers NOT_LEADER_OR_FOLLOWER at once.
    #[compio::test]
    async fn an_isr_shrink_and_a_resignation_wake_the_wait() {
        let (_dir, leader) = deleted_to_5(16).await;
        leader.record_follower_log_start(2, 5);
        let wait = waiting(&leader, 5);
        until_parked(&leader, 1).await;
        leader.on_isr_committed(1, 1, vec![1, 2]);
        assert_eq!(woken(wait).await, Ok(5), "follower 3 left the ISR");

        let wait = waiting(&leader, 8);
        until_parked(&leader, 1).await;
        leader.resign();
        assert_eq!(woken(wait).await, Err(PartitionError::NotLeaderOrFollower));
    }

    /// At most `delete.records.purgatory.waiters.max` waits park; one more is answered
    /// REQUEST_TIMED_OUT at once, and a place frees when a caller goes away.
    #[compio::test]
    async fn waiters_are_bounded() {
        let (_dir, leader) = deleted_to_5(2).await;
        let first = waiting(&leader, 5);
        let second = waiting(&leader, 5);
        until_parked(&leader, 2).await;
        let far = Instant::now() + REQUEST_TIMEOUT;
        assert_eq!(
            leader.await_low_watermark(5, far).await,
            Err(PartitionError::RequestTimedOut),
            "full: answered at once"
        );
        drop(first);
        let third = waiting(&leader, 5);
        until_parked(&leader, 2).await;
        leader.record_follower_log_start(2, 5);
        leader.record_follower_log_start(3, 5);
        assert_eq!(woken(second).await, Ok(5));
        assert_eq!(woken(third).await, Ok(5));
    }
}
