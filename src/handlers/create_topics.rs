//! CreateTopics: validates names, partition counts, replication factors and configs, and
//! creates the topics through shard 0 (or only validates them: `validate_only`).
//!
//! Invariants: a manual replica assignment is checked by the controller against the registered
//! brokers (Kafka's messages); the answer for a created topic reports its real
//! partition count, replication factor and id, as the metadata image holds them.

use std::rc::Rc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::describe_configs;
use super::error::topic_error_code;
use super::mutation_quota::{MutationQuota, THROTTLED_MESSAGE};
use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::router::{CreateResult, NewTopic, Router};
use crate::shard::Shard;
use crate::topics::config::TopicOverrides;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: CreateTopicsRequest = request.decode()?;
        let mut early: Vec<Option<CreatableTopicResult>> = Vec::new();
        let mut wanted = Vec::new();
        let mut quota = MutationQuota::new(&shard, &request, 6);
        // Kafka: every mention of a topic named more than once is INVALID_REQUEST.
        let repeated = super::dedup::repeated(body.topics.iter().map(|t| t.name.0.to_string()));
        for topic in &body.topics {
            if repeated.contains(topic.name.0.as_str()) {
                early.push(Some(
                    CreatableTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes("Duplicate topic name."))),
                ));
                continue;
            }
            // Kafka: CLUSTER CREATE or TOPIC CREATE, else TOPIC_AUTHORIZATION_FAILED.
            if !authz::may_create_topic(&shard, &request, topic.name.0.as_str()) {
                early.push(Some(
                    CreatableTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_error_message(Some(str_bytes("Authorization failed."))),
                ));
                continue;
            }
            match to_new_topic(topic) {
                Ok(new_topic)
                    if !body.validate_only && !quota_allows(&shard, &mut quota, &new_topic) =>
                {
                    early.push(Some(
                        CreatableTopicResult::default()
                            .with_name(topic.name.clone())
                            .with_error_code(ResponseError::ThrottlingQuotaExceeded.code())
                            .with_error_message(Some(str_bytes(THROTTLED_MESSAGE))),
                    ));
                }
                Ok(new_topic) => {
                    early.push(None);
                    wanted.push(new_topic);
                }
                Err(result) => early.push(Some(*result)),
            }
        }
        let mut created = Router::new(shard.router_context())
            .create_topics(wanted, body.validate_only)
            .await
            .into_iter();
        let topics = body
            .topics
            .iter()
            .zip(early)
            .map(|(topic, early)| match early {
                Some(result) => result,
                None => result_of(
                    &shard,
                    topic.name.0.as_str(),
                    created
                        .next()
                        .unwrap_or_else(|| Err(crate::topics::TopicError::Io("no answer".into()))),
                    version,
                ),
            })
            .collect();
        Outcome::encoded(
            &CreateTopicsResponse::default()
                .with_topics(topics)
                .with_throttle_time_ms(quota.finish(&request, 2)),
            version,
        )
    })
}

/// KIP-599: the new topic's partitions against the controller mutation quota (a topic that
/// already exists fails without counting, as Kafka's controller validates first).
fn quota_allows(shard: &Shard, quota: &mut MutationQuota, topic: &NewTopic) -> bool {
    if shard.topics.borrow().get(&topic.name).is_some() {
        return true;
    }
    let partitions = if topic.partitions == -1 {
        shard.config.topics.num_partitions
    } else {
        topic.partitions
    };
    quota.record(shard, u32::try_from(partitions).unwrap_or(0))
}

fn to_new_topic(
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, Box<CreatableTopicResult>> {
    let name = topic.name.0.to_string();
    let fail = |code: i16, message: &str| {
        Box::new(
            CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        )
    };
    let mut partitions = topic.num_partitions;
    let mut assignments = None;
    if !topic.assignments.is_empty() {
        // Kafka's checks and messages (ReplicationControlManager.createTopic).
        if topic.replication_factor != -1 {
            return Err(fail(
                ResponseError::InvalidRequest.code(),
                "A manual partition assignment was specified, but replication factor was not \
                 set to -1.",
            ));
        }
        if topic.num_partitions != -1 {
            return Err(fail(
                ResponseError::InvalidRequest.code(),
                "A manual partition assignment was specified, but numPartitions was not set to \
                 -1.",
            ));
        }
        partitions = i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX);
        // The controller checks the brokers against the registered ones.
        assignments = Some(
            in_partition_order(&topic.assignments)
                .map_err(|m| fail(ResponseError::InvalidReplicaAssignment.code(), &m))?,
        );
    }
    let mut configs = TopicOverrides::new();
    for config in &topic.configs {
        match &config.value {
            Some(value) => {
                let key = config.name.to_string();
                let value = crate::topics::alter::normalize(&key, value);
                configs.insert(key, value);
            }
            None => {
                return Err(fail(
                    ResponseError::InvalidConfig.code(),
                    "null config value",
                ))
            }
        }
    }
    Ok(NewTopic {
        name,
        partitions,
        replication_factor: topic.replication_factor,
        configs,
        assignments,
    })
}

/// The manual assignment's broker lists by partition index, which must run 0, 1, ... without
/// a repeat or a gap.
fn in_partition_order(
    list: &[kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment],
) -> Result<Vec<Vec<i32>>, String> {
    let mut by_index: std::collections::BTreeMap<i32, Vec<i32>> = Default::default();
    for a in list {
        let brokers = a.broker_ids.iter().map(|b| b.0).collect();
        if by_index.insert(a.partition_index, brokers).is_some() {
            return Err(format!(
                "Found multiple manual partition assignments for partition {}",
                a.partition_index
            ));
        }
    }
    if by_index
        .keys()
        .copied()
        .ne(0..i32::try_from(by_index.len()).unwrap_or(i32::MAX))
    {
        return Err("partitions should be a consecutive 0-based integer sequence".into());
    }
    Ok(by_index.into_values().collect())
}

/// The topic's replication factor: its first partition's replica count.
fn replication_factor(meta: &crate::topics::TopicMeta) -> i16 {
    meta.registrations
        .first()
        .map_or(0, |r| i16::try_from(r.replicas.len()).unwrap_or(i16::MAX))
}

fn config_of(e: describe_configs::Entry) -> CreatableTopicConfigs {
    CreatableTopicConfigs::default()
        .with_name(str_bytes(&e.name))
        .with_value(Some(str_bytes(&e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(e.is_sensitive)
}

fn result_of(
    shard: &Shard,
    name: &str,
    result: CreateResult,
    version: i16,
) -> CreatableTopicResult {
    let base = CreatableTopicResult::default()
        .with_name(kafka_protocol::messages::TopicName(str_bytes(name)));
    match result {
        Ok(meta) => {
            let mut r = base.with_topic_id(meta.id.uuid());
            if version >= 5 {
                r = r
                    .with_num_partitions(i32::try_from(meta.partitions).unwrap_or(i32::MAX))
                    .with_replication_factor(replication_factor(&meta));
                // KIP-525: every topic config, as DescribeConfigs would describe it.
                match describe_configs::topic_config_entries(shard, &meta.configs) {
                    Ok(entries) => r.configs = Some(entries.into_iter().map(config_of).collect()),
                    Err((code, _)) => r.topic_config_error_code = code,
                }
            }
            r
        }
        Err(e) => {
            let message = e.to_string();
            base.with_error_code(topic_error_code(&e))
                .with_error_message(Some(str_bytes(&message)))
        }
    }
}
