//! The Fetch of a follower broker (Kafka's `handleFetchRequest` with `isFromFollower`: a
//! `replica_id` >= 0 before v15, `ReplicaState.replica_id` from v15): authorized as
//! CLUSTER_ACTION on the cluster (else every partition TOPIC_AUTHORIZATION_FAILED), no fetch
//! session, each partition read by its replicated leader up to the log end
//! (`PartitionService::follower_fetch`, which records the follower's progress), with the
//! diverging epoch when the follower's log diverges (v12+). With nothing new on any owner it
//! long-polls on the partitions' append notifiers (`Router::wait_for_data`) and reads again,
//! until something is new or the wait is over (a wake-up without news waits on).
//!
//! Invariants: a follower fetch never reads a partition this broker does not lead with
//! followers (NOT_LEADER_OR_FOLLOWER); the wait is bounded by min(max_wait_ms,
//! fetch.max.wait.ms); each partition returns at most min(partition_max_bytes, max_bytes)
//! (plus the first batch, KIP-74).

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::ResponseError;

use super::encode::{PartitionOut, ResponseOut, TopicOut};
use super::{push_partition, TOPIC_ID_VERSION};
use crate::handlers::error::partition_error_code;
use crate::handlers::{authz, Request};
use crate::partition::api::{FollowerFetchItem, FollowerFetchResult};
use crate::partition::TopicPartition;
use crate::router::Router;
use crate::security::acl::Operation;
use crate::shard::Shard;
use crate::topics::TopicId;

/// First version carrying the replica id in `ReplicaState` (KIP-903).
const REPLICA_STATE_VERSION: i16 = 15;

/// The follower's broker id when this Fetch comes from a follower.
pub fn follower_id(body: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= REPLICA_STATE_VERSION {
        body.replica_state.replica_id.0
    } else {
        body.replica_id.0
    };
    (id >= 0).then_some(id)
}

/// One requested partition: resolved to a read, or answered with an error.
struct Requested {
    name: String,
    topic_id: uuid::Uuid,
    partition: i32,
    item: Result<FollowerFetchItem, i16>,
}

pub async fn respond(
    shard: &Rc<Shard>,
    request: &Request,
    body: &FetchRequest,
    version: i16,
    replica_id: i32,
) -> ResponseOut {
    let authorized = authz::cluster_allowed(shard, request, Operation::ClusterAction);
    let max_bytes = u32::try_from(body.max_bytes)
        .unwrap_or(0)
        .min(shard.config.fetch.fetch_max_bytes);
    let requested = resolve(shard, body, version, authorized, max_bytes);
    let items: Vec<FollowerFetchItem> = requested
        .iter()
        .filter_map(|r| r.item.as_ref().ok().cloned())
        .collect();
    let cap_ms = u64::try_from(body.max_wait_ms)
        .unwrap_or(0)
        .min(u64::from(shard.config.fetch.fetch_max_wait_ms));
    let deadline = Instant::now() + Duration::from_millis(cap_ms);
    let router = Router::new(shard.router_context());
    let waits: Vec<(TopicPartition, i64)> = items
        .iter()
        .map(|i| (i.tp.clone(), i.fetch_offset))
        .collect();
    let throttle = LeaderThrottle::of(shard, &items, replica_id);
    let results = long_poll(
        deadline,
        &throttle.held,
        || router.follower_fetch(replica_id, items.clone(), Instant::now()),
        || router.wait_for_follower_data(waits.clone(), deadline),
    )
    .await;
    let mut results = results.into_iter();
    let mut item_index = 0;
    let mut throttled_bytes = 0_u64;
    let mut topics: Vec<TopicOut> = Vec::new();
    for r in requested {
        let data = match r.item {
            Ok(_) => {
                let (throttled, held) = throttle.of_item(item_index);
                item_index += 1;
                match results.next() {
                    Some(result) => {
                        let mut out = partition_out(r.partition, result, held);
                        if held {
                            out.records.clear();
                        }
                        // What was sent counts against the leader quota (held: nothing).
                        if throttled {
                            throttled_bytes +=
                                out.records.iter().map(|r| u64::from(r.len)).sum::<u64>();
                        }
                        out
                    }
                    None => error_out(r.partition, ResponseError::UnknownServerError.code()),
                }
            }
            Err(code) => error_out(r.partition, code),
        };
        push_partition(&mut topics, &r.name, r.topic_id, data);
    }
    if throttled_bytes > 0 {
        use crate::cluster::replication_quota::{record, Side};
        record(
            Side::Leader,
            &shard.config,
            throttled_bytes,
            crate::clock::system_now_ms(),
        );
    }
    ResponseOut {
        topics,
        ..ResponseOut::default()
    }
}

