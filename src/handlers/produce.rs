//! Produce: validates acks, resolves topics (auto-creating when enabled), routes each
//! partition's batches to its owner and answers per partition in request order. Repeated
//! topic-partitions collapse into one (the last records win, as in Kafka's map).
//!
//! Invariants: acks=-1 is answered only after the owner fsynced the append (unless
//! log.flush.on.acks.all = false: Kafka's semantics); acks=0 gets no
//! response (an error then closes the connection, Kafka's way of telling such a producer);
//! batches are stored as sent (compressed ones included), only offsets/epoch rewritten.

use std::rc::Rc;

use bytes::Bytes;

use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};

use super::error::partition_error_code;
use super::{authz, HandlerError, HandlerFuture, Outcome, Request};
use crate::router::{PartitionError, ProduceItem, ProduceResult, Router};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ProduceRequest = request.decode()?;
        let acks = body.acks;
        let response = respond(&shard, &request, body).await;
        if acks == 0 {
            let failed = response
                .responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .any(|p| p.error_code != 0);
            if failed {
                return Err(HandlerError::Decode(
                    "acks=0 produce failed; closing as Kafka does".into(),
                ));
            }
            return Ok(Outcome::Silent);
        }
        Outcome::encoded(&response, version)
    })
}

async fn respond(shard: &Rc<Shard>, request: &Request, body: ProduceRequest) -> ProduceResponse {
    let acks = body.acks;
    let timeout_ms = body.timeout_ms;
    let version = request.version();
    let transactional_id = body.transactional_id.as_ref().map(|id| id.0.to_string());
    // The layout doubles as the answer's (the records are taken out as they are routed).
    let mut layout = distinct_partitions(body);
    let mut budget = super::dedup::Budget::new();
    let mut entries = Vec::with_capacity(layout.iter().map(|t| t.partition_data.len()).sum());
    for topic in &mut layout {
        // Kafka's KafkaApis.handleProduceRequest: TOPIC WRITE per topic, else
        // TOPIC_AUTHORIZATION_FAILED for each of its partitions.
        let writable = authz::allowed(
            shard,
            request,
            Operation::Write,
            ResourceType::Topic,
            &topic.name.0,
        );
        let mut names = TopicNames::new(&topic.name.0, topic.partition_data.len());
        for partition in &mut topic.partition_data {
            let name = names.next();
            let (index, records) = (partition.index, partition.records.take());
            entries.push(if writable {
                check(shard, (acks, timeout_ms, version), name, index, records)
            } else {
                Err(PartitionError::TopicAuthorizationFailed)
            });
            budget.tick().await;
        }
    }
    // KIP-890: TRANSACTIONAL_ID WRITE and the transaction coordinator's verification.
    // Called for every request: it also refuses transactional records without an id.
    let entries = {
        let id = transactional_id.as_deref();
        super::produce_txn::check(shard, request, request.version(), id, entries).await
    };
    let router = Router::new(shard.router_context());
    let mut results = super::route::route_in_order(entries, |items| router.produce(items, acks))
        .await
        .into_iter();
    // KIP-951: from v10 a NOT_LEADER_OR_FOLLOWER partition names its current leader.
    let mut leaders = super::route::LeaderHints::new(shard, request, 10);
    let responses = layout
        .into_iter()
        .map(|topic| {
            let name = topic.name;
            let partitions = topic
                .partition_data
                .into_iter()
                .map(|partition| {
                    let index = partition.index;
                    let result = results.next().unwrap_or(Err(PartitionError::Unavailable));
                    let not_leader = result == Err(PartitionError::NotLeaderOrFollower);
                    let mut response = partition_response(index, result);
                    if let Some((leader, epoch)) = not_leader
                        .then(|| leaders.current(&name.0, index))
                        .flatten()
                    {
                        response.current_leader = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(epoch);
                    }
                    response
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(node_endpoints(leaders))
}

/// KIP-951 (Produce v10+): the leaders named in the response, at their endpoints.
fn node_endpoints(hints: super::route::LeaderHints) -> Vec<NodeEndpoint> {
    hints
        .into_nodes()
        .into_iter()
        .map(|n| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(n.id))
                .with_host(super::str_bytes(&n.host))
                .with_port(i32::from(n.port))
                .with_rack(n.rack.as_deref().map(super::str_bytes))
        })
        .collect()
}

/// The topic's name once per partition routed (each item owns it): clones for all but the
/// last partition, which takes the original (one allocation fewer per topic).
struct TopicNames {
    name: String,
    left: usize,
}

impl TopicNames {
    fn new(name: &str, partitions: usize) -> Self {
        Self {
            name: name.to_owned(),
            left: partitions,
        }
    }

    fn next(&mut self) -> String {
        self.left = self.left.saturating_sub(1);
        if self.left == 0 {
            std::mem::take(&mut self.name)
        } else {
            self.name.clone()
        }
    }
}

/// Requests naming at most this many topics, and partitions per topic, are checked for
/// repeats by comparing pairs (no hash maps on the hot path); larger ones use the maps.
const PAIRWISE_REPEAT_CHECK_MAX: usize = 64;

/// Whether the request names no topic twice and no partition twice within a topic, when
/// that is cheap to tell; `false` means "maybe repeated".
fn surely_distinct(topics: &[TopicProduceData]) -> bool {
    if topics.len() > PAIRWISE_REPEAT_CHECK_MAX
        || topics
            .iter()
            .any(|t| t.partition_data.len() > PAIRWISE_REPEAT_CHECK_MAX)
    {
        return false;
    }
    let names_distinct = topics
        .iter()
        .enumerate()
        .all(|(i, t)| topics.iter().skip(i + 1).all(|u| u.name != t.name));
    names_distinct
        && topics.iter().all(|t| {
            let parts = &t.partition_data;
            parts
                .iter()
                .enumerate()
                .all(|(i, p)| parts.iter().skip(i + 1).all(|q| q.index != p.index))
        })
}

/// Topics and their partitions' records as Kafka keys them (a map by topic-partition): one
/// entry per distinct partition, the last records sent for it winning in its first place;
/// topics without partitions get no entry. So repeated entries cost nothing downstream.
fn distinct_partitions(body: ProduceRequest) -> Vec<TopicProduceData> {
    let mut topics = body.topic_data;
    if surely_distinct(&topics) {
        // Nothing to collapse: the request's own lists, without maps or copies.
        topics.retain(|topic| !topic.partition_data.is_empty());
        return topics;
    }
    collapse_repeats(topics)
}

/// [`distinct_partitions`] by topic-partition maps, for requests that may repeat entries.
fn collapse_repeats(topics: Vec<TopicProduceData>) -> Vec<TopicProduceData> {
    let flat = topics.into_iter().flat_map(|topic| {
        let name = topic.name;
        let partitions = topic.partition_data.into_iter();
        partitions.map(move |p| (name.clone(), p))
    });
    let distinct = super::dedup::last_wins(flat, |(name, p)| (name.clone(), p.index));
    let grouped = super::dedup::group_in_order(distinct);
    grouped
        .into_iter()
        .map(|(name, partitions)| {
            TopicProduceData::default()
                .with_name(name)
                .with_partition_data(partitions)
        })
        .collect()
}

/// One partition's batches, ready to route, or why they are refused here.
fn check(
    shard: &Shard,
    (acks, timeout_ms, version): (i16, i32, i16),
    name: String,
    index: i32,
    records: Option<Bytes>,
) -> Result<ProduceItem, PartitionError> {
    if !matches!(acks, -1..=1) {
        return Err(PartitionError::InvalidRequiredAcks(acks));
    }
    // Only the group coordinator writes the offsets topic (Kafka: "Cannot append to internal
    // topic"), so a client cannot forge commits or corrupt its log.
    if crate::internal_topics::is_internal(&name) {
        return Err(PartitionError::InternalTopic(name));
    }
    let tp = super::route::resolve(shard, name, index)?;
    let records = records.ok_or_else(|| PartitionError::InvalidRecord("null records".into()))?;
    one_batch(&records, version)?;
    Ok(ProduceItem {
        tp,
        records,
        timeout_ms,
        verification_guard: None,
    })
}

/// Kafka's `ProduceRequest.validateRecords`: Produce v3+ (every version Sluice serves) carries
/// exactly one record batch per partition, of magic 2 (else INVALID_RECORD for that
/// partition), and zstd only from v7 (else UNSUPPORTED_COMPRESSION_TYPE). Only the frame
/// lengths, the magic and the codec are read here; the batch is validated by its owner.
fn one_batch(records: &Bytes, version: i16) -> Result<(), PartitionError> {
    const MAGIC_AT: usize = 16;
    const ATTRIBUTES_AT: usize = 21;
    const ZSTD: u8 = 4;
    let mut batches = storage::split_batches(records);
    let (first, second) = (batches.next(), batches.next());
    let first = match first {
        Some(Ok(first)) => first,
        // A first batch whose framing is unreadable: its owner's validation names the fault.
        Some(Err(_)) => return Ok(()),
        None => {
            return Err(PartitionError::InvalidRecord(format!(
                "Produce requests with version {version} must have at least one record batch \
                 per partition"
            )))
        }
    };
    if first.get(MAGIC_AT).is_some_and(|&magic| magic != 2) {
        return Err(PartitionError::InvalidRecord(format!(
            "Produce requests with version {version} are only allowed to contain record batches \
             with magic version 2"
        )));
    }
    // The codec is the low 3 bits of the attributes' low byte.
    if version < 7
        && first
            .get(ATTRIBUTES_AT + 1)
            .is_some_and(|&a| a & 0x07 == ZSTD)
    {
        return Err(PartitionError::UnsupportedCompressionType(format!(
            "Produce requests with version {version} are not allowed to use ZStandard compression"
        )));
    }
    if second.is_some() {
        return Err(PartitionError::InvalidRecord(format!(
            "Produce requests with version {version} are only allowed to contain exactly one \
             record batch per partition"
        )));
    }
    Ok(())
}

fn partition_response(index: i32, result: ProduceResult) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(ok) => response
            .with_base_offset(ok.base_offset)
            .with_log_append_time_ms(ok.log_append_time_ms)
            .with_log_start_offset(ok.log_start_offset),
        Err(e) => {
            let message = e.to_string();
            response
                .with_error_code(partition_error_code(&e))
                .with_base_offset(-1)
                .with_error_message(Some(super::str_bytes(&message)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::PartitionProduceData;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn body(entries: &[(&'static str, &[i32])]) -> ProduceRequest {
        let topics = entries.iter().map(|(name, partitions)| {
            let data = partitions.iter().map(|&index| {
                // Each entry's records name its place, so "which one won" is visible.
                let tag = Bytes::from(format!("{name}-{index}-{}", partitions.len()));
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(Some(tag))
            });
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_partition_data(data.collect())
        });
        ProduceRequest::default().with_topic_data(topics.collect())
    }

    /// Kafka's `ProduceRequest.validateRecords`: magic 2 only, zstd only from v7, one batch.
    #[test]
    fn one_batch_checks_magic_and_zstd_by_version() {
        let with = |codec: i16, magic: u8| {
            let mut batch = storage::BatchBuilder::new(1_000)
                .compression(codec)
                .record(Some(b"k"), Some(b"v"), &[])
                .build();
            batch[16] = magic;
            batch.freeze()
        };
        let code = |records: &Bytes, version| {
            one_batch(records, version)
                .err()
                .map(|e| crate::handlers::error::partition_error_code(&e))
        };
        const INVALID_RECORD: i16 = 87;
        const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
        let zstd = with(4, 2);
        assert_eq!(code(&zstd, 3), Some(UNSUPPORTED_COMPRESSION_TYPE));
        assert_eq!(code(&zstd, 6), Some(UNSUPPORTED_COMPRESSION_TYPE));
        assert_eq!(code(&zstd, 7), None);
        assert_eq!(code(&with(3, 2), 3), None, "lz4 at v3");
        for magic in [0, 1, 3] {
            assert_eq!(
                code(&with(0, magic), 9),
                Some(INVALID_RECORD),
                "magic {magic}"
            );
        }
        let two = Bytes::from([with(0, 2), with(0, 2)].concat());
        assert_eq!(code(&two, 9), Some(INVALID_RECORD));
        assert_eq!(code(&Bytes::new(), 9), Some(INVALID_RECORD));
    }

    #[test]
    fn distinct_requests_keep_their_order_without_the_maps() {
        let cases: [&[(&str, &[i32])]; 4] = [
            &[("a", &[0])],
            &[("a", &[3, 1, 2]), ("b", &[0]), ("c", &[])],
            &[("b", &[1, 0]), ("a", &[0, 1])],
            &[],
        ];
        for case in cases {
            assert!(surely_distinct(&body(case).topic_data), "{case:?}");
            assert_eq!(
                distinct_partitions(body(case)),
                collapse_repeats(body(case).topic_data),
                "{case:?}"
            );
        }
    }

    #[test]
    fn repeated_entries_collapse_last_wins_in_first_place() {
        let repeated: &[(&str, &[i32])] = &[("a", &[0, 1, 0]), ("b", &[0]), ("a", &[1, 2])];
        let request = body(repeated);
        assert!(!surely_distinct(&request.topic_data));
        let layout = distinct_partitions(request);
        let shape: Vec<(String, Vec<(i32, Bytes)>)> = layout
            .into_iter()
            .map(|topic| {
                let parts = topic.partition_data.into_iter();
                let parts = parts.map(|p| (p.index, p.records.unwrap_or_default()));
                (topic.name.0.to_string(), parts.collect())
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (
                    "a".to_string(),
                    vec![
                        (0, Bytes::from("a-0-3")),
                        (1, Bytes::from("a-1-2")),
                        (2, Bytes::from("a-2-2")),
                    ]
                ),
                ("b".to_string(), vec![(0, Bytes::from("b-0-1"))]),
            ]
        );
        // A topic repeated without repeating a partition is not "surely distinct" either.
        assert!(!surely_distinct(
            &body(&[("a", &[0]), ("a", &[1])]).topic_data
        ));
    }

    #[test]
    fn large_requests_take_the_map_path() {
        let many: Vec<i32> = (0..=PAIRWISE_REPEAT_CHECK_MAX as i32).collect();
        let request = body(&[("a", many.leak())]);
        assert!(!surely_distinct(&request.topic_data));
        let layout = distinct_partitions(request);
        assert_eq!(
            layout[0].partition_data.len(),
            PAIRWISE_REPEAT_CHECK_MAX + 1
        );
    }
}
