//! Kafka API handlers: one file per API, and the one registry (`REGISTRY`) mapping an API key to
//! its supported version range and handler. ApiVersions is generated from the registry, so
//! adding an API is one line here plus its file.
//!
//! Invariants: handlers do no I/O themselves (they decode with kafka-protocol, call the router,
//! encode); a request whose body does not decode yields `HandlerError`, which closes the
//! connection (Kafka's behaviour for unparseable requests); versions outside an entry's range
//! never reach a handler.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod authz;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod dedup;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod error;
pub mod fetch;
pub mod fetch_session;
pub mod find_coordinator;
pub mod forward;
pub mod forward_errors;
pub mod group_common;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod listener_configs;
pub mod metadata;
pub mod mutation_quota;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod produce_txn;
pub mod route;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod scram_credentials;
pub mod sync_group;
pub mod throttle;
pub mod txn_common;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::shard::Shard;

pub use self::error::HandlerError;

/// One decoded request header plus its still-encoded body.
#[derive(Clone)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
    /// The client's address (group member descriptions report its IP as `/127.0.0.1`).
    pub peer: std::net::SocketAddr,
    /// The connection's listener, principal and SASL state.
    pub session: Rc<crate::security::session::Session>,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    /// Decodes the body as `T` at the request's version; trailing bytes are tolerated (Kafka
    /// ignores them too).
    pub fn decode<T: Decodable>(&self) -> Result<T, HandlerError> {
        let mut body = self.body.clone();
        T::decode(&mut body, self.version()).map_err(|e| HandlerError::Decode(format!("{e:#}")))
    }
}

/// Part of an encoded response body.
#[derive(Debug)]
pub enum BodyPart {
    Bytes(Bytes),
    /// Record bytes to splice from a segment file (zero-copy fetch).
    File(storage::FileRange),
}

