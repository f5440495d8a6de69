//! The error codes of the forwarded APIs' responses (`handlers::forward::FORWARDED_APIS`), for
//! the two places forwarding looks into a response as Kafka does: the active controller
//! answers an Envelope whose response carries NOT_CONTROLLER with the envelope error
//! NOT_CONTROLLER, so that the forwarding broker retries against the new controller (Kafka's
//! `RequestChannel.shouldReturnNotController`); and a broker that gives up on forwarding answers
//! the client REQUEST_TIMED_OUT (Kafka's `getErrorResponse(new TimeoutException())` in
//! `ForwardingManager.onTimeout`) by rewriting its own NOT_CONTROLLER answer.
//!
//! Invariants: every error code of a response (top-level and per item) is visited; a body that
//! does not decode at its version is left alone (None), never a panic.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterClientQuotasResponse, AlterConfigsResponse, AlterPartitionReassignmentsResponse,
    AlterUserScramCredentialsResponse, ApiKey, CreateAclsResponse, CreatePartitionsResponse,
    CreateTopicsResponse, DeleteAclsResponse, DeleteTopicsResponse, ElectLeadersResponse,
    IncrementalAlterConfigsResponse, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Kafka's NOT_CONTROLLER.
pub const NOT_CONTROLLER: i16 = 41;
/// Kafka's REQUEST_TIMED_OUT (`Errors.forException(TimeoutException)`).
pub const REQUEST_TIMED_OUT: i16 = 7;
/// Kafka's UNKNOWN_SERVER_ERROR.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;

/// Whether the response `body` of `api_key` at `version` carries `code` anywhere.
pub fn carries(api_key: ApiKey, version: i16, body: &Bytes, code: i16) -> bool {
    let mut found = false;
    visit(api_key, version, body, &mut |c| {
        found |= *c == code;
    });
    found
}

/// `body` with every error code `from` replaced by `to`; None when it does not decode.
pub fn replace(api_key: ApiKey, version: i16, body: &Bytes, from: i16, to: i16) -> Option<Bytes> {
    visit(api_key, version, body, &mut |c| {
        if *c == from {
            *c = to;
        }
    })
}

/// Decodes `body`, calls `f` on each error code, encodes it again.
fn visit(
    api_key: ApiKey,
    version: i16,
    body: &Bytes,
    f: &mut dyn FnMut(&mut i16),
) -> Option<Bytes> {
    match api_key {
        ApiKey::CreateTopics => edit(body, version, |r: &mut CreateTopicsResponse| {
            r.topics.iter_mut().for_each(|t| f(&mut t.error_code));
        }),
        ApiKey::DeleteTopics => edit(body, version, |r: &mut DeleteTopicsResponse| {
            r.responses.iter_mut().for_each(|t| f(&mut t.error_code));
        }),
        ApiKey::CreatePartitions => edit(body, version, |r: &mut CreatePartitionsResponse| {
            r.results.iter_mut().for_each(|t| f(&mut t.error_code));
        }),
        ApiKey::AlterConfigs => edit(body, version, |r: &mut AlterConfigsResponse| {
            r.responses.iter_mut().for_each(|t| f(&mut t.error_code));
        }),
        ApiKey::IncrementalAlterConfigs => {
            edit(body, version, |r: &mut IncrementalAlterConfigsResponse| {
                r.responses.iter_mut().for_each(|t| f(&mut t.error_code));
            })
        }
        ApiKey::CreateAcls => edit(body, version, |r: &mut CreateAclsResponse| {
            r.results.iter_mut().for_each(|t| f(&mut t.error_code));
        }),
        ApiKey::DeleteAcls => edit(body, version, |r: &mut DeleteAclsResponse| {
            for filter in &mut r.filter_results {
                f(&mut filter.error_code);
                filter
                    .matching_acls
                    .iter_mut()
                    .for_each(|a| f(&mut a.error_code));
            }
        }),
        ApiKey::AlterUserScramCredentials => edit(
            body,
            version,
            |r: &mut AlterUserScramCredentialsResponse| {
                r.results.iter_mut().for_each(|t| f(&mut t.error_code));
            },
        ),
        ApiKey::AlterClientQuotas => edit(body, version, |r: &mut AlterClientQuotasResponse| {
            r.entries.iter_mut().for_each(|t| f(&mut t.error_code));
        }),
        ApiKey::ElectLeaders => edit(body, version, |r: &mut ElectLeadersResponse| {
            // v0 has no top-level error code: it stays 0, which no rewrite touches.
            f(&mut r.error_code);
            for topic in &mut r.replica_election_results {
                topic
                    .partition_result
                    .iter_mut()
                    .for_each(|p| f(&mut p.error_code));
            }
        }),
        ApiKey::AlterPartitionReassignments => edit(
            body,
            version,
            |r: &mut AlterPartitionReassignmentsResponse| {
                f(&mut r.error_code);
                for topic in &mut r.responses {
                    topic
                        .partitions
                        .iter_mut()
                        .for_each(|p| f(&mut p.error_code));
                }
            },
        ),
        ApiKey::ListPartitionReassignments => edit(
            body,
            version,
            |r: &mut ListPartitionReassignmentsResponse| {
                f(&mut r.error_code);
            },
        ),
        _ => None,
    }
}

