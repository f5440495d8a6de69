//! ListTransactions v0-2: the transactional ids of every shard's coordinator, filtered by state
//! names, producer ids, v1+ `duration_filter` (transactions running longer than that many ms)
//! and v2+ `transactional_id_pattern` (a regular expression, Kafka's KIP-1152). Unknown state
//! names are answered in `unknown_state_filters`; ids without TRANSACTIONAL_ID DESCRIBE are
//! left out, as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::ResponseError as K;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;
use crate::txn::state::TxnState;
use crate::txn::ListFilter;

/// Longest `transactional_id_pattern` accepted (a regex is compiled per request).
const PATTERN_BYTES_MAX: usize = 1024;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ListTransactionsRequest = request.decode()?;
        let mut filter = ListFilter {
            duration_ms: if version >= 1 {
                body.duration_filter
            } else {
                -1
            },
            producer_ids: body.producer_id_filters.iter().map(|p| p.0).collect(),
            ..ListFilter::default()
        };
        let mut unknown = Vec::new();
        for name in &body.state_filters {
            match TxnState::from_name(name.as_str()) {
                Some(state) => filter.states.push(state),
                None => unknown.push(name.clone()),
            }
        }
        let pattern = match body
            .transactional_id_pattern
            .as_ref()
            .filter(|_| version >= 2)
        {
            None => None,
            Some(p) if p.is_empty() => None,
            Some(p) if p.len() > PATTERN_BYTES_MAX => {
                return refuse(version, K::InvalidRequest.code());
            }
            Some(p) => match regex::Regex::new(p.as_str()) {
                Ok(re) => Some(re),
                Err(_) => return refuse(version, K::InvalidRegularExpression.code()),
            },
        };
        let response = match crate::txn::list_all(&shard.txn_coordinator_context(), filter).await {
            Err(code) => ListTransactionsResponse::default().with_error_code(code.code()),
            Ok(listed) => {
                let states = listed
                    .into_iter()
                    .filter(|t| {
                        pattern
                            .as_ref()
                            .is_none_or(|re| re.is_match(&t.transactional_id))
                    })
                    .filter(|t| {
                        super::authz::allowed_quietly(
                            &shard,
                            &request,
                            Operation::Describe,
                            ResourceType::TransactionalId,
                            &t.transactional_id,
                        )
                    })
                    .map(|t| {
                        TransactionState::default()
                            .with_transactional_id(TransactionalId(str_bytes(&t.transactional_id)))
                            .with_producer_id(ProducerId(t.producer_id))
                            .with_transaction_state(str_bytes(t.state))
                    })
                    .collect();
                ListTransactionsResponse::default().with_transaction_states(states)
            }
        };
        Outcome::encoded(&response.with_unknown_state_filters(unknown), version)
    })
}

fn refuse(version: i16, code: i16) -> Result<super::Outcome, super::HandlerError> {
    Outcome::encoded(
        &ListTransactionsResponse::default().with_error_code(code),
        version,
    )
}
