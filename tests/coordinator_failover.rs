//! A group coordinator failover on a three-broker cluster (`__consumer_offsets` RF 3): the
//! broker that becomes the group's offsets partition's leader loads it to its log end,
//! as Kafka's loaders do (`CoordinatorLoaderImpl`, `FetchIsolation.LOG_END`), so every offset
//! commit the old coordinator acknowledged is there, even those its new high watermark does
//! not cover yet.
//!
//! The lag is made likely on purpose: with `replica.fetch.wait.max.ms` long, a follower learns
//! the high watermark that covers the last commit only with its next fetch answer, which waits
//! for new data; the coordinator is killed right after acknowledging that commit.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::Cluster;
use common::{faults, unique_name, wait_until, wire};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Followers wait this long for new data before answering a fetch (and so before learning a
/// newer high watermark).
const EXTRA_TOML: &str = "\"replica.fetch.wait.max.ms\" = 10000\n";
/// `offsets.topic.num.partitions` of `faults::opts`.
const OFFSETS_PARTITIONS: i32 = 3;
const COMMITS: i64 = 20;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// FindCoordinator v3 for `group` asked of `addr`: (error, node id).
fn find_coordinator(addr: SocketAddr, group: &str) -> (i16, i32) {
    let request = FindCoordinatorRequest::default()
        .with_key(s(group))
        .with_key_type(0);
    let answer: FindCoordinatorResponse = wire::call(addr, ApiKey::FindCoordinator, 3, &request);
    (answer.error_code, answer.node_id.0)
}

/// A simple (generation -1) OffsetCommit v7 of `offset` for partition 0 of `topic`.
fn commit(addr: SocketAddr, group: &str, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(wire::topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let answer: OffsetCommitResponse = wire::call(addr, ApiKey::OffsetCommit, 7, &request);
    answer.topics[0].partitions[0].error_code
}

/// OffsetFetch v7 of partition 0 of `topic`: (group error, committed offset).
fn fetch(addr: SocketAddr, group: &str, topic: &str) -> (i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(wire::topic_name(topic))
            .with_partition_indexes(vec![0])]));
    let answer: OffsetFetchResponse = wire::call(addr, ApiKey::OffsetFetch, 7, &request);
    let offset = answer
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    (answer.error_code, offset)
}

#[test]
fn offsets_acknowledged_before_a_coordinator_failover_are_loaded_by_the_new_one() {
    let mut cluster = Cluster::start(faults::opts(EXTRA_TOML));
    let topic = unique_name("failover");
    assert_eq!(cluster.create_topic(&topic, 1, Duration::from_secs(30)), 0);
    faults::wait_full_isr(&cluster, OFFSETS_TOPIC, OFFSETS_PARTITIONS);
    // A group of offsets partition 0 (`Cluster::wait_leader` watches partition 0).
    let group = (0..)
        .map(|n| unique_name(&format!("group-{n}")))
        .find(|g| sluice::coordinator_log::partition_for(g, OFFSETS_PARTITIONS as u32) == 0)
        .unwrap();
    let mut coordinator = -1;
    wait_until(
        Duration::from_secs(30),
        "a coordinator for the group",
        || {
            let (error, node) = find_coordinator(cluster.broker(0).socket_addr(), &group);
            coordinator = node;
            error == 0 && node > 0
        },
    );
    let old = usize::try_from(coordinator - 1).unwrap();
    let addr = cluster.broker(old).socket_addr();
    // The coordinator may still be loading the partition it just got.
    wait_until(Duration::from_secs(30), "the first commit", || {
        commit(addr, &group, &topic, 1) == 0
    });
    for offset in 2..=COMMITS {
        assert_eq!(commit(addr, &group, &topic, offset), 0, "commit {offset}");
    }
    cluster.broker_mut(old).kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let leader = cluster.wait_leader(&survivors, OFFSETS_TOPIC, coordinator);
    let new_addr = cluster
        .broker(usize::try_from(leader - 1).unwrap())
        .socket_addr();
    let mut answer = (-1, -1);
    // COORDINATOR_LOAD_IN_PROGRESS (14) or NOT_COORDINATOR (16) until the new leader has
    // loaded the partition.
    wait_until(
        Duration::from_secs(30),
        "the new coordinator's answer",
        || {
            answer = fetch(new_addr, &group, &topic);
            !matches!(answer.0, 14 | 16)
        },
    );
    assert_eq!(
        answer,
        (0, COMMITS),
        "every acknowledged commit is loaded by the new coordinator (node {leader})"
    );
}
