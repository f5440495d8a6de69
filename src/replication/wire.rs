//! The follower's inter-broker messages (Kafka's `ReplicaFetcherThread` / `RemoteLeaderEndPoint`
//! request building): a [`FetchPlan`] as a Fetch request carrying this broker's replica id
//! (`replica_id` before v15, `ReplicaState { replica_id, replica_epoch }` from v15, KIP-903),
//! OffsetForLeaderEpoch for partitions reconciling their log, and the Fetch response turned
//! back into per-partition [`PartitionAnswer`]s and record bytes. Protocol code: no I/O.
//!
//! Invariants: a replica fetch never uses a fetch session (session id 0, epoch -1: full
//! fetches, as Kafka's follower does when sessions are off) and reads uncommitted data
//! (isolation READ_UNCOMMITTED: followers copy the log end, not the high watermark); a
//! response partition this broker did not ask for is dropped.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{
    FetchPartition as WirePartition, FetchTopic, ReplicaState,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::fetcher::{FetchPlan, PartitionAnswer};
use super::truncation::EpochEndOffset;

/// The first Fetch version naming topics by id.
pub const TOPIC_ID_VERSION: i16 = 13;
/// The first Fetch version carrying the replica as `ReplicaState` (KIP-903).
pub const REPLICA_STATE_VERSION: i16 = 15;

/// A replica Fetch for `plan` at `version`. `topic_id` gives a topic's id (v13+); a topic
/// without one is sent by name (older versions only).
pub fn fetch_request(
    plan: &FetchPlan,
    replica_id: i32,
    broker_epoch: i64,
    version: i16,
    topic_id: impl Fn(&str) -> Option<uuid::Uuid>,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in &plan.partitions {
        let partition = WirePartition::default()
            .with_partition(p.partition)
            .with_current_leader_epoch(p.current_leader_epoch)
            .with_fetch_offset(p.fetch_offset)
            .with_last_fetched_epoch(p.last_fetched_epoch)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(p.partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == p.topic) {
            Some(t) => t.partitions.push(partition),
            None => {
                let id = topic_id(&p.topic).unwrap_or_default();
                topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(p.topic.clone())))
                        .with_topic_id(id)
                        .with_partitions(vec![partition]),
                );
            }
        }
    }
    let mut request = FetchRequest::default()
        .with_max_wait_ms(plan.max_wait_ms)
        .with_min_bytes(plan.min_bytes)
        .with_max_bytes(plan.max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    if version >= REPLICA_STATE_VERSION {
        request = request.with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(replica_id))
                .with_replica_epoch(broker_epoch),
        );
    } else {
        request = request.with_replica_id(BrokerId(replica_id));
    }
    request
}

/// The replica id a Fetch carries (-1 for a consumer), whatever its version.
pub fn replica_id_of(request: &FetchRequest, version: i16) -> i32 {
    if version >= REPLICA_STATE_VERSION {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    }
}

/// One partition of a decoded replica Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub topic: String,
    pub partition: i32,
    pub answer: PartitionAnswer,
    pub records: Option<Bytes>,
    /// The leader's log start offset: the follower raises its own to it (Kafka's
    /// `LeaderOffsetIncremented`), so DeleteRecords and retention survive a leader change.
    pub log_start_offset: i64,
}

/// The partitions of `response`, with topic names (looked up by id from v13 with
/// `topic_name`); partitions of unknown topics are dropped.
pub fn fetched_partitions(
    response: &FetchResponse,
    version: i16,
    topic_name: impl Fn(uuid::Uuid) -> Option<String>,
) -> Vec<FetchedPartition> {
    let mut out = Vec::new();
    for topic in &response.responses {
        let name = if version >= TOPIC_ID_VERSION {
            topic_name(topic.topic_id)
        } else {
            Some(topic.topic.0.to_string())
        };
        let Some(name) = name else { continue };
        for p in &topic.partitions {
            let diverging = (p.diverging_epoch.epoch >= 0).then(|| {
                EpochEndOffset::new(p.diverging_epoch.epoch, p.diverging_epoch.end_offset)
            });
            let records = p.records.clone().filter(|r| !r.is_empty());
            out.push(FetchedPartition {
                topic: name.clone(),
                partition: p.partition_index,
                answer: PartitionAnswer {
                    error_code: p.error_code,
                    high_watermark: p.high_watermark,
                    diverging_epoch: diverging,
                    has_records: records.is_some(),
                },
                records,
                log_start_offset: p.log_start_offset,
            });
        }
    }
    out
}

/// ListOffsets as a replica asks it (Kafka's `fetchEarliestOffset` / `fetchLatestOffset` for
/// an out-of-range fetch offset): one partition, `timestamp` -2 (log start) or -1 (log end).
pub fn list_offsets_request(
    replica_id: i32,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    timestamp: i64,
) -> kafka_protocol::messages::ListOffsetsRequest {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    kafka_protocol::messages::ListOffsetsRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_timestamp(timestamp)])])
}

