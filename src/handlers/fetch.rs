//! Fetch: resolves the partitions (by name, or by topic id from v13), applies the KIP-227
//! session, reads from the owners, long-polls until `min_bytes` or `max_wait_ms`, fits the
//! answer to `max_bytes` and hand-encodes it (`encode`) with the record bytes left as segment
//! file ranges: the connection splices them to the socket (`fetch.zero.copy = true`) or reads
//! them into pooled buffers and writes them (`false`); the handler never copies records.
//!
//! Invariants: the wait is bounded by min(max_wait_ms, fetch.max.wait.ms); partitions are
//! filled in request order, each with whole batches within min(partition_max_bytes, what is
//! left of max_bytes), except that the first partition with data returns at least its first
//! batch even past both limits (KIP-74); a fetch from inside a batch returns that whole batch
//! (the client skips the earlier records). With a `consumer_byte_rate` quota, max_bytes is also
//! capped at one quota window's bytes; a throttled fetch is replaced after the handler by
//! `throttled_response` (`handlers/throttle.rs`).

mod encode;
mod replica;

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::ResponseError;

use self::encode::{PartitionOut, ResponseOut, TopicOut};
use super::error::partition_error_code;
use super::fetch_session::{PartitionSeen, Plan, SessionPartition};
use super::{authz, BodyPart, HandlerError, HandlerFuture, Outcome, Request};
use crate::partition::TopicPartition;
use crate::router::{ReadItem, ReadResult, Router};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;
use crate::topics::TopicId;

/// Whether a Fetch request body (of `version`) is a follower's (a replica id >= 0): the
/// replication traffic that Kafka exempts from client quotas (`handlers::throttle`).
pub fn is_from_follower(body: &bytes::Bytes, version: i16) -> bool {
    use kafka_protocol::protocol::Decodable;
    FetchRequest::decode(&mut body.clone(), version)
        .ok()
        .and_then(|b| replica::follower_id(&b, version))
        .is_some()
}

/// First version that names topics by id.
const TOPIC_ID_VERSION: i16 = 13;
/// First version with fetch sessions.
const SESSION_VERSION: i16 = 7;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: FetchRequest = request.decode()?;
        let response = match replica::follower_id(&body, version) {
            Some(replica_id) => {
                replica::respond(&shard, &request, &body, version, replica_id).await
            }
            None => respond(&shard, &request, body, version).await,
        };
        let parts =
            encode::encode(&response, version).map_err(|e| HandlerError::Encode(e.to_string()))?;
        Ok(Outcome::Body(parts))
    })
}

/// Kafka caps a consumer's fetch at what its `consumer_byte_rate` allows in one quota window
/// (`getMaxValueInQuotaWindow`), so that one response never exceeds the quota on its own.
fn max_bytes_in_quota_window(shard: &Shard, request: &Request) -> u32 {
    if !shard.quotas.active() || !request.session.is_authenticated() {
        return u32::MAX;
    }
    let user = request.session.principal_name();
    let client_id = request.header.client_id.as_deref().unwrap_or("");
    match shard.quotas.max_fetch_bytes_in_window(&user, client_id) {
        // A float-to-int `as` saturates: a huge quota is no cap, a tiny one is 0 bytes (the
        // first batch still comes back, KIP-74).
        Some(bytes) => bytes as u32,
        None => u32::MAX,
    }
}

/// Kafka's `FetchContext.getThrottledResponse`: the answer to a fetch over a quota carries
/// `throttle_time_ms`, error NONE and no partitions at all (so no records); the fetch session
/// id of the response it replaces is kept, so an incremental session carries on. Returns
/// `None` when `parts` is not a Fetch response body this encoder wrote.
pub fn throttled_response(
    parts: &[BodyPart],
    version: i16,
    throttle_time_ms: i32,
) -> Option<Vec<BodyPart>> {
    let session_id = if version >= SESSION_VERSION {
        // throttle_time_ms (4 bytes) and error_code (2) come first.
        let Some(BodyPart::Bytes(first)) = parts.first() else {
            return None;
        };
        let field: [u8; 4] = first.get(6..10)?.try_into().ok()?;
        i32::from_be_bytes(field)
    } else {
        0
    };
    let response = ResponseOut {
        throttle_time_ms,
        session_id,
        ..ResponseOut::default()
    };
    encode::encode(&response, version).ok()
}

/// A requested partition whose topic did not resolve (answered with an error, never read).
struct Unresolved {
    name: String,
    topic_id: uuid::Uuid,
    partition: i32,
    error: i16,
}

