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
//! Invariant: the wait is bounded by the request's timeout and ends when leadership moves.

use std::time::{Duration, Instant};

use super::{PartitionError, PartitionProxy, ReplicatedPartition};

/// How often a waiting DeleteRecords looks at the followers' log start offsets again (their
/// fetches arrive at least every `replica.fetch.wait.max.ms`; the answer waits at most this
/// much longer than Kafka's, whose purgatory is checked on each fetch).
const LOW_WATERMARK_POLL_MS: u64 = 10;

impl ReplicatedPartition {
    /// A follower's Fetch carried its log start offset (-1: not sent).
    pub fn record_follower_log_start(&self, broker_id: i32, log_start_offset: i64) {
        if log_start_offset >= 0 {
            self.follower_log_starts
                .borrow_mut()
                .insert(broker_id, log_start_offset);
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

    /// Waits until the low watermark reaches `offset` (answered as the low watermark) or
    /// `deadline` (REQUEST_TIMED_OUT); NOT_LEADER_OR_FOLLOWER once leadership moved.
    pub async fn await_low_watermark(
        &self,
        offset: i64,
        deadline: Instant,
    ) -> Result<i64, PartitionError> {
        loop {
            if !self.is_leading() {
                return Err(PartitionError::NotLeaderOrFollower);
            }
            let low = self.low_watermark();
            if low >= offset {
                return Ok(low);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PartitionError::RequestTimedOut);
            }
            let poll = Duration::from_millis(LOW_WATERMARK_POLL_MS).min(deadline - now);
            compio::time::sleep(poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::partition::proxy::{AppendOrigin, AppendRequest};
    use crate::partition::{Partition, TopicPartition};
    use crate::replication::isr::LeaderRegistration;

    async fn leader(dir: &std::path::Path) -> Rc<ReplicatedPartition> {
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
            ..Default::default()
        };
        ReplicatedPartition::new(local, &registration, 10, config, 0)
    }

    /// The low watermark is the lowest log start of the leader and the ISR's followers (-1
    /// for one not heard from); the wait answers it once it reaches the offset, times out
    /// with REQUEST_TIMED_OUT, and ends with leadership.
    #[compio::test]
    async fn delete_records_waits_for_every_isr_followers_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let leader = leader(dir.path()).await;
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
}