impl BodyPart {
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::File(f) => f.len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a handler produced.
#[derive(Debug)]
pub enum Outcome {
    /// The encoded response body (without size prefix or response header).
    Body(Vec<BodyPart>),
    /// No response at all (Produce with acks=0).
    Silent,
}

impl Outcome {
    pub fn encoded<T: Encodable>(message: &T, version: i16) -> Result<Self, HandlerError> {
        let mut buf = BytesMut::with_capacity(message.compute_size(version).unwrap_or(64));
        message
            .encode(&mut buf, version)
            .map_err(|e| HandlerError::Encode(format!("{e:#}")))?;
        Ok(Self::Body(vec![BodyPart::Bytes(buf.freeze())]))
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Outcome, HandlerError>>>>;
pub type Handler = fn(Rc<Shard>, Request) -> HandlerFuture;

/// One supported API.
pub struct ApiEntry {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    pub handler: Handler,
}

/// Every API Sluice answers, with the versions librdkafka 2.x, kafka-python and the Java 4.x
/// client negotiate (and kafka-protocol 0.18 can encode).
pub const REGISTRY: &[ApiEntry] = &[
    ApiEntry {
        key: ApiKey::Produce,
        min_version: 3,
        max_version: 12,
        handler: produce::handle,
    },
    ApiEntry {
        key: ApiKey::Fetch,
        min_version: 4,
        max_version: 17,
        handler: fetch::handle,
    },
    ApiEntry {
        key: ApiKey::ListOffsets,
        min_version: 1,
        max_version: 10,
        handler: list_offsets::handle,
    },
    ApiEntry {
        key: ApiKey::Metadata,
        min_version: 0,
        max_version: 12,
        handler: metadata::handle,
    },
    ApiEntry {
        key: ApiKey::ApiVersions,
        min_version: 0,
        max_version: 4,
        handler: api_versions::handle,
    },
    ApiEntry {
        key: ApiKey::CreateTopics,
        min_version: 2,
        max_version: 7,
        handler: create_topics::handle,
    },
    ApiEntry {
        key: ApiKey::OffsetForLeaderEpoch,
        min_version: 2,
        max_version: 4,
        handler: offset_for_leader_epoch::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeCluster,
        min_version: 0,
        max_version: 1,
        handler: describe_cluster::handle,
    },
    ApiEntry {
        key: ApiKey::DeleteTopics,
        min_version: 1,
        max_version: 6,
        handler: delete_topics::handle,
    },
    ApiEntry {
        key: ApiKey::CreatePartitions,
        min_version: 0,
        max_version: 3,
        handler: create_partitions::handle,
    },
    ApiEntry {
        key: ApiKey::DeleteRecords,
        min_version: 0,
        max_version: 2,
        handler: delete_records::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeConfigs,
        min_version: 1,
        max_version: 4,
        handler: describe_configs::handle,
    },
    ApiEntry {
        key: ApiKey::AlterConfigs,
        min_version: 0,
        max_version: 2,
        handler: alter_configs::handle,
    },
    ApiEntry {
        key: ApiKey::IncrementalAlterConfigs,
        min_version: 0,
        max_version: 1,
        handler: alter_configs::handle_incremental,
    },
    ApiEntry {
        key: ApiKey::FindCoordinator,
        min_version: 0,
        max_version: 6,
        handler: find_coordinator::handle,
    },
    ApiEntry {
        key: ApiKey::JoinGroup,
        min_version: 0,
        max_version: 9,
        handler: join_group::handle,
    },
    ApiEntry {
        key: ApiKey::SyncGroup,
        min_version: 0,
        max_version: 5,
        handler: sync_group::handle,
    },
    ApiEntry {
        key: ApiKey::Heartbeat,
        min_version: 0,
        max_version: 4,
        handler: heartbeat::handle,
    },
    ApiEntry {
        key: ApiKey::LeaveGroup,
        min_version: 0,
        max_version: 5,
        handler: leave_group::handle,
    },
    ApiEntry {
        key: ApiKey::OffsetCommit,
        min_version: 2,
        max_version: 9,
        handler: offset_commit::handle,
    },
    ApiEntry {
        key: ApiKey::OffsetFetch,
        min_version: 1,
        max_version: 9,
        handler: offset_fetch::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeGroups,
        min_version: 0,
        max_version: 6,
        handler: describe_groups::handle,
    },
    ApiEntry {
        key: ApiKey::ListGroups,
        min_version: 0,
        max_version: 5,
        handler: list_groups::handle,
    },
    ApiEntry {
        key: ApiKey::DeleteGroups,
        min_version: 0,
        max_version: 2,
        handler: delete_groups::handle,
    },
    ApiEntry {
        key: ApiKey::OffsetDelete,
        min_version: 0,
        max_version: 0,
        handler: offset_delete::handle,
    },
    ApiEntry {
        key: ApiKey::InitProducerId,
        min_version: 0,
        max_version: 5,
        handler: init_producer_id::handle,
    },
    ApiEntry {
        key: ApiKey::SaslHandshake,
        min_version: 0,
        max_version: 1,
        handler: sasl_handshake::handle,
    },
    ApiEntry {
        key: ApiKey::SaslAuthenticate,
        min_version: 0,
        max_version: 2,
        handler: sasl_authenticate::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeUserScramCredentials,
        min_version: 0,
        max_version: 0,
        handler: scram_credentials::handle_describe,
    },
    ApiEntry {
        key: ApiKey::AlterUserScramCredentials,
        min_version: 0,
        max_version: 0,
        handler: scram_credentials::handle_alter,
    },
    ApiEntry {
        key: ApiKey::ElectLeaders,
        min_version: 0,
        max_version: 2,
        handler: elect_leaders::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeTopicPartitions,
        min_version: 0,
        max_version: 0,
        handler: describe_topic_partitions::handle,
    },
    ApiEntry {
        key: ApiKey::ListConfigResources,
        min_version: 0,
        max_version: 1,
        handler: list_config_resources::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeAcls,
        min_version: 1,
        max_version: 3,
        handler: describe_acls::handle,
    },
    ApiEntry {
        key: ApiKey::CreateAcls,
        min_version: 1,
        max_version: 3,
        handler: create_acls::handle,
    },
    ApiEntry {
        key: ApiKey::DeleteAcls,
        min_version: 1,
        max_version: 3,
        handler: delete_acls::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeClientQuotas,
        min_version: 0,
        max_version: 1,
        handler: describe_client_quotas::handle,
    },
    ApiEntry {
        key: ApiKey::AlterClientQuotas,
        min_version: 0,
        max_version: 1,
        handler: alter_client_quotas::handle,
    },
    ApiEntry {
        key: ApiKey::AddPartitionsToTxn,
        min_version: 0,
        max_version: 5,
        handler: add_partitions_to_txn::handle,
    },
    ApiEntry {
        key: ApiKey::AddOffsetsToTxn,
        min_version: 0,
        max_version: 4,
        handler: add_offsets_to_txn::handle,
    },
    ApiEntry {
        key: ApiKey::EndTxn,
        min_version: 0,
        max_version: 5,
        handler: end_txn::handle,
    },
    ApiEntry {
        key: ApiKey::TxnOffsetCommit,
        min_version: 0,
        max_version: 5,
        handler: txn_offset_commit::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeTransactions,
        min_version: 0,
        max_version: 0,
        handler: describe_transactions::handle,
    },
    ApiEntry {
        key: ApiKey::ListTransactions,
        min_version: 0,
        max_version: 2,
        handler: list_transactions::handle,
    },
    ApiEntry {
        key: ApiKey::WriteTxnMarkers,
        min_version: 1,
        max_version: 1,
        handler: write_txn_markers::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeProducers,
        min_version: 0,
        max_version: 0,
        handler: describe_producers::handle,
    },
    ApiEntry {
        key: ApiKey::DescribeLogDirs,
        min_version: 1,
        max_version: 4,
        handler: describe_log_dirs::handle,
    },
    ApiEntry {
        key: ApiKey::AlterPartitionReassignments,
        min_version: 0,
        max_version: 1,
        handler: alter_partition_reassignments::handle,
    },
    ApiEntry {
        key: ApiKey::ListPartitionReassignments,
        min_version: 0,
        max_version: 0,
        handler: list_partition_reassignments::handle,
    },
];

pub fn lookup(key: ApiKey) -> Option<&'static ApiEntry> {
    REGISTRY.iter().find(|entry| entry.key == key)
}

/// What the connection should do with a request, decided from its header alone.
pub enum Route {
    Handle(Handler),
    /// ApiVersions at a version we do not know: answer v0 with UNSUPPORTED_VERSION.
    ApiVersionsFallback,
    /// Unknown API or unsupported version: Kafka closes the connection.
    Reject(&'static str),
}

pub fn route(key: ApiKey, version: i16) -> Route {
    match lookup(key) {
        Some(entry) if (entry.min_version..=entry.max_version).contains(&version) => {
            Route::Handle(entry.handler)
        }
        Some(_) if key == ApiKey::ApiVersions => Route::ApiVersionsFallback,
        Some(_) => Route::Reject("unsupported API version"),
        None => Route::Reject("unsupported API"),
    }
}

/// Kafka's "no topic-authorized-operations requested" sentinel.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_owned())
}

/// Decodes a request body as the registry's handler would (the fuzz target's entry point);
/// returns whether it decoded. Versions outside the registry are not decoded (never reached).
pub fn decode_any(key: ApiKey, version: i16, body: Bytes) -> bool {
    use kafka_protocol::messages as m;
    let Some(entry) = lookup(key) else {
        return false;
    };
    if !(entry.min_version..=entry.max_version).contains(&version) {
        return false;
    }
    let mut body = body;
    let buf = &mut body;
    match key {
        ApiKey::Produce => m::ProduceRequest::decode(buf, version).is_ok(),
        ApiKey::Fetch => m::FetchRequest::decode(buf, version).is_ok(),
        ApiKey::ListOffsets => m::ListOffsetsRequest::decode(buf, version).is_ok(),
        ApiKey::Metadata => m::MetadataRequest::decode(buf, version).is_ok(),
        ApiKey::ApiVersions => m::ApiVersionsRequest::decode(buf, version).is_ok(),
        ApiKey::CreateTopics => m::CreateTopicsRequest::decode(buf, version).is_ok(),
        ApiKey::OffsetForLeaderEpoch => {
            m::OffsetForLeaderEpochRequest::decode(buf, version).is_ok()
        }
        ApiKey::DescribeCluster => m::DescribeClusterRequest::decode(buf, version).is_ok(),
        ApiKey::DeleteTopics => m::DeleteTopicsRequest::decode(buf, version).is_ok(),
        ApiKey::CreatePartitions => m::CreatePartitionsRequest::decode(buf, version).is_ok(),
        ApiKey::DeleteRecords => m::DeleteRecordsRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeConfigs => m::DescribeConfigsRequest::decode(buf, version).is_ok(),
        ApiKey::AlterConfigs => m::AlterConfigsRequest::decode(buf, version).is_ok(),
        ApiKey::IncrementalAlterConfigs => {
            m::IncrementalAlterConfigsRequest::decode(buf, version).is_ok()
        }
        ApiKey::FindCoordinator => m::FindCoordinatorRequest::decode(buf, version).is_ok(),
        ApiKey::JoinGroup => m::JoinGroupRequest::decode(buf, version).is_ok(),
        ApiKey::SyncGroup => m::SyncGroupRequest::decode(buf, version).is_ok(),
        ApiKey::Heartbeat => m::HeartbeatRequest::decode(buf, version).is_ok(),
        ApiKey::LeaveGroup => m::LeaveGroupRequest::decode(buf, version).is_ok(),
        ApiKey::OffsetCommit => m::OffsetCommitRequest::decode(buf, version).is_ok(),
        ApiKey::OffsetFetch => m::OffsetFetchRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeGroups => m::DescribeGroupsRequest::decode(buf, version).is_ok(),
        ApiKey::ListGroups => m::ListGroupsRequest::decode(buf, version).is_ok(),
        ApiKey::DeleteGroups => m::DeleteGroupsRequest::decode(buf, version).is_ok(),
        ApiKey::OffsetDelete => m::OffsetDeleteRequest::decode(buf, version).is_ok(),
        ApiKey::InitProducerId => m::InitProducerIdRequest::decode(buf, version).is_ok(),
        ApiKey::SaslHandshake => m::SaslHandshakeRequest::decode(buf, version).is_ok(),
        ApiKey::SaslAuthenticate => m::SaslAuthenticateRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeUserScramCredentials => {
            m::DescribeUserScramCredentialsRequest::decode(buf, version).is_ok()
        }
        ApiKey::AlterUserScramCredentials => {
            m::AlterUserScramCredentialsRequest::decode(buf, version).is_ok()
        }
        ApiKey::ElectLeaders => m::ElectLeadersRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeTopicPartitions => {
            m::DescribeTopicPartitionsRequest::decode(buf, version).is_ok()
        }
        ApiKey::ListConfigResources => m::ListConfigResourcesRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeAcls => m::DescribeAclsRequest::decode(buf, version).is_ok(),
        ApiKey::CreateAcls => m::CreateAclsRequest::decode(buf, version).is_ok(),
        ApiKey::DeleteAcls => m::DeleteAclsRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeClientQuotas => {
            m::DescribeClientQuotasRequest::decode(buf, version).is_ok()
        }
        ApiKey::AlterClientQuotas => m::AlterClientQuotasRequest::decode(buf, version).is_ok(),
        ApiKey::WriteTxnMarkers => m::WriteTxnMarkersRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeProducers => m::DescribeProducersRequest::decode(buf, version).is_ok(),
        ApiKey::DescribeLogDirs => m::DescribeLogDirsRequest::decode(buf, version).is_ok(),
        ApiKey::AlterPartitionReassignments => {
            m::AlterPartitionReassignmentsRequest::decode(buf, version).is_ok()
        }
        ApiKey::ListPartitionReassignments => {
            m::ListPartitionReassignmentsRequest::decode(buf, version).is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_within_what_kafka_protocol_can_encode() {
        for entry in REGISTRY {
            let valid = entry.key.valid_versions();
            assert!(entry.min_version <= entry.max_version, "{:?}", entry.key);
            assert!(
                valid.min <= entry.min_version && entry.max_version <= valid.max,
                "{:?}",
                entry.key
            );
        }
    }

    #[test]
    fn registry_has_each_key_once() {
        for (i, a) in REGISTRY.iter().enumerate() {
            assert!(
                REGISTRY.iter().skip(i + 1).all(|b| b.key != a.key),
                "{:?} twice",
                a.key
            );
        }
    }

    #[test]
    fn routing_by_version() {
        assert!(matches!(route(ApiKey::Produce, 9), Route::Handle(_)));
        assert!(matches!(route(ApiKey::Produce, 2), Route::Reject(_)));
        assert!(matches!(
            route(ApiKey::ApiVersions, 99),
            Route::ApiVersionsFallback
        ));
        assert!(matches!(route(ApiKey::JoinGroup, 10), Route::Reject(_)));
    }
}
