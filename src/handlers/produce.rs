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

use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};

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
    let transactional_id = body.transactional_id.as_ref().map(|id| id.0.to_string());
    let layout = distinct_partitions(body);
    // Kafka's KafkaApis.handleProduceRequest: TOPIC WRITE per topic, else
    // TOPIC_AUTHORIZATION_FAILED for each of its partitions.
    // One flag per topic of `layout` (no allocation per name on this hot path).
    let writable: Vec<bool> = layout
        .iter()
        .map(|(name, _)| {
            authz::allowed(
                shard,
                request,
                Operation::Write,
                ResourceType::Topic,
                &name.0,
            )
        })
        .collect();
    let mut budget = super::dedup::Budget::new();
    let mut entries = Vec::new();
    let mut answer_layout: Vec<(TopicName, Vec<i32>)> = Vec::new();
    for ((topic, partitions), writable) in layout.into_iter().zip(writable) {
        let name = topic.0.to_string();
        let mut indices = Vec::with_capacity(partitions.len());
        for (index, records) in partitions {
            indices.push(index);
            entries.push(if writable {
                check(shard, (acks, timeout_ms), name.clone(), index, records)
            } else {
                Err(PartitionError::TopicAuthorizationFailed)
            });
            budget.tick().await;
        }
        answer_layout.push((topic, indices));
    }
    // KIP-890: TRANSACTIONAL_ID WRITE and the transaction coordinator's verification.
    let entries = if transactional_id.is_some()
        || shard
            .config
            .transaction
            .transaction_partition_verification_enable
    {
        let id = transactional_id.as_deref();
        super::produce_txn::check(shard, request, request.version(), id, entries).await
    } else {
        entries
    };
    let router = Router::new(shard.clone());
    let mut results = super::route::route_in_order(entries, |items| router.produce(items, acks))
        .await
        .into_iter();
    // KIP-951: from v10 a NOT_LEADER_OR_FOLLOWER partition names its current leader.
    let mut leaders = super::route::LeaderHints::new(shard, request, 10);
    let responses = answer_layout
        .into_iter()
        .map(|(name, indices)| {
            let partitions = indices
                .into_iter()
                .map(|index| {
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

/// One partition's index and records, as sent.
type PartitionRecords = (i32, Option<Bytes>);

/// Topics and their partitions' records as Kafka keys them (a map by topic-partition): one
/// entry per distinct partition, the last records sent for it winning in its first place;
/// topics without partitions get no entry. So repeated entries cost nothing downstream.
fn distinct_partitions(body: ProduceRequest) -> Vec<(TopicName, Vec<PartitionRecords>)> {
    let flat = body.topic_data.into_iter().flat_map(|topic| {
        let name = topic.name;
        topic
            .partition_data
            .into_iter()
            .map(move |p| (name.clone(), p.index, p.records))
    });
    let distinct = super::dedup::last_wins(flat, |(name, index, _)| (name.clone(), *index));
    super::dedup::group_in_order(
        distinct
            .into_iter()
            .map(|(name, index, records)| (name, (index, records))),
    )
}

/// One partition's batches, ready to route, or why they are refused here.
fn check(
    shard: &Shard,
    (acks, timeout_ms): (i16, i32),
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
    one_batch(&records)?;
    Ok(ProduceItem {
        tp,
        records,
        timeout_ms,
        verification_guard: None,
    })
}

/// Kafka's `ProduceRequest.validateRecords`: Produce v3+ (every version Sluice serves) carries
/// exactly one record batch per partition, else INVALID_RECORD for that partition. Only the
/// frame lengths are read here; the batch itself is validated by its owner.
fn one_batch(records: &Bytes) -> Result<(), PartitionError> {
    let mut batches = storage::split_batches(records);
    match (batches.next(), batches.next()) {
        (None, _) => Err(PartitionError::InvalidRecord(
            "Produce requests must have at least one record batch per partition".into(),
        )),
        (Some(_), Some(_)) => Err(PartitionError::InvalidRecord(
            "Produce requests are only allowed to contain exactly one record batch per partition"
                .into(),
        )),
        (Some(_), None) => Ok(()),
    }
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