/// Kafka's `DelayedFetch` for a follower: reads, and while nothing is new on any partition
/// and `deadline` has not passed, waits for a wake-up (the first owner to see one ends the
/// wait, as for consumers) and reads again. A wake-up is only a hint: the partitions'
/// notifiers also fire when the high watermark moves (another follower's fetch), and
/// answering that empty would make this follower's next fetch, and so every acks=all
/// produce waiting on it, late. Bounded by `deadline`: the waits end there.
async fn long_poll<Read, ReadFut, Wait, WaitFut>(
    deadline: Instant,
    held: &[bool],
    mut read: Read,
    mut wait: Wait,
) -> Vec<FollowerFetchResult>
where
    Read: FnMut() -> ReadFut,
    ReadFut: std::future::Future<Output = Vec<FollowerFetchResult>>,
    Wait: FnMut() -> WaitFut,
    WaitFut: std::future::Future<Output = ()>,
{
    // A partition held back by the leader's replication throttle is no news (Kafka's
    // DelayedFetch does not count its bytes).
    let news = |results: &[FollowerFetchResult]| {
        results
            .iter()
            .enumerate()
            .any(|(i, r)| !held.get(i).copied().unwrap_or(false) && has_news(r))
    };
    let mut results = read().await;
    while !news(&results) && Instant::now() < deadline {
        wait().await;
        results = read().await;
    }
    results
}

/// Records, a diverging epoch or an error: worth answering without waiting.
fn has_news(result: &FollowerFetchResult) -> bool {
    match result {
        Ok(ok) => ok.read.slice.is_some() || ok.diverging_epoch.is_some(),
        Err(_) => true,
    }
}

fn resolve(
    shard: &Shard,
    body: &FetchRequest,
    version: i16,
    authorized: bool,
    max_bytes: u32,
) -> Vec<Requested> {
    let image = shard.topics.borrow();
    let mut out = Vec::new();
    for topic in &body.topics {
        let meta = if version >= TOPIC_ID_VERSION {
            image.by_id(TopicId(topic.topic_id.as_u128()))
        } else {
            image.get(topic.topic.0.as_str())
        };
        for p in &topic.partitions {
            let in_range =
                meta.filter(|m| u32::try_from(p.partition).is_ok_and(|i| i < m.partitions));
            let item = match (authorized, in_range) {
                (false, _) => Err(ResponseError::TopicAuthorizationFailed.code()),
                (true, Some(meta)) => Ok(FollowerFetchItem {
                    tp: TopicPartition::new(meta.name.clone(), p.partition.unsigned_abs()),
                    fetch_offset: p.fetch_offset,
                    last_fetched_epoch: p.last_fetched_epoch,
                    current_leader_epoch: p.current_leader_epoch,
                    max_bytes: u32::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .min(max_bytes),
                    log_start_offset: p.log_start_offset,
                }),
                (true, None) if version >= TOPIC_ID_VERSION && meta.is_none() => {
                    Err(ResponseError::UnknownTopicId.code())
                }
                (true, None) => Err(ResponseError::UnknownTopicOrPartition.code()),
            };
            out.push(Requested {
                name: meta.map_or_else(|| topic.topic.0.to_string(), |m| m.name.clone()),
                topic_id: topic.topic_id,
                partition: p.partition,
                item,
            });
        }
    }
    // Kafka keys the fetch by topic-partition: a repeated partition is answered once.
    crate::handlers::dedup::last_wins(out, |r| (r.name.clone(), r.topic_id, r.partition))
}

/// The leader side of the replication throttle for one follower Fetch (Kafka's
/// `shouldLeaderThrottle`, decided when the fetch starts): per item, whether its partition is
/// a throttled replica here, and whether its records are held back (throttled, the follower
/// not in the ISR, the leader quota exceeded).
struct LeaderThrottle {
    throttled: Vec<bool>,
    held: Vec<bool>,
}