fn edit<R: Decodable + Encodable>(
    body: &Bytes,
    version: i16,
    change: impl FnOnce(&mut R),
) -> Option<Bytes> {
    let mut response = R::decode(&mut body.clone(), version).ok()?;
    change(&mut response);
    let mut out = BytesMut::new();
    response.encode(&mut out, version).ok()?;
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn encoded<T: Encodable>(message: &T, version: i16) -> Bytes {
        let mut out = BytesMut::new();
        message.encode(&mut out, version).unwrap();
        out.freeze()
    }

    fn topic(name: &str, code: i16) -> CreatableTopicResult {
        CreatableTopicResult::default()
            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
            .with_error_code(code)
    }

    #[test]
    fn not_controller_is_found_and_rewritten_per_item() {
        let body = encoded(
            &CreateTopicsResponse::default().with_topics(vec![topic("a", 0), topic("b", 41)]),
            5,
        );
        assert!(carries(ApiKey::CreateTopics, 5, &body, NOT_CONTROLLER));
        let timed_out = replace(
            ApiKey::CreateTopics,
            5,
            &body,
            NOT_CONTROLLER,
            REQUEST_TIMED_OUT,
        )
        .unwrap();
        let back = CreateTopicsResponse::decode(&mut timed_out.clone(), 5).unwrap();
        let codes: Vec<i16> = back.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(codes, vec![0, REQUEST_TIMED_OUT]);
        assert!(!carries(
            ApiKey::CreateTopics,
            5,
            &timed_out,
            NOT_CONTROLLER
        ));
    }

    #[test]
    fn nested_and_top_level_codes_are_visited() {
        let partitions = vec![PartitionResult::default().with_error_code(41)];
        let elect = ElectLeadersResponse::default().with_replica_election_results(vec![
            ReplicaElectionResult::default().with_partition_result(partitions),
        ]);
        for version in [0, 2] {
            let body = encoded(&elect, version);
            assert!(carries(
                ApiKey::ElectLeaders,
                version,
                &body,
                NOT_CONTROLLER
            ));
        }
        let listed = encoded(
            &ListPartitionReassignmentsResponse::default().with_error_code(41),
            0,
        );
        assert!(carries(ApiKey::ListPartitionReassignments, 0, &listed, 41));
    }

    #[test]
    fn garbage_and_other_apis_are_left_alone() {
        let garbage = Bytes::from_static(&[0xFF; 9]);
        assert!(!carries(ApiKey::CreateTopics, 5, &garbage, NOT_CONTROLLER));
        assert_eq!(replace(ApiKey::DeleteTopics, 4, &garbage, 41, 7), None);
        assert_eq!(replace(ApiKey::Produce, 9, &Bytes::new(), 41, 7), None);
    }
}
