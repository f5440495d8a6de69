//! The follower side's fetch state: one [`FetcherSession`] per (source broker, fetcher id),
//! holding the fetch state of every partition this broker follows from that leader (Kafka's
//! `AbstractFetcherThread.partitionStates`), as a state machine without I/O. The fetcher task
//! asks it for the next Fetch (`fetch_plan`), sends it with this broker's replica id, and feeds
//! each partition's answer back (`on_response`), which says what to do: append the records,
//! truncate to a diverging epoch, resolve an out-of-range offset, or back off.
//!
//! Partitions are spread over `num.replica.fetchers` sessions per source broker by Kafka's
//! `getFetcherId` hash, so one slow partition does not hold up the others of another session.
//!
//! Invariants: an answer is applied only if it is for the partition's current fetch offset
//! (a truncation or re-add in between makes it stale); a partition in `Truncating` is never
//! fetched; a delayed partition is not fetched before its backoff ends.

use std::collections::BTreeMap;

use super::truncation::EpochEndOffset;

/// The fetcher settings, Kafka's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetcherConfig {
    /// `num.replica.fetchers` (Kafka's default 1).
    pub num_replica_fetchers: usize,
    /// `replica.fetch.max.bytes`: per partition (1 MiB).
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per response (10 MiB).
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms` (500).
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes` (1).
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms` (1000).
    pub replica_fetch_backoff_ms: i64,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            num_replica_fetchers: 1,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_backoff_ms: 1000,
        }
    }
}

impl From<&crate::config::BrokerConfig> for FetcherConfig {
    fn from(c: &crate::config::BrokerConfig) -> Self {
        let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            num_replica_fetchers: usize::try_from(c.replication.num_replica_fetchers).unwrap_or(1),
            replica_fetch_max_bytes: int(c.replication.replica_fetch_max_bytes),
            replica_fetch_response_max_bytes: int(c.replication.replica_fetch_response_max_bytes),
            replica_fetch_wait_max_ms: int(c.replication.replica_fetch_wait_max_ms),
            replica_fetch_min_bytes: int(c.replication.replica_fetch_min_bytes),
            replica_fetch_backoff_ms: i64::try_from(c.replication.replica_fetch_backoff_ms)
                .unwrap_or(i64::MAX),
        }
    }
}

/// Java's `String.hashCode` (over UTF-16 code units), for Kafka's fetcher assignment.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Kafka's `AbstractFetcherManager.getFetcherId`: which of `num_fetchers` sessions to a
/// source broker fetches this partition.
pub fn fetcher_id(topic: &str, partition: i32, num_fetchers: usize) -> usize {
    let hash = java_string_hash(topic)
        .wrapping_mul(31)
        .wrapping_add(partition);
    // Kafka's `Utils.abs`: i32::MIN maps to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    usize::try_from(abs).unwrap_or(0) % num_fetchers.max(1)
}

/// Whether a partition fetches or first reconciles its log with the leader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPhase {
    /// Waiting for an OffsetForLeaderEpoch answer (no last fetched epoch to send).
    Truncating,
    Fetching,
}

/// One partition's fetch state (Kafka's `PartitionFetchState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionFetchState {
    pub fetch_offset: i64,
    /// The leader epoch this broker believes current (sent for KIP-320 fencing).
    pub current_leader_epoch: i32,
    /// The epoch of the last batch fetched (sent so the leader can spot divergence); -1
    /// unknown.
    pub last_fetched_epoch: i32,
    pub phase: FetchPhase,
    /// Not fetched before this time (after an error).
    pub delayed_until_ms: i64,
    /// The leader's high watermark minus the fetch offset, as of the last answer.
    pub lag: Option<i64>,
}

/// One partition of a Fetch to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    pub topic: String,
    pub partition: i32,
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    pub partition_max_bytes: i32,
}

/// A Fetch to send to the source broker (with this broker's replica id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPlan {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partitions: Vec<FetchPartition>,
}

/// One partition's answer, as the fetcher decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAnswer {
    /// The Kafka error code (0: none).
    pub error_code: i16,
    pub high_watermark: i64,
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Whether the answer carried record batches.
    pub has_records: bool,
}

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchAction {
    /// Stale (the partition moved on or is gone): drop it.
    Ignore,
    /// Nothing new; the high watermark learnt.
    UpToDate { high_watermark: i64 },
    /// Append the records (`Partition::append_as_follower`), then `on_appended`.
    Append { high_watermark: i64 },
    /// The log diverges: compute the truncation (`truncation::truncation_offset`), truncate,
    /// then `on_truncated`.
    Truncate(EpochEndOffset),
    /// OFFSET_OUT_OF_RANGE: ask the leader its log start and end, then
    /// `out_of_range_decision`.
    ResolveOutOfRange,
    /// FENCED_LEADER_EPOCH: this broker's metadata is behind; the partition leaves the
    /// session until the metadata brings the new leader.
    Removed,
    /// A retriable error (NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH, ...): backed off.
    BackedOff,
}

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const FENCED_LEADER_EPOCH: i16 = 74;

