//! DeleteTopics: by name (v1-v5) or by name or topic id (v6), through shard 0, which has every
//! shard close and delete the topic's partitions before it forgets the topic.
//!
//! Invariant: one answer per requested topic, in request order; a v6 entry naming both a name
//! and an id, or neither, is INVALID_REQUEST (Kafka's rule).

use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::error::admin_error_code;
use super::mutation_quota::MutationQuota;
use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::router::admin::{AdminError, ChangeResult, RegistryChange, TopicRef};
use crate::router::Router;
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;
use crate::topics::TopicId;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DeleteTopicsRequest = request.decode()?;
        // Kafka: TOPIC DELETE per topic, else TOPIC_AUTHORIZATION_FAILED (an unknown id stays
        // UNKNOWN_TOPIC_ID).
        let mut quota = MutationQuota::new(&shard, &request, 5);
        let wanted: Vec<Result<TopicRef, (TopicRef, AdminError)>> = wanted_topics(&body, version)
            .into_iter()
            .map(|w| match w {
                Ok(topic) if !may_delete(&shard, &request, &topic) => {
                    Err((topic, AdminError::TopicAuthorizationFailed))
                }
                // KIP-599: the topic's partitions against the controller mutation quota.
                Ok(topic) if !quota.record(&shard, partitions_of(&shard, &topic)) => {
                    Err((topic, AdminError::ThrottlingQuotaExceeded))
                }
                Ok(topic) => Ok(topic),
                Err(error) => Err((TopicRef::Name(String::new()), error)),
            })
            .collect();
        let refs: Vec<TopicRef> = wanted.iter().filter_map(|w| w.clone().ok()).collect();
        let mut answers = Router::new(shard.router_context())
            .change_registry(RegistryChange::DeleteTopics(refs))
            .await
            .into_iter();
        let responses = wanted
            .into_iter()
            .map(|w| {
                let result = match w {
                    Ok(topic) => (
                        topic,
                        answers
                            .next()
                            .unwrap_or_else(|| Err(AdminError::Storage("no answer".into()))),
                    ),
                    // Refused or malformed entry (a malformed v6 one echoes no name).
                    Err((topic, error)) => (topic, Err(error)),
                };
                result_of(result.0, result.1, version)
            })
            .collect();
        Outcome::encoded(
            &DeleteTopicsResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(quota.finish(&request, 1)),
            version,
        )
    })
}

/// The partitions a deletion removes (0 for an unknown topic: it fails without counting).
fn partitions_of(shard: &Shard, topic: &TopicRef) -> u32 {
    let image = shard.topics.borrow();
    let meta = match topic {
        TopicRef::Name(name) => image.get(name),
        TopicRef::Id(id) => image.by_id(*id),
    };
    meta.map_or(0, |m| m.partitions)
}

fn may_delete(shard: &Shard, request: &Request, topic: &TopicRef) -> bool {
    let name = match topic {
        TopicRef::Name(name) => name.clone(),
        TopicRef::Id(id) => match shard.topics.borrow().by_id(*id) {
            Some(meta) => meta.name.clone(),
            None => return true,
        },
    };
    authz::allowed(
        shard,
        request,
        Operation::Delete,
        ResourceType::Topic,
        &name,
    )
}

fn wanted_topics(body: &DeleteTopicsRequest, version: i16) -> Vec<Result<TopicRef, AdminError>> {
    if version < 6 {
        return body
            .topic_names
            .iter()
            .map(|n| Ok(TopicRef::Name(n.0.to_string())))
            .collect();
    }
    body.topics
        .iter()
        .map(|t| match (&t.name, t.topic_id.is_nil()) {
            (Some(name), true) => Ok(TopicRef::Name(name.0.to_string())),
            (None, false) => Ok(TopicRef::Id(TopicId(t.topic_id.as_u128()))),
            _ => Err(AdminError::InvalidRequest(
                "Exactly one of topic name and topic id must be given".into(),
            )),
        })
        .collect()
}

fn result_of(topic: TopicRef, result: ChangeResult, version: i16) -> DeletableTopicResult {
    let (name, id) = match (&result, topic) {
        (Ok(meta), _) => (Some(meta.name.clone()), meta.id.uuid()),
        (Err(_), TopicRef::Name(name)) => (Some(name), uuid::Uuid::nil()),
        (Err(_), TopicRef::Id(id)) => (None, id.uuid()),
    };
    let mut answer = DeletableTopicResult::default()
        .with_name(name.map(|n| TopicName(str_bytes(&n))))
        .with_error_code(result.as_ref().err().map_or(0, admin_error_code));
    if version >= 6 {
        answer.topic_id = id;
    }
    if version >= 5 {
        answer.error_message = result.err().map(|e| str_bytes(&e.to_string()));
    }
    // v1-v5 names are not nullable.
    if version < 6 && answer.name.is_none() {
        answer.name = Some(TopicName(str_bytes("")));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;

    #[test]
    fn v6_entries_need_exactly_one_of_name_and_id() {
        let id = uuid::Uuid::from_u128(7);
        let body = DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(str_bytes("a")))),
            DeleteTopicState::default().with_topic_id(id),
            DeleteTopicState::default()
                .with_name(Some(TopicName(str_bytes("a"))))
                .with_topic_id(id),
            DeleteTopicState::default(),
        ]);
        let wanted = wanted_topics(&body, 6);
        assert_eq!(wanted[0], Ok(TopicRef::Name("a".into())));
        assert_eq!(wanted[1], Ok(TopicRef::Id(TopicId(7))));
        assert!(matches!(wanted[2], Err(AdminError::InvalidRequest(_))));
        assert!(matches!(wanted[3], Err(AdminError::InvalidRequest(_))));
    }

    #[test]
    fn unknown_id_answers_without_a_name() {
        let r = result_of(TopicRef::Id(TopicId(9)), Err(AdminError::UnknownTopicId), 6);
        assert_eq!(r.error_code, 100);
        assert!(r.name.is_none());
        assert_eq!(r.topic_id, uuid::Uuid::from_u128(9));
        let r = result_of(
            TopicRef::Name("t".into()),
            Err(AdminError::UnknownTopic("t".into())),
            1,
        );
        assert_eq!(r.error_code, 3);
        assert!(r.error_message.is_none(), "no message field before v5");
    }
}
