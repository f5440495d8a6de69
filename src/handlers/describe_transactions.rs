//! DescribeTransactions v0: each transactional id's state from its coordinator shard (Kafka's
//! state names, timeout, start time, producer id and epoch, partitions). Without TRANSACTIONAL_ID
//! DESCRIBE: TRANSACTIONAL_ID_AUTHORIZATION_FAILED; an unknown id: TRANSACTIONAL_ID_NOT_FOUND;
//! topics the principal may not DESCRIBE are left out of the partitions, as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::ResponseError as K;

use super::txn_common::{error_of, route, txn_allowed};
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;
use crate::txn::{TxnAnswer, TxnCode, TxnOp};

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeTransactionsRequest = request.decode()?;
        let lookups = body.transactional_ids.iter().map(|id| {
            let id = id.0.to_string();
            let shard = &shard;
            let request = &request;
            async move {
                if !txn_allowed(shard, request, Operation::Describe, &id) {
                    return TxnAnswer::Error(TxnCode::None);
                }
                route(
                    shard,
                    TxnOp::Describe {
                        transactional_id: id,
                    },
                )
                .await
            }
        });
        let answers = super::dedup::in_order(lookups).await;
        let states = body
            .transactional_ids
            .iter()
            .zip(answers)
            .map(|(id, answer)| {
                let state = TransactionState::default()
                    .with_transactional_id(id.clone())
                    .with_transaction_state(str_bytes(""))
                    .with_transaction_start_time_ms(-1)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
                match answer {
                    TxnAnswer::Described(Ok(d)) => {
                        let topics = topics(&shard, &request, d.partitions);
                        state
                            .with_transaction_state(str_bytes(d.state))
                            .with_transaction_timeout_ms(d.timeout_ms)
                            .with_transaction_start_time_ms(d.start_ms)
                            .with_producer_id(ProducerId(d.producer_id))
                            .with_producer_epoch(d.producer_epoch)
                            .with_topics(topics)
                    }
                    TxnAnswer::Described(Err(code)) => state.with_error_code(code.code()),
                    // The ACL refusal (see above).
                    TxnAnswer::Error(TxnCode::None) => {
                        state.with_error_code(K::TransactionalIdAuthorizationFailed.code())
                    }
                    other => state.with_error_code(error_of(&other).code()),
                }
            })
            .collect();
        let response = DescribeTransactionsResponse::default().with_transaction_states(states);
        Outcome::encoded(&response, version)
    })
}

fn topics(shard: &Shard, request: &Request, partitions: Vec<(String, i32)>) -> Vec<TopicData> {
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(partition),
            _ => {
                let visible = super::authz::allowed_quietly(
                    shard,
                    request,
                    Operation::Describe,
                    ResourceType::Topic,
                    &topic,
                );
                if visible {
                    topics.push(
                        TopicData::default()
                            .with_topic(TopicName(str_bytes(&topic)))
                            .with_partitions(vec![partition]),
                    );
                }
            }
        }
    }
    topics
}