/// Kafka's `fetchOffsetAndTruncate` after OFFSET_OUT_OF_RANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    /// The leader's log ends before ours (an unclean election): truncate to its end.
    TruncateTo(i64),
    /// Our log ends before the leader's start (we were away past retention): start over there.
    TruncateFullyAndStartAt(i64),
    /// Keep the log and fetch from our end.
    FetchFrom(i64),
}

/// See [`OutOfRange`].
pub fn out_of_range_decision(leader_start: i64, leader_end: i64, replica_end: i64) -> OutOfRange {
    if leader_end < replica_end {
        OutOfRange::TruncateTo(leader_end)
    } else if leader_start > replica_end {
        OutOfRange::TruncateFullyAndStartAt(leader_start)
    } else {
        OutOfRange::FetchFrom(replica_end)
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct FetcherSession {
    pub source_broker: i32,
    config: FetcherConfig,
    partitions: BTreeMap<(String, i32), PartitionFetchState>,
}

impl FetcherSession {
    pub fn new(source_broker: i32, config: FetcherConfig) -> Self {
        Self {
            source_broker,
            config,
            partitions: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    pub fn state(&self, topic: &str, partition: i32) -> Option<&PartitionFetchState> {
        self.partitions.get(&(topic.to_owned(), partition))
    }

    /// Whether an answer for `topic`-`partition` must not touch the replica any more: the
    /// replica took a newer leader epoch (`replica_epoch`: it leads now, or follows a newer
    /// leader) than the one this session fetches it in, or the session dropped it. Kafka
    /// removes a partition from its fetcher before `makeLeader`, so such an answer is never
    /// applied; a round still in flight meanwhile must not append the old leader's batches
    /// below the new epoch's start (their epoch would contradict the epoch cache, and every
    /// follower would truncate and refetch them forever).
    /// A session that fetches without a leader epoch (-1: not checked, as in Kafka's
    /// KIP-320 requests without one) never finds an answer stale by epoch.
    pub fn is_stale_for(&self, topic: &str, partition: i32, replica_epoch: i32) -> bool {
        self.state(topic, partition)
            .is_none_or(|s| s.current_leader_epoch >= 0 && s.current_leader_epoch < replica_epoch)
    }

    /// Starts following a partition at its log end. With a last fetched epoch the leader
    /// checks divergence on the first Fetch (KIP-595's truncation on fetch); without one (an
    /// empty epoch cache over a non-empty log) it first reconciles by OffsetForLeaderEpoch.
    pub fn add_partition(
        &mut self,
        topic: &str,
        partition: i32,
        log_end: i64,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
    ) {
        let phase = if last_fetched_epoch >= 0 || log_end == 0 {
            FetchPhase::Fetching
        } else {
            FetchPhase::Truncating
        };
        self.partitions.insert(
            (topic.to_owned(), partition),
            PartitionFetchState {
                fetch_offset: log_end,
                current_leader_epoch,
                last_fetched_epoch,
                phase,
                delayed_until_ms: 0,
                lag: None,
            },
        );
    }

    pub fn remove_partition(&mut self, topic: &str, partition: i32) -> bool {
        self.partitions
            .remove(&(topic.to_owned(), partition))
            .is_some()
    }

    /// The next Fetch: every fetching partition not backed off; `None` when there is none.
    pub fn fetch_plan(&self, now_ms: i64) -> Option<FetchPlan> {
        let partitions: Vec<FetchPartition> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.phase == FetchPhase::Fetching && s.delayed_until_ms <= now_ms)
            .map(|((topic, partition), s)| FetchPartition {
                topic: topic.clone(),
                partition: *partition,
                fetch_offset: s.fetch_offset,
                current_leader_epoch: s.current_leader_epoch,
                last_fetched_epoch: s.last_fetched_epoch,
                partition_max_bytes: self.config.replica_fetch_max_bytes,
            })
            .collect();
        (!partitions.is_empty()).then_some(FetchPlan {
            max_wait_ms: self.config.replica_fetch_wait_max_ms,
            min_bytes: self.config.replica_fetch_min_bytes,
            max_bytes: self.config.replica_fetch_response_max_bytes,
            partitions,
        })
    }

    /// Partitions waiting for OffsetForLeaderEpoch: (topic, partition, current leader epoch).
    pub fn truncating(&self) -> Vec<(String, i32, i32)> {
        self.partitions
            .iter()
            .filter(|(_, s)| s.phase == FetchPhase::Truncating)
            .map(|((t, p), s)| (t.clone(), *p, s.current_leader_epoch))
            .collect()
    }

    /// Kafka's `processFetchRequest` per partition: what the answer to a fetch at
    /// `requested_offset` means.
    pub fn on_response(
        &mut self,
        topic: &str,
        partition: i32,
        requested_offset: i64,
        answer: &PartitionAnswer,
        now_ms: i64,
    ) -> FetchAction {
        let backoff = self.config.replica_fetch_backoff_ms;
        let key = (topic.to_owned(), partition);
        let Some(state) = self.partitions.get_mut(&key) else {
            return FetchAction::Ignore;
        };
        if state.fetch_offset != requested_offset || state.phase != FetchPhase::Fetching {
            return FetchAction::Ignore;
        }
        match answer.error_code {
            NONE => {
                state.lag = Some((answer.high_watermark - state.fetch_offset).max(0));
                if let Some(diverging) = answer.diverging_epoch {
                    // Truncate before anything else; the marks come with the next fetch.
                    state.phase = FetchPhase::Truncating;
                    FetchAction::Truncate(diverging)
                } else if answer.has_records {
                    FetchAction::Append {
                        high_watermark: answer.high_watermark,
                    }
                } else {
                    FetchAction::UpToDate {
                        high_watermark: answer.high_watermark,
                    }
                }
            }
            OFFSET_OUT_OF_RANGE => FetchAction::ResolveOutOfRange,
            FENCED_LEADER_EPOCH => {
                self.partitions.remove(&key);
                FetchAction::Removed
            }
            _ => {
                state.delayed_until_ms = now_ms.saturating_add(backoff);
                FetchAction::BackedOff
            }
        }
    }

    /// Records appended: fetch on from `next_offset`, in `last_epoch`.
    pub fn on_appended(&mut self, topic: &str, partition: i32, next_offset: i64, last_epoch: i32) {
        if let Some(s) = self.partitions.get_mut(&(topic.to_owned(), partition)) {
            s.fetch_offset = next_offset;
            if last_epoch >= 0 {
                s.last_fetched_epoch = last_epoch;
            }
        }
    }

    /// Before appending an answer to a fetch at `requested`: true when the follower's log
    /// still ends there. Otherwise the log moved under the fetch state (a leader append in
    /// flight when this replica became a follower landed after it joined the fetcher, or an
    /// append was refused for a batch below the log end): the answer is not appended, and the
    /// partition reconciles by leader epoch from its own log end and latest epoch
    /// (OffsetForLeaderEpoch, then truncation of any divergent tail), never by retrying the
    /// same append or truncating to the high watermark.
    pub fn log_still_ends_at(
        &mut self,
        topic: &str,
        partition: i32,
        requested: i64,
        log_end: i64,
        latest_epoch: i32,
    ) -> bool {
        if requested == log_end {
            return true;
        }
        self.reconcile_from(topic, partition, log_end, latest_epoch);
        false
    }

    /// Reconciles the partition by leader epoch (OffsetForLeaderEpoch about `latest_epoch`)
    /// before fetching again from `log_end` (see [`Self::log_still_ends_at`]).
    pub fn reconcile_from(&mut self, topic: &str, partition: i32, log_end: i64, latest_epoch: i32) {
        self.on_truncated(topic, partition, log_end, latest_epoch, false);
    }

    /// Truncated to `log_end` (now the follower's log end, with `latest_epoch` its newest
    /// epoch): fetch from there, or ask again when the step was not complete.
    pub fn on_truncated(
        &mut self,
        topic: &str,
        partition: i32,
        log_end: i64,
        latest_epoch: i32,
        completed: bool,
    ) {
        if let Some(s) = self.partitions.get_mut(&(topic.to_owned(), partition)) {
            s.fetch_offset = log_end;
            s.last_fetched_epoch = latest_epoch;
            s.phase = if completed {
                FetchPhase::Fetching
            } else {
                FetchPhase::Truncating
            };
        }
    }

    /// A local failure (a corrupt batch, a refused append): back off and retry.
    pub fn on_error(&mut self, topic: &str, partition: i32, now_ms: i64) {
        let backoff = self.config.replica_fetch_backoff_ms;
        if let Some(s) = self.partitions.get_mut(&(topic.to_owned(), partition)) {
            s.delayed_until_ms = now_ms.saturating_add(backoff);
        }
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