impl LeaderThrottle {
    fn of(shard: &Shard, items: &[FollowerFetchItem], replica_id: i32) -> Self {
        use crate::cluster::replication_quota::{is_exceeded, is_throttled, rate_of, Side};
        let none = Self {
            throttled: Vec::new(),
            held: Vec::new(),
        };
        let Some(rate) = rate_of(&shard.dynamic_configs.borrow(), Side::Leader) else {
            return none;
        };
        let image = shard.topics.borrow();
        let node = shard.config.server.node_id;
        let throttled: Vec<bool> = items
            .iter()
            .map(|i| is_throttled(&image, &i.tp, node, Side::Leader))
            .collect();
        if !throttled.contains(&true) {
            return none;
        }
        let now_ms = crate::clock::system_now_ms();
        let exceeded = is_exceeded(Side::Leader, &shard.config, rate, now_ms);
        let held = items
            .iter()
            .zip(&throttled)
            .map(|(i, t)| {
                let in_isr = image
                    .partition(&i.tp.topic, i.tp.partition)
                    .is_some_and(|r| r.isr.contains(&replica_id));
                *t && exceeded && !in_isr
            })
            .collect();
        Self { throttled, held }
    }

    /// (throttled, held) of item `i`.
    fn of_item(&self, i: usize) -> (bool, bool) {
        (
            self.throttled.get(i).copied().unwrap_or(false),
            self.held.get(i).copied().unwrap_or(false),
        )
    }
}

fn partition_out(index: i32, result: FollowerFetchResult, held: bool) -> PartitionOut {
    match result {
        Ok(ok) => {
            let records = ok.read.slice.map(|s| s.ranges).unwrap_or_default();
            // Kafka's ReplicationBytesOutPerSec: what the leader serves its followers.
            if !held {
                crate::cluster::replication_metrics::add_bytes_out(
                    records.iter().map(|r| u64::from(r.len)).sum(),
                );
            }
            PartitionOut {
                index,
                error_code: 0,
                high_watermark: ok.read.high_watermark,
                last_stable_offset: ok.read.last_stable_offset,
                log_start_offset: ok.read.log_start_offset,
                records,
                aborted_transactions: Vec::new(),
                current_leader: None,
                diverging_epoch: ok.diverging_epoch.map(|d| (d.leader_epoch, d.end_offset)),
            }
        }
        Err(e) => error_out(index, partition_error_code(&e)),
    }
}

fn error_out(index: i32, error_code: i16) -> PartitionOut {
    PartitionOut {
        index,
        error_code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        records: Vec::new(),
        aborted_transactions: Vec::new(),
        current_leader: None,
        diverging_epoch: None,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::partition::api::{FollowerFetchOk, ReadOk};

    fn answer(news: bool) -> Vec<FollowerFetchResult> {
        let slice = news.then(|| storage::ReadSlice {
            ranges: Vec::new(),
            total_bytes: 1,
        });
        vec![Ok(FollowerFetchOk {
            read: ReadOk {
                high_watermark: 0,
                last_stable_offset: 0,
                log_start_offset: 0,
                slice,
                aborted_transactions: None,
            },
            diverging_epoch: None,
        })]
    }

    /// Wake-ups without news (the high watermark moved) do not end a follower's long-poll:
    /// it reads again and answers once records come.
    #[compio::test]
    async fn wake_up_without_news_keeps_waiting() {
        let reads = Cell::new(0);
        let waits = Cell::new(0);
        let deadline = Instant::now() + Duration::from_secs(600);
        let results = long_poll(
            deadline,
            &[],
            || {
                reads.set(reads.get() + 1);
                let news = reads.get() == 3;
                async move { answer(news) }
            },
            || {
                waits.set(waits.get() + 1);
                async {}
            },
        )
        .await;
        assert!(results.iter().any(has_news));
        assert_eq!((reads.get(), waits.get()), (3, 2));
    }

    /// Past the deadline a follower gets the empty answer without waiting.
    #[compio::test]
    async fn deadline_passed_answers_at_once() {
        let waits = Cell::new(0);
        let results = long_poll(
            Instant::now(),
            &[],
            || async { answer(false) },
            || {
                waits.set(waits.get() + 1);
                async {}
            },
        )
        .await;
        assert!(!results.iter().any(has_news));
        assert_eq!(waits.get(), 0);
    }
}