/// The (error code, offset) a ListOffsets response answers for one partition.
pub fn listed_offset(
    response: &kafka_protocol::messages::ListOffsetsResponse,
    topic: &str,
    partition: i32,
) -> Option<(i16, i64)> {
    response
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| (p.error_code, p.offset))
}

/// OffsetForLeaderEpoch for partitions reconciling their log: (topic, partition, current
/// leader epoch, the epoch asked about = this replica's latest).
pub fn offset_for_leader_epoch_request(
    replica_id: i32,
    items: &[(String, i32, i32, i32)],
) -> OffsetForLeaderEpochRequest {
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    for (topic, partition, current_leader_epoch, leader_epoch) in items {
        let p = OffsetForLeaderPartition::default()
            .with_partition(*partition)
            .with_current_leader_epoch(*current_leader_epoch)
            .with_leader_epoch(*leader_epoch);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::fetcher::{FetcherConfig, FetcherSession};
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset as WireEpoch, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn round_trip<T: Encodable + Decodable>(message: &T, version: i16) -> T {
        let mut buf = BytesMut::new();
        message.encode(&mut buf, version).unwrap();
        T::decode(&mut buf.freeze(), version).unwrap()
    }

    fn plan() -> FetchPlan {
        let mut s = FetcherSession::new(1, FetcherConfig::default());
        s.add_partition("orders", 0, 10, 4, 3);
        s.add_partition("orders", 2, 0, 4, -1);
        s.add_partition("logs", 1, 5, 2, 2);
        s.fetch_plan(0).unwrap()
    }

    /// The replica id travels as `replica_id` (v12..14) or `ReplicaState` (v15+), topics by
    /// id from v13, with the fetch offsets, epochs and limits of the plan; no session.
    #[test]
    fn replica_fetch_request_round_trips() {
        let id = uuid::Uuid::from_u128(7);
        for version in [12, 13, 15, 17] {
            let request = fetch_request(&plan(), 3, 42, version, |_| Some(id));
            let back = round_trip(&request, version);
            assert_eq!(replica_id_of(&back, version), 3, "v{version}");
            if version >= REPLICA_STATE_VERSION {
                assert_eq!(back.replica_state.replica_epoch, 42);
            }
            assert_eq!((back.session_id, back.session_epoch), (0, -1));
            assert_eq!((back.max_wait_ms, back.min_bytes), (500, 1));
            assert_eq!(back.topics.len(), 2);
            let orders = back
                .topics
                .iter()
                .find(|t| t.partitions.len() == 2)
                .unwrap();
            if version >= TOPIC_ID_VERSION {
                assert_eq!(orders.topic_id, id);
            } else {
                assert_eq!(orders.topic.0.as_str(), "orders");
            }
            let p0 = &orders.partitions[0];
            assert_eq!(
                (
                    p0.fetch_offset,
                    p0.current_leader_epoch,
                    p0.last_fetched_epoch
                ),
                (10, 4, 3)
            );
            assert_eq!(p0.partition_max_bytes, 1 << 20);
        }
    }

    /// Response partitions become answers: records, high watermark, the diverging epoch when
    /// set (epoch -1 means none), errors; unknown topic ids are dropped.
    #[test]
    fn replica_fetch_response_decodes_to_answers() {
        let id = uuid::Uuid::from_u128(7);
        let response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic_id(id)
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_high_watermark(12)
                        .with_records(Some(Bytes::from_static(b"batch-bytes"))),
                    PartitionData::default()
                        .with_partition_index(2)
                        .with_high_watermark(12)
                        .with_diverging_epoch(
                            WireEpoch::default().with_epoch(3).with_end_offset(8),
                        ),
                    PartitionData::default()
                        .with_partition_index(4)
                        .with_error_code(6)
                        .with_high_watermark(-1),
                ]),
            FetchableTopicResponse::default()
                .with_topic_id(uuid::Uuid::from_u128(9))
                .with_partitions(vec![PartitionData::default()]),
        ]);
        let back = round_trip(&response, 15);
        let name = |u: uuid::Uuid| (u == id).then(|| "orders".to_string());
        let parts = fetched_partitions(&back, 15, name);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].records.as_deref(), Some(&b"batch-bytes"[..]));
        assert!(parts[0].answer.has_records);
        assert_eq!(parts[0].answer.diverging_epoch, None);
        assert_eq!(
            parts[1].answer.diverging_epoch,
            Some(EpochEndOffset::new(3, 8))
        );
        assert!(!parts[1].answer.has_records);
        assert_eq!(parts[2].answer.error_code, 6);
    }

    #[test]
    fn offset_for_leader_epoch_request_groups_topics() {
        let items = vec![
            ("orders".to_string(), 0, 4, 3),
            ("orders".to_string(), 2, 4, 1),
            ("logs".to_string(), 1, 2, 2),
        ];
        let request = offset_for_leader_epoch_request(3, &items);
        let back = round_trip(&request, 4);
        assert_eq!(back.replica_id.0, 3);
        assert_eq!(back.topics.len(), 2);
        assert_eq!(back.topics[0].partitions[1].leader_epoch, 1);
        assert_eq!(back.topics[0].partitions[1].current_leader_epoch, 4);
    }
}