async fn respond(
    shard: &Rc<Shard>,
    request: &Request,
    body: FetchRequest,
    version: i16,
) -> ResponseOut {
    let (requested, unresolved) = resolve(shard, request, &body, version);
    let forgotten = forgotten(shard, &body, version);
    let (session_id, epoch) = if version >= SESSION_VERSION {
        (body.session_id, body.session_epoch)
    } else {
        (0, -1)
    };
    let plan = shard
        .fetch_sessions
        .borrow_mut()
        .begin(session_id, epoch, requested, &forgotten);
    let plan = match plan {
        Ok(plan) => plan,
        Err(code) => {
            return ResponseOut {
                error_code: code,
                ..ResponseOut::default()
            }
        }
    };
    let cap_ms = u64::try_from(body.max_wait_ms)
        .unwrap_or(0)
        .min(u64::from(shard.config.fetch.fetch_max_wait_ms));
    let deadline = Instant::now() + Duration::from_millis(cap_ms);
    let max_bytes = u32::try_from(body.max_bytes)
        .unwrap_or(0)
        .min(shard.config.fetch.fetch_max_bytes)
        .min(max_bytes_in_quota_window(shard, request));
    // Kafka: fetchMinBytes = min(request min bytes, fetchMaxBytes).
    let min_bytes = u32::try_from(body.min_bytes).unwrap_or(0).min(max_bytes);
    let router = Router::new(shard.router_context());
    // isolation_level 1 (READ_COMMITTED): up to the LSO, with the aborted transactions.
    let reads = Reads {
        plan: &plan,
        read_committed: body.isolation_level == 1,
    };
    let mut results =
        read_until_ready(shard, &router, &reads, max_bytes, min_bytes, deadline).await;
    fit_to_budget(&router, &reads, &mut results, max_bytes).await;
    refuse_unreadable_session_partitions(shard, request, &plan, &mut results);
    if version >= TOPIC_ID_VERSION {
        refuse_replaced_topics(shard, &plan, &mut results);
    }
    let seen: Vec<PartitionSeen> = results.iter().map(seen_of).collect();
    let include = shard.fetch_sessions.borrow_mut().finish(&plan, &seen);
    let mut topics: Vec<TopicOut> = Vec::new();
    // KIP-951: from v12 a NOT_LEADER_OR_FOLLOWER partition names its current leader.
    let mut leaders = super::route::LeaderHints::new(shard, request, 12);
    for ((planned, result), included) in plan.partitions.iter().zip(results).zip(include) {
        if !included {
            continue;
        }
        let not_leader = matches!(
            result,
            Err(crate::router::PartitionError::NotLeaderOrFollower)
        );
        let mut data = partition_out(planned.tp.partition as i32, result);
        if not_leader {
            data.current_leader = leaders.current(&planned.tp.topic, data.index);
        }
        push_partition(&mut topics, &planned.tp.topic, planned.topic_id, data);
    }
    for u in unresolved {
        let data = PartitionOut {
            index: u.partition,
            error_code: u.error,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
            aborted_transactions: Vec::new(),
            current_leader: None,
            diverging_epoch: None,
        };
        push_partition(&mut topics, &u.name, u.topic_id, data);
    }
    ResponseOut {
        session_id: plan.session_id,
        topics,
        node_endpoints: leaders.into_nodes(),
        ..ResponseOut::default()
    }
}

/// Kafka re-authorizes every partition of an incremental fetch, also the ones the session
/// carries without the request naming them: an ACL revoked mid-session takes effect at the next
/// fetch. (Named partitions were checked in `resolve` and never reach the plan when refused.)
fn refuse_unreadable_session_partitions(
    shard: &Shard,
    request: &Request,
    plan: &Plan,
    results: &mut [ReadResult],
) {
    if !plan.incremental || !shard.authorizer.enabled() {
        return;
    }
    let mut decided: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for (planned, result) in plan.partitions.iter().zip(results.iter_mut()) {
        let topic = planned.tp.topic.as_str();
        let readable = *decided.entry(topic).or_insert_with(|| {
            authz::allowed(shard, request, Operation::Read, ResourceType::Topic, topic)
        });
        if !readable {
            *result = Err(crate::router::PartitionError::TopicAuthorizationFailed);
        }
    }
}

/// A session partition whose topic id the image no longer has (the topic was deleted, maybe
/// re-created under the same name) answers UNKNOWN_TOPIC_ID and is never served from the new
/// topic, as Kafka resolves a session's topic ids against its metadata on every fetch. (Before
/// topic ids, v12 and older, Kafka fetches by name, and so does Sluice.)
fn refuse_replaced_topics(shard: &Shard, plan: &Plan, results: &mut [ReadResult]) {
    let image = shard.topics.borrow();
    for (planned, result) in plan.partitions.iter().zip(results.iter_mut()) {
        let current = image.get(&planned.tp.topic).map(|m| m.id.uuid());
        if current != Some(planned.topic_id) {
            *result = Err(crate::router::PartitionError::UnknownTopicId);
        }
    }
}

