//! Produce: validates acks, resolves topics (auto-creating when enabled), routes each
//! partition's batches to its owner and answers per partition in request order.
//!
//! Invariants: acks=-1 is answered only after the owner fsynced the append; acks=0 gets no
//! response (an error then closes the connection, Kafka's way of telling such a producer);
//! batches are stored as sent (compressed ones included), only offsets/epoch rewritten.

use std::rc::Rc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::error::partition_error_code;
use super::{HandlerError, HandlerFuture, Outcome, Request};
use crate::partition::TopicPartition;
use crate::router::{PartitionError, ProduceItem, ProduceResult, Router};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ProduceRequest = request.decode()?;
        let acks = body.acks;
        let response = respond(&shard, body).await;
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

/// Where each partition of the request goes: to the router, or straight to an error.
enum Slot {
    Routed(usize),
    Failed(PartitionError),
}

async fn respond(shard: &Rc<Shard>, body: ProduceRequest) -> ProduceResponse {
    let acks = body.acks;
    if shard.config.auto_create_topics_enable {
        let missing: Vec<String> = body
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|name| shard.topics.borrow().get(name).is_none())
            .collect();
        super::metadata::auto_create(shard, missing).await;
    }
    let mut items = Vec::new();
    let mut layout: Vec<(kafka_protocol::messages::TopicName, Vec<(i32, Slot)>)> = Vec::new();
    for topic in body.topic_data {
        let name = topic.name.0.to_string();
        let partition_count = shard.topics.borrow().get(&name).map(|m| m.partitions);
        let mut slots = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            let index = partition.index;
            let slot = match (partition_count, u32::try_from(index), partition.records) {
                _ if !matches!(acks, -1..=1) => {
                    Slot::Failed(PartitionError::InvalidRequiredAcks(acks))
                }
                // Only the group coordinator writes the offsets topic (Kafka: "Cannot append to
                // internal topic"), so a client cannot forge commits or corrupt its log.
                _ if name == crate::groups::OFFSETS_TOPIC => {
                    Slot::Failed(PartitionError::InternalTopic(name.clone()))
                }
                (Some(count), Ok(i), Some(records)) if i < count => {
                    items.push(ProduceItem {
                        tp: TopicPartition::new(name.clone(), i),
                        records,
                    });
                    Slot::Routed(items.len() - 1)
                }
                (Some(count), Ok(i), None) if i < count => {
                    Slot::Failed(PartitionError::InvalidRecord("null records".into()))
                }
                _ => Slot::Failed(PartitionError::UnknownTopicOrPartition),
            };
            slots.push((index, slot));
        }
        layout.push((topic.name, slots));
    }
    let mut results: Vec<Option<ProduceResult>> = Router::new(shard.clone())
        .produce(items, acks)
        .await
        .into_iter()
        .map(Some)
        .collect();
    let responses = layout
        .into_iter()
        .map(|(name, slots)| {
            let partitions = slots
                .into_iter()
                .map(|(index, slot)| {
                    let result = match slot {
                        Slot::Routed(i) => results
                            .get_mut(i)
                            .and_then(Option::take)
                            .unwrap_or(Err(PartitionError::Unavailable)),
                        Slot::Failed(e) => Err(e),
                    };
                    partition_response(index, result)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
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
