//! Cluster facts several commands need: a topic's partitions and leaders (Metadata), and
//! partition offsets (ListOffsets, sent to each partition's leader).

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};

use super::client::{Client, Wanted};
use super::error::{check, CliError};

pub const LIST_OFFSETS: Wanted = Wanted { min: 1, max: 7 };
/// ListOffsets timestamps with a special meaning.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// One partition of a topic, as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The partitions of `topic`, sorted; a Kafka error if the topic is unknown.
pub fn partitions(client: &mut Client, topic: &str) -> Result<Vec<PartitionInfo>, CliError> {
    let metadata = client.metadata(Some(&[topic.to_owned()]))?;
    let found = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some(topic))
        .ok_or_else(|| CliError::Protocol(format!("Metadata did not answer for {topic}")))?;
    check(found.error_code, &format!("topic {topic}"), "")?;
    Ok(partition_infos(found))
}

pub fn partition_infos(topic: &MetadataResponseTopic) -> Vec<PartitionInfo> {
    let mut out: Vec<PartitionInfo> = topic
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
        .collect();
    out.sort_by_key(|p| p.partition);
    out
}

/// The offset for `timestamp` (or [`LATEST`] / [`EARLIEST`]) of each partition, keyed by
/// (topic, partition). A partition with no record at or after `timestamp` maps to -1 (Kafka's
/// answer), which callers turn into the high watermark.
pub fn list_offsets(
    client: &mut Client,
    wanted: &[(String, PartitionInfo)],
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let mut by_leader: BTreeMap<i32, Vec<&(String, PartitionInfo)>> = BTreeMap::new();
    for entry in wanted {
        by_leader.entry(entry.1.leader).or_default().push(entry);
    }
    let mut out = BTreeMap::new();
    for (leader, entries) in by_leader {
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (topic, p) in entries {
            topics.entry(topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(p.partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            );
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(name.to_owned().into()))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let (response, _) = client.node(leader)?.call(&request, LIST_OFFSETS)?;
        for t in response.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    &format!("offsets of {}/{}", t.name.as_str(), p.partition_index),
                    "",
                )?;
                out.insert((t.name.to_string(), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}