fn resolve(
    shard: &Shard,
    request: &Request,
    body: &FetchRequest,
    version: i16,
) -> (Vec<SessionPartition>, Vec<Unresolved>) {
    let table = shard.topics.borrow();
    let mut requested = Vec::new();
    let mut unresolved = Vec::new();
    for topic in &body.topics {
        let meta = if version >= TOPIC_ID_VERSION {
            table.by_id(TopicId(topic.topic_id.as_u128()))
        } else {
            table.get(topic.topic.0.as_str())
        };
        // Kafka's handleFetchRequest: TOPIC READ, else TOPIC_AUTHORIZATION_FAILED per partition.
        let readable = meta.is_none_or(|m| {
            authz::allowed(
                shard,
                request,
                Operation::Read,
                ResourceType::Topic,
                &m.name,
            )
        });
        for p in &topic.partitions {
            if !readable {
                unresolved.push(Unresolved {
                    name: meta.map(|m| m.name.clone()).unwrap_or_default(),
                    topic_id: topic.topic_id,
                    partition: p.partition,
                    error: ResponseError::TopicAuthorizationFailed.code(),
                });
                continue;
            }
            let in_range =
                meta.filter(|m| u32::try_from(p.partition).is_ok_and(|i| i < m.partitions));
            match in_range {
                Some(meta) => requested.push(
                    SessionPartition::new(
                        TopicPartition::new(meta.name.clone(), p.partition.unsigned_abs()),
                        meta.id.uuid(),
                        p.fetch_offset,
                        u32::try_from(p.partition_max_bytes).unwrap_or(0),
                    )
                    .with_current_leader_epoch(p.current_leader_epoch),
                ),
                None => unresolved.push(Unresolved {
                    name: topic.topic.0.to_string(),
                    topic_id: topic.topic_id,
                    partition: p.partition,
                    error: if version >= TOPIC_ID_VERSION && meta.is_none() {
                        ResponseError::UnknownTopicId.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    },
                }),
            }
        }
    }
    // Kafka keys the fetch by topic-partition (a LinkedHashMap): a repeated partition is read
    // and answered once, with the last entry's offset and limit.
    let requested = super::dedup::last_wins(requested, |p| p.tp.clone());
    let unresolved =
        super::dedup::last_wins(unresolved, |u| (u.name.clone(), u.topic_id, u.partition));
    (requested, unresolved)
}

fn forgotten(shard: &Shard, body: &FetchRequest, version: i16) -> Vec<TopicPartition> {
    let table = shard.topics.borrow();
    let mut out = Vec::new();
    for topic in &body.forgotten_topics_data {
        let name = if version >= TOPIC_ID_VERSION {
            table
                .by_id(TopicId(topic.topic_id.as_u128()))
                .map(|m| m.name.clone())
        } else {
            Some(topic.topic.0.to_string())
        };
        if let Some(name) = name {
            // A repeated forgotten partition is forgotten once.
            out.extend(
                topic
                    .partitions
                    .iter()
                    .map(|&p| TopicPartition::new(name.clone(), p.unsigned_abs())),
            );
        }
    }
    super::dedup::first_wins(out, Clone::clone)
}

/// The first read of every partition: at most min(partition_max_bytes, max_bytes) each, at
/// least one batch (whether a partition is really first with data is only known afterwards;
/// `fit_to_budget` re-reads the ones that got too much).
fn read_items(reads: &Reads, max_bytes: u32) -> Vec<ReadItem> {
    reads
        .plan
        .partitions
        .iter()
        .map(|p| ReadItem {
            tp: p.tp.clone(),
            offset: p.fetch_offset,
            max_bytes: p.max_bytes.min(max_bytes),
            min_one_batch: true,
            current_leader_epoch: p.current_leader_epoch,
            read_committed: reads.read_committed,
        })
        .collect()
}

/// What to read: the session's plan under the request's isolation level.
struct Reads<'a> {
    plan: &'a Plan,
    read_committed: bool,
}

/// Reads; while the answer is below `min_bytes` and the deadline is ahead, waits for an append
/// on any of the partitions and reads again.
async fn read_until_ready(
    shard: &Rc<Shard>,
    router: &Router<'_>,
    reads: &Reads<'_>,
    max_bytes: u32,
    min_bytes: u32,
    deadline: Instant,
) -> Vec<ReadResult> {
    let plan = reads.plan;
    loop {
        let results = router.read(read_items(reads, max_bytes)).await;
        let bytes: u64 = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| u64::from(r.bytes()))
            .sum();
        let any_error = results.iter().any(Result::is_err);
        if bytes >= u64::from(min_bytes)
            || any_error
            || Instant::now() >= deadline
            || shard.shutdown.is_triggered()
        {
            return results;
        }
        let waits = plan
            .partitions
            .iter()
            .map(|p| (p.tp.clone(), p.fetch_offset))
            .collect();
        if reads.read_committed {
            router.wait_for_stable_data(waits, deadline).await;
        } else {
            router.wait_for_data(waits, deadline).await;
        }
    }
}

