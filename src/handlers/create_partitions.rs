//! CreatePartitions: raises a topic's partition count through shard 0 (or only validates it:
//! `validate_only`); the new partitions are open on their owning shards before the answer.
//!
//! Invariant: one answer per requested topic, in request order; a topic named twice is
//! INVALID_REQUEST for each mention (Kafka's rule), and is not changed.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::error::admin_error_code;
use super::mutation_quota::MutationQuota;
use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::router::admin::{AdminError, PartitionGrowth, RegistryChange};
use crate::router::Router;
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: CreatePartitionsRequest = request.decode()?;
        let mut mentions: HashMap<&str, usize> = HashMap::new();
        for topic in &body.topics {
            *mentions.entry(topic.name.0.as_str()).or_default() += 1;
        }
        let duplicate = |name: &str| mentions.get(name).is_some_and(|n| *n > 1);
        // Kafka: TOPIC ALTER, else TOPIC_AUTHORIZATION_FAILED.
        let denied: HashSet<&str> = body
            .topics
            .iter()
            .map(|t| t.name.0.as_str())
            .filter(|name| {
                !duplicate(name)
                    && !authz::allowed(
                        &shard,
                        &request,
                        Operation::Alter,
                        ResourceType::Topic,
                        name,
                    )
            })
            .collect();
        // KIP-599: the added partitions against the controller mutation quota.
        let mut quota = MutationQuota::new(&shard, &request, 3);
        let throttled: HashSet<&str> = body
            .topics
            .iter()
            .filter(|t| !body.validate_only && !duplicate(t.name.0.as_str()))
            .filter(|t| !denied.contains(t.name.0.as_str()))
            .filter(|t| {
                let current = shard
                    .topics
                    .borrow()
                    .get(t.name.0.as_str())
                    .map(|m| m.partitions);
                let added =
                    current.map_or(0, |c| u32::try_from(t.count).unwrap_or(0).saturating_sub(c));
                !quota.record(&shard, added)
            })
            .map(|t| t.name.0.as_str())
            .collect();
        let growths: Vec<PartitionGrowth> = body
            .topics
            .iter()
            .filter(|t| !duplicate(t.name.0.as_str()) && !denied.contains(t.name.0.as_str()))
            .filter(|t| !throttled.contains(t.name.0.as_str()))
            .map(|t| PartitionGrowth {
                name: t.name.0.to_string(),
                count: t.count,
                assignments: t.assignments.as_ref().map(|list| {
                    list.iter()
                        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                }),
            })
            .collect();
        let change = RegistryChange::CreatePartitions {
            topics: growths,
            validate_only: body.validate_only,
        };
        let mut answers = Router::new(shard.router_context())
            .change_registry(change)
            .await
            .into_iter();
        let results = body
            .topics
            .iter()
            .map(|t| {
                let outcome = if duplicate(t.name.0.as_str()) {
                    Err(AdminError::InvalidRequest(
                        "Duplicate topic in request.".into(),
                    ))
                } else if denied.contains(t.name.0.as_str()) {
                    Err(AdminError::TopicAuthorizationFailed)
                } else if throttled.contains(t.name.0.as_str()) {
                    Err(AdminError::ThrottlingQuotaExceeded)
                } else {
                    answers
                        .next()
                        .unwrap_or_else(|| Err(AdminError::Storage("no answer".into())))
                };
                let answer = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                match outcome {
                    Ok(_) => answer,
                    Err(e) => answer
                        .with_error_code(admin_error_code(&e))
                        .with_error_message(Some(str_bytes(&e.to_string()))),
                }
            })
            .collect();
        Outcome::encoded(
            &CreatePartitionsResponse::default()
                .with_results(results)
                .with_throttle_time_ms(quota.finish(&request, 0)),
            version,
        )
    })
}
