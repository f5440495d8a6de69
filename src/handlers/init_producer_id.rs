//! InitProducerId (v0-5) for idempotent producers (KIP-98) without transactions.
//!
//! - transactional_id null, no producer id: a new producer id (unique for this broker's data
//!   dir, across restarts; see `producers::ids`), epoch 0.
//! - transactional_id null with producer id and epoch (KIP-360 epoch bump): the same id with
//!   epoch + 1; an exhausted epoch (>= i16::MAX - 1) gets a new id with epoch 0, as Kafka does.
//!   (Kafka itself hands a non-transactional producer a fresh id here; the bump keeps the id
//!   stable and is equally safe, since a new epoch must restart at sequence 0.)
//! - transactional_id set: the transaction coordinator of the id answers (`txn`: epoch bump
//!   fencing the older producer, CONCURRENT_TRANSACTIONS while a transaction completes,
//!   INVALID_TRANSACTION_TIMEOUT past `transaction.max.timeout.ms`, PRODUCER_FENCED, answered
//!   INVALID_PRODUCER_EPOCH before v4); TRANSACTIONAL_ID WRITE is required, else
//!   TRANSACTIONAL_ID_AUTHORIZATION_FAILED; an empty id is INVALID_REQUEST (Kafka's answer).
//! - producer id and epoch not both set or both -1: INVALID_REQUEST.
//! - ACLs (Kafka 3+): without a transactional id, CLUSTER IDEMPOTENT_WRITE or WRITE on any
//!   topic, else CLUSTER_AUTHORIZATION_FAILED.
//!
//! Invariant: an error answer carries producer id -1 and epoch -1.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError as K;

use super::error::producer_id_error_code;
use super::{HandlerFuture, Outcome, Request};
use crate::router::Router;
use crate::shard::Shard;

/// Kafka's `isEpochExhausted`: at this epoch a bump hands out a new producer id instead.
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// What the request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    NewId,
    Bump {
        producer_id: i64,
        epoch: i16,
    },
    /// A transactional id: its coordinator decides.
    Transactional {
        expected: Option<(i64, i16)>,
    },
    Refuse(i16),
}

/// The first version where PRODUCER_FENCED is answered as such (Kafka's KafkaApis).
const PRODUCER_FENCED_SINCE: i16 = 4;

fn decide(request: &InitProducerIdRequest) -> Decision {
    let transactional = match &request.transactional_id {
        Some(id) if id.0.is_empty() => return Decision::Refuse(K::InvalidRequest.code()),
        Some(_) => true,
        None => false,
    };
    if transactional {
        return match (request.producer_id.0, request.producer_epoch) {
            (-1, -1) => Decision::Transactional { expected: None },
            (id, epoch) if id >= 0 && epoch >= 0 => Decision::Transactional {
                expected: Some((id, epoch)),
            },
            _ => Decision::Refuse(K::InvalidRequest.code()),
        };
    }
    match (request.producer_id.0, request.producer_epoch) {
        (-1, -1) => Decision::NewId,
        (id, epoch) if id >= 0 && epoch >= EPOCH_EXHAUSTED => Decision::NewId,
        (id, epoch) if id >= 0 && epoch >= 0 => Decision::Bump {
            producer_id: id,
            epoch: epoch + 1,
        },
        _ => Decision::Refuse(K::InvalidRequest.code()),
    }
}

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: InitProducerIdRequest = request.decode()?;
        let refused = |code: i16| {
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        };
        let decision = match &body.transactional_id {
            None if !super::authz::idempotent_write_allowed(&shard, &request) => {
                Decision::Refuse(K::ClusterAuthorizationFailed.code())
            }
            Some(id)
                if !super::txn_common::txn_allowed(
                    &shard,
                    &request,
                    crate::security::acl::Operation::Write,
                    id.0.as_str(),
                ) =>
            {
                Decision::Refuse(K::TransactionalIdAuthorizationFailed.code())
            }
            _ => decide(&body),
        };
        let response = match decision {
            Decision::Refuse(code) => refused(code),
            Decision::Transactional { expected } => {
                let op = crate::txn::TxnOp::InitProducerId {
                    transactional_id: body
                        .transactional_id
                        .as_ref()
                        .map(|id| id.0.to_string())
                        .unwrap_or_default(),
                    timeout_ms: body.transaction_timeout_ms,
                    expected,
                };
                match crate::txn::route(&shard.txn_coordinator_context(), op).await {
                    crate::txn::TxnAnswer::Producer {
                        code: crate::txn::TxnCode::None,
                        producer_id,
                        producer_epoch,
                    } => InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(producer_id))
                        .with_producer_epoch(producer_epoch),
                    other => refused(
                        super::txn_common::error_of(&other)
                            .for_version(version, PRODUCER_FENCED_SINCE),
                    ),
                }
            }
            Decision::Bump { producer_id, epoch } => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            Decision::NewId => match Router::new(shard.router_context()).next_producer_id().await {
                Ok(id) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id.0))
                    .with_producer_epoch(0),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot allocate a producer id");
                    refused(producer_id_error_code(&e))
                }
            },
        };
        Outcome::encoded(&response, version)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::TransactionalId;

    fn request(txn: Option<&str>, id: i64, epoch: i16) -> InitProducerIdRequest {
        InitProducerIdRequest::default()
            .with_transactional_id(txn.map(|t| TransactionalId(super::super::str_bytes(t))))
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
    }

    #[test]
    fn idempotent_requests_get_ids_and_bumps() {
        assert_eq!(decide(&request(None, -1, -1)), Decision::NewId);
        assert_eq!(
            decide(&request(None, 42, 3)),
            Decision::Bump {
                producer_id: 42,
                epoch: 4
            }
        );
        assert_eq!(decide(&request(None, 42, EPOCH_EXHAUSTED)), Decision::NewId);
    }

    #[test]
    fn transactional_ids_go_to_their_coordinator_and_malformed_requests_are_refused() {
        assert_eq!(
            decide(&request(Some("tx"), -1, -1)),
            Decision::Transactional { expected: None }
        );
        assert_eq!(
            decide(&request(Some("tx"), 42, 3)),
            Decision::Transactional {
                expected: Some((42, 3))
            }
        );
        assert_eq!(decide(&request(Some("tx"), 42, -1)), Decision::Refuse(42));
        assert_eq!(decide(&request(Some(""), -1, -1)), Decision::Refuse(42));
        assert_eq!(decide(&request(None, 42, -1)), Decision::Refuse(42));
        assert_eq!(decide(&request(None, -1, 0)), Decision::Refuse(42));
        assert_eq!(decide(&request(None, -7, 0)), Decision::Refuse(42));
    }
}