/// Kafka's response budget, in request order: a partition keeps what fits in
/// min(partition_max_bytes, what is left of `max_bytes`) as whole batches; the first partition
/// with data keeps at least its first batch. A partition that read more than it may keep is
/// read again with the smaller limit (the read is what knows the batch boundaries); when
/// nothing is left it simply returns no records (fetched next time).
async fn fit_to_budget(
    router: &Router<'_>,
    reads: &Reads<'_>,
    results: &mut [ReadResult],
    max_bytes: u32,
) {
    let plan = reads.plan;
    let mut left = max_bytes;
    let mut first_with_data = true;
    for (planned, result) in plan.partitions.iter().zip(results.iter_mut()) {
        let Ok(ok) = result else { continue };
        let bytes = ok.bytes();
        if bytes == 0 {
            continue;
        }
        let limit = planned.max_bytes.min(left);
        if bytes > limit {
            if limit == 0 && !first_with_data {
                ok.slice = None;
                continue;
            }
            let item = ReadItem {
                tp: planned.tp.clone(),
                offset: planned.fetch_offset,
                max_bytes: limit,
                min_one_batch: first_with_data,
                current_leader_epoch: planned.current_leader_epoch,
                read_committed: reads.read_committed,
            };
            let reread = router.read(vec![item]).await.into_iter().next();
            if let Some(reread) = reread {
                *result = reread;
            }
        }
        let kept = result.as_ref().map_or(0, |ok| ok.bytes());
        if kept > 0 {
            first_with_data = false;
            left = left.saturating_sub(kept);
        }
    }
}

fn seen_of(result: &ReadResult) -> PartitionSeen {
    match result {
        Ok(ok) => PartitionSeen {
            high_watermark: ok.high_watermark,
            last_stable_offset: ok.last_stable_offset,
            log_start_offset: ok.log_start_offset,
            has_records: ok.bytes() > 0,
            has_error: false,
        },
        Err(_) => PartitionSeen {
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            has_records: false,
            has_error: true,
        },
    }
}

fn partition_out(index: i32, result: ReadResult) -> PartitionOut {
    match result {
        Ok(ok) => PartitionOut {
            index,
            error_code: 0,
            high_watermark: ok.high_watermark,
            last_stable_offset: ok.last_stable_offset,
            log_start_offset: ok.log_start_offset,
            records: ok.slice.map(|s| s.ranges).unwrap_or_default(),
            aborted_transactions: ok.aborted_transactions.unwrap_or_default(),
            current_leader: None,
            diverging_epoch: None,
        },
        Err(e) => PartitionOut {
            index,
            error_code: partition_error_code(&e),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
            aborted_transactions: Vec::new(),
            current_leader: None,
            diverging_epoch: None,
        },
    }
}

/// Appends to the last topic entry when it is the same topic, else starts a new entry.
fn push_partition(
    topics: &mut Vec<TopicOut>,
    name: &str,
    topic_id: uuid::Uuid,
    data: PartitionOut,
) {
    if let Some(last) = topics.last_mut() {
        if last.name == name && last.topic_id == topic_id {
            last.partitions.push(data);
            return;
        }
    }
    topics.push(TopicOut {
        name: name.to_owned(),
        topic_id,
        partitions: vec![data],
    });
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;

    use super::*;

    #[test]
    fn a_throttled_response_is_empty_and_keeps_the_session() {
        for version in encode::VERSIONS {
            let session_id = if version >= SESSION_VERSION { 77 } else { 0 };
            let full = ResponseOut {
                session_id,
                topics: vec![TopicOut {
                    name: "t".into(),
                    partitions: vec![PartitionOut::default()],
                    ..TopicOut::default()
                }],
                ..ResponseOut::default()
            };
            let parts = encode::encode(&full, version).unwrap();
            let empty = throttled_response(&parts, version, 1234).unwrap();
            let mut body = BytesMut::new();
            for part in &empty {
                let BodyPart::Bytes(b) = part else {
                    panic!("file part in an empty response")
                };
                body.put_slice(b);
            }
            let r = FetchResponse::decode(&mut body.freeze(), version).unwrap();
            assert_eq!(r.throttle_time_ms, 1234, "v{version}");
            assert_eq!((r.error_code, r.session_id), (0, session_id), "v{version}");
            assert!(r.responses.is_empty(), "v{version}");
        }
        // Not a Fetch body this encoder wrote: left to the caller.
        assert!(throttled_response(&[], 12, 1).is_none());
    }
}
