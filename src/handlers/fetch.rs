//! Fetch: resolves the partitions (by name, or by topic id from v13), applies the KIP-227
//! session, reads from the owners, long-polls until `min_bytes` or `max_wait_ms`, trims to
//! `max_bytes` and answers, copying record bytes (or splicing them: `fetch.zero.copy`).
//!
//! Invariants: the wait is bounded by min(max_wait_ms, fetch.max.wait.ms); the first partition
//! with data returns at least one whole batch even past the limits (KIP-74), later ones only
//! whole batches within the remaining budget; a fetch from inside a batch returns that batch.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;

use super::error::partition_error_code;
use super::fetch_session::{PartitionSeen, Plan, SessionPartition};
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::partition::TopicPartition;
use crate::router::{PartitionError, ReadItem, ReadOk, ReadResult, Router};
use crate::shard::Shard;
use crate::topics::TopicId;

/// First version that names topics by id.
const TOPIC_ID_VERSION: i16 = 13;
/// First version with fetch sessions.
const SESSION_VERSION: i16 = 7;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: FetchRequest = request.decode()?;
        let response = respond(&shard, body, version).await;
        Outcome::encoded(&response, version)
    })
}

/// A requested partition whose topic did not resolve (answered with an error, never read).
struct Unresolved {
    name: String,
    topic_id: uuid::Uuid,
    partition: i32,
    error: i16,
}

async fn respond(shard: &Rc<Shard>, body: FetchRequest, version: i16) -> FetchResponse {
    let (requested, unresolved) = resolve(shard, &body, version);
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
        Err(code) => return FetchResponse::default().with_error_code(code),
    };
    let cap_ms = u64::try_from(body.max_wait_ms)
        .unwrap_or(0)
        .min(u64::from(shard.config.fetch_max_wait_ms));
    let deadline = Instant::now() + Duration::from_millis(cap_ms);
    let max_bytes = u32::try_from(body.max_bytes)
        .unwrap_or(0)
        .min(shard.config.fetch_max_bytes);
    let min_bytes = u32::try_from(body.min_bytes).unwrap_or(0);
    let mut results = read_until_ready(shard, &plan, min_bytes, deadline).await;
    trim_to_budget(&mut results, max_bytes);
    let seen: Vec<PartitionSeen> = results.iter().map(seen_of).collect();
    let include = shard.fetch_sessions.borrow_mut().finish(&plan, &seen);
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for ((planned, result), included) in plan.partitions.iter().zip(results).zip(include) {
        if !included {
            continue;
        }
        let data = partition_data(planned.tp.partition as i32, result).await;
        push_partition(&mut topics, &planned.tp.topic, planned.topic_id, data);
    }
    for u in unresolved {
        let data = PartitionData::default()
            .with_partition_index(u.partition)
            .with_error_code(u.error)
            .with_high_watermark(-1);
        push_partition(&mut topics, &u.name, u.topic_id, data);
    }
    FetchResponse::default()
        .with_session_id(plan.session_id)
        .with_responses(topics)
}

fn resolve(
    shard: &Shard,
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
        for p in &topic.partitions {
            let in_range =
                meta.filter(|m| u32::try_from(p.partition).is_ok_and(|i| i < m.partitions));
            match in_range {
                Some(meta) => requested.push(SessionPartition::new(
                    TopicPartition::new(meta.name.clone(), p.partition.unsigned_abs()),
                    meta.id.uuid(),
                    p.fetch_offset,
                    u32::try_from(p.partition_max_bytes).unwrap_or(0),
                )),
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
            out.extend(
                topic
                    .partitions
                    .iter()
                    .map(|&p| TopicPartition::new(name.clone(), p.unsigned_abs())),
            );
        }
    }
    out
}

fn read_items(plan: &Plan) -> Vec<ReadItem> {
    plan.partitions
        .iter()
        .map(|p| ReadItem {
            tp: p.tp.clone(),
            offset: p.fetch_offset,
            max_bytes: p.max_bytes,
        })
        .collect()
}

/// Reads; while the answer is below `min_bytes` and the deadline is ahead, waits for an append
/// on any of the partitions and reads again.
async fn read_until_ready(
    shard: &Rc<Shard>,
    plan: &Plan,
    min_bytes: u32,
    deadline: Instant,
) -> Vec<ReadResult> {
    let router = Router::new(shard.clone());
    loop {
        let results = router.read(read_items(plan)).await;
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
        router.wait_for_data(waits, deadline).await;
    }
}

/// Drops the records of partitions past the response budget (they are fetched next time).
fn trim_to_budget(results: &mut [ReadResult], max_bytes: u32) {
    let mut total: u64 = 0;
    for result in results.iter_mut().filter_map(|r| r.as_mut().ok()) {
        let bytes = u64::from(result.bytes());
        if bytes == 0 {
            continue;
        }
        if total > 0 && total + bytes > u64::from(max_bytes) {
            result.slice = None;
            continue;
        }
        total += bytes;
    }
}

fn seen_of(result: &ReadResult) -> PartitionSeen {
    match result {
        Ok(ok) => PartitionSeen {
            high_watermark: ok.high_watermark,
            log_start_offset: ok.log_start_offset,
            has_records: ok.bytes() > 0,
            has_error: false,
        },
        Err(_) => PartitionSeen {
            high_watermark: -1,
            log_start_offset: -1,
            has_records: false,
            has_error: true,
        },
    }
}

async fn partition_data(index: i32, result: ReadResult) -> PartitionData {
    let base = PartitionData::default().with_partition_index(index);
    let ok: ReadOk = match result {
        Ok(ok) => ok,
        Err(e) => return error_data(base, &e),
    };
    let records = match &ok.slice {
        Some(slice) => match slice.read_bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return error_data(base, &PartitionError::from_storage(e)),
        },
        None => Bytes::new(),
    };
    base.with_high_watermark(ok.high_watermark)
        .with_last_stable_offset(ok.high_watermark)
        .with_log_start_offset(ok.log_start_offset)
        .with_records(Some(records))
}

fn error_data(base: PartitionData, error: &PartitionError) -> PartitionData {
    base.with_error_code(partition_error_code(error))
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

/// Appends to the last topic entry when it is the same topic, else starts a new entry.
fn push_partition(
    topics: &mut Vec<FetchableTopicResponse>,
    name: &str,
    topic_id: uuid::Uuid,
    data: PartitionData,
) {
    if let Some(last) = topics.last_mut() {
        if last.topic.0.as_str() == name && last.topic_id == topic_id {
            last.partitions.push(data);
            return;
        }
    }
    topics.push(
        FetchableTopicResponse::default()
            .with_topic(TopicName(str_bytes(name)))
            .with_topic_id(topic_id)
            .with_partitions(vec![data]),
    );
}
