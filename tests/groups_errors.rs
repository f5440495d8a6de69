//! The group coordinator's answers to bad or stale requests, sent as raw kafka-protocol
//! requests (so the exact error codes are visible): unknown groups and members, stale
//! generations, MEMBER_ID_REQUIRED, invalid session timeouts, session expiry, DeleteGroups of
//! non-empty and unknown groups, and commit metadata round trips.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::kafka;
use common::{unique_name, wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const BROKER_TOML: &str = r#"
"group.initial.rebalance.delay.ms" = 0
"group.min.session.timeout.ms" = 1000
"offsets.topic.num.partitions" = 4
"#;

const NONE: i16 = 0;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    fn open(broker: &Broker) -> Conn {
        let stream = TcpStream::connect(broker.socket_addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Conn {
            stream,
            correlation: 0,
        }
    }

    fn call<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, req: &Q) -> R {
        self.correlation += 1;
        let frame = wire::encode_request(key, version, self.correlation, "groups-errors", req);
        self.stream.write_all(&frame).expect("write");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("response size");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).expect("response");
        wire::decode_response(key, version, self.correlation, body)
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn join(conn: &mut Conn, group: &str, member: &str, session_ms: i32) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0"))]);
    conn.call(ApiKey::JoinGroup, 5, &req)
}

fn sync(conn: &mut Conn, group: &str, member: &str, generation: i32) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    conn.call(ApiKey::SyncGroup, 3, &req)
}

fn heartbeat(conn: &mut Conn, group: &str, member: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    let resp: HeartbeatResponse = conn.call(ApiKey::Heartbeat, 3, &req);
    resp.error_code
}

fn commit(conn: &mut Conn, group: &str, member: &str, generation: i32, topic: &str) -> i16 {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(5)
        .with_committed_metadata(Some(s("meta-✓")));
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![partition])]);
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 7, &req);
    resp.topics[0].partitions[0].error_code
}

fn fetch_offset(conn: &mut Conn, group: &str, topic: &str) -> (i64, Option<String>) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &req);
    assert_eq!(resp.error_code, NONE);
    let p = &resp.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata.as_ref().map(|m| m.to_string()),
    )
}

fn describe_state(conn: &mut Conn, group: &str) -> String {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let resp: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, 5, &req);
    resp.groups[0].group_state.to_string()
}

fn delete_group(conn: &mut Conn, group: &str) -> i16 {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    let resp: DeleteGroupsResponse = conn.call(ApiKey::DeleteGroups, 2, &req);
    resp.results[0].error_code
}

/// Joins as a new v5 member (MEMBER_ID_REQUIRED first) and syncs as the only member.
fn join_alone(conn: &mut Conn, group: &str, session_ms: i32) -> (String, i32) {
    let first = join(conn, group, "", session_ms);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let joined = join(conn, group, &member, session_ms);
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.leader.to_string(), member, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(
        joined.protocol_name.as_ref().map(|p| p.to_string()),
        Some("range".into())
    );
    let synced = sync(conn, group, &member, joined.generation_id);
    assert_eq!(synced.error_code, NONE);
    (member, joined.generation_id)
}

#[test]
fn stale_and_unknown_requests_get_kafkas_errors() {
    let broker = Broker::start(BrokerOpts::default().config(BROKER_TOML));
    let topic = unique_name("errs");
    kafka::create_topic(&broker, &topic, 1);
    let mut conn = Conn::open(&broker);

    // Unknown group: a commit with a generation is stale; without one it is a simple commit.
    let simple = unique_name("simple");
    assert_eq!(
        commit(&mut conn, &simple, "", 3, &topic),
        ILLEGAL_GENERATION
    );
    assert_eq!(commit(&mut conn, &simple, "", -1, &topic), NONE);
    assert_eq!(
        fetch_offset(&mut conn, &simple, &topic),
        (5, Some("meta-✓".into()))
    );
    assert_eq!(
        fetch_offset(&mut conn, &unique_name("nobody"), &topic),
        (-1, Some(String::new()))
    );

    let group = unique_name("managed");
    assert_eq!(
        join(&mut conn, &group, "", 10).error_code,
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        join(&mut conn, &group, "ghost", 6000).error_code,
        UNKNOWN_MEMBER_ID
    );
    let (member, generation) = join_alone(&mut conn, &group, 6000);
    assert_eq!(describe_state(&mut conn, &group), "Stable");
    // DescribeGroups reports the member's address as Kafka does.
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]);
    let described: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, 5, &req);
    let members = &described.groups[0].members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].member_id.to_string(), member);
    assert_eq!(members[0].client_host.to_string(), "/127.0.0.1");
    assert_eq!(heartbeat(&mut conn, &group, &member, generation), NONE);
    assert_eq!(
        heartbeat(&mut conn, &group, "ghost", generation),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        heartbeat(&mut conn, &group, &member, generation + 1),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        sync(&mut conn, &group, &member, generation - 1).error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut conn, &group, &member, generation - 1, &topic),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut conn, &group, "ghost", generation, &topic),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(commit(&mut conn, &group, &member, generation, &topic), NONE);
    assert_eq!(delete_group(&mut conn, &group), NON_EMPTY_GROUP);
    assert_eq!(
        delete_group(&mut conn, &unique_name("never")),
        GROUP_ID_NOT_FOUND
    );

    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_member_id(s(&member));
    let left: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, 2, &leave);
    assert_eq!(left.error_code, NONE);
    assert_eq!(describe_state(&mut conn, &group), "Empty");
    assert_eq!(
        heartbeat(&mut conn, &group, &member, generation),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(delete_group(&mut conn, &group), NONE);
    assert_eq!(describe_state(&mut conn, &group), "Dead");
    assert_eq!(
        fetch_offset(&mut conn, &group, &topic).0,
        -1,
        "offsets deleted with the group"
    );
}

#[test]
fn a_silent_member_is_expired_after_its_session_timeout() {
    let broker = Broker::start(BrokerOpts::default().config(BROKER_TOML));
    let mut conn = Conn::open(&broker);
    let group = unique_name("silent");
    let (member, generation) = join_alone(&mut conn, &group, 1000);
    wait_until(Duration::from_secs(20), "the silent member expires", || {
        describe_state(&mut conn, &group) == "Empty"
    });
    assert_eq!(
        heartbeat(&mut conn, &group, &member, generation),
        UNKNOWN_MEMBER_ID
    );
}

#[test]
fn a_static_member_with_a_new_id_fences_the_old_one() {
    let broker = Broker::start(BrokerOpts::default().config(BROKER_TOML));
    let mut conn = Conn::open(&broker);
    let group = unique_name("static");
    let static_join = |conn: &mut Conn| -> JoinGroupResponse {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_session_timeout_ms(6000)
            .with_rebalance_timeout_ms(5000)
            .with_member_id(s(""))
            .with_group_instance_id(Some(s("instance-1")))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0"))]);
        conn.call(ApiKey::JoinGroup, 5, &req)
    };
    let first = static_join(&mut conn);
    assert_eq!(
        first.error_code, NONE,
        "static members skip MEMBER_ID_REQUIRED"
    );
    let old = first.member_id.to_string();
    let synced = sync(&mut conn, &group, &old, first.generation_id);
    assert_eq!(synced.error_code, NONE);
    let second = static_join(&mut conn);
    assert_eq!(second.error_code, NONE);
    assert_eq!(second.generation_id, first.generation_id, "no rebalance");
    assert_ne!(second.member_id.to_string(), old);
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id(first.generation_id)
        .with_member_id(s(&old))
        .with_group_instance_id(Some(s("instance-1")));
    let resp: HeartbeatResponse = conn.call(ApiKey::Heartbeat, 3, &req);
    assert_eq!(resp.error_code, FENCED_INSTANCE_ID);
}

fn offsets_log_bytes(broker: &Broker) -> u64 {
    common::list_files(&broker.data_dir())
        .iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "log")
                && p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|d| d.to_string_lossy().starts_with("__consumer_offsets-"))
        })
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// `__consumer_offsets` is an ordinary compacted topic: with small segments and a low dirty
/// ratio the shared log cleaner keeps the log (what a restart replays) near the live state
/// however many commits were written, and the replay after cleaning still gives the latest
/// commit of a live group and nothing of a deleted one (its tombstones).
#[test]
fn the_log_cleaner_bounds_the_offsets_topic_and_replay_survives_it() {
    let toml = format!(
        "{BROKER_TOML}\n\"offsets.topic.segment.bytes\" = 16384\n\
         \"log.cleaner.min.cleanable.ratio\" = 0.01\n\
         \"log.cleaner.backoff.ms\" = 50\n"
    );
    let mut broker = Broker::start(BrokerOpts::default().config(&toml));
    let topic = unique_name("compact");
    kafka::create_topic(&broker, &topic, 1);
    let group = unique_name("compacting");
    let deleted = unique_name("deleted");
    let metadata = "m".repeat(1000);
    let mut conn = Conn::open(&broker);
    assert_eq!(commit(&mut conn, &deleted, "", -1, &topic), NONE);
    assert_eq!(delete_group(&mut conn, &deleted), NONE);
    for offset in 0..400i64 {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(s(&metadata)));
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_partitions(vec![partition])]);
        let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 7, &req);
        assert_eq!(resp.topics[0].partitions[0].error_code, NONE);
    }
    // 400 commits of ~1 KiB each (~420 KB) were appended in 16 KiB segments; the cleaner
    // keeps one record per key in the cleaned segments, plus the active segment.
    wait_until(
        Duration::from_secs(30),
        "the cleaner shrinks the offsets log",
        || offsets_log_bytes(&broker) < 64 * 1024,
    );
    assert!(
        offsets_log_bytes(&broker) > 1000,
        "the latest commit is in the offsets log"
    );
    drop(conn);
    broker.restart();
    let mut conn = Conn::open(&broker);
    assert_eq!(
        fetch_offset(&mut conn, &group, &topic),
        (399, Some(metadata))
    );
    assert_eq!(fetch_offset(&mut conn, &deleted, &topic).0, -1);
}

/// Simple commits racing DeleteGroups of the same group, over two connections, once per group
/// for many groups: whatever state each race leaves in memory is exactly what the offsets log
/// replays after a restart.
#[test]
fn commits_racing_group_deletion_replay_as_they_ended() {
    const GROUPS: usize = 300;
    let mut broker = Broker::start(BrokerOpts::default().config(BROKER_TOML));
    let topic = unique_name("race");
    kafka::create_topic(&broker, &topic, 1);
    let groups: Vec<String> = (0..GROUPS)
        .map(|i| unique_name(&format!("racing-{i}")))
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let committer = {
        let mut conn = Conn::open(&broker);
        let (groups, topic, barrier) = (groups.clone(), topic.clone(), barrier.clone());
        std::thread::spawn(move || {
            for group in &groups {
                barrier.wait();
                assert_eq!(commit(&mut conn, group, "", -1, &topic), NONE);
            }
        })
    };
    let mut conn = Conn::open(&broker);
    for group in &groups {
        barrier.wait();
        let code = delete_group(&mut conn, group);
        assert!(
            matches!(code, NONE | GROUP_ID_NOT_FOUND),
            "DeleteGroups answered {code}"
        );
    }
    committer.join().expect("committer thread");
    let before: Vec<_> = groups
        .iter()
        .map(|g| fetch_offset(&mut conn, g, &topic))
        .collect();
    drop(conn);
    broker.restart();
    let mut conn = Conn::open(&broker);
    for (group, before) in groups.iter().zip(before) {
        let after = fetch_offset(&mut conn, group, &topic);
        assert_eq!(
            before, after,
            "{group}: memory before the restart vs the replayed log"
        );
    }
}

/// Offsets of a deleted topic are dropped by the periodic cleanup, in memory and in the log.
#[test]
fn offsets_of_a_deleted_topic_are_dropped() {
    let mut broker = Broker::start(BrokerOpts::default().config(&format!(
        "{BROKER_TOML}\n\"offsets.retention.check.interval.ms\" = 100\n"
    )));
    let (doomed, kept) = (unique_name("doomed"), unique_name("kept"));
    kafka::create_topic(&broker, &doomed, 1);
    kafka::create_topic(&broker, &kept, 1);
    let group = unique_name("simple");
    let mut conn = Conn::open(&broker);
    assert_eq!(commit(&mut conn, &group, "", -1, &doomed), NONE);
    assert_eq!(commit(&mut conn, &group, "", -1, &kept), NONE);
    assert_eq!(fetch_offset(&mut conn, &group, &doomed).0, 5);

    let admin = kafka::admin(&broker);
    let deleted = common::block_on(admin.delete_topics(&[&doomed], &kafka::admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(deleted, vec![Ok(doomed.clone())]);
    wait_until(
        Duration::from_secs(10),
        "the deleted topic's offset is dropped",
        || fetch_offset(&mut conn, &group, &doomed).0 == -1,
    );
    assert_eq!(
        fetch_offset(&mut conn, &group, &kept).0,
        5,
        "other offsets stay"
    );

    drop(conn);
    broker.restart();
    let mut conn = Conn::open(&broker);
    assert_eq!(
        fetch_offset(&mut conn, &group, &doomed).0,
        -1,
        "tombstone replayed"
    );
    assert_eq!(fetch_offset(&mut conn, &group, &kept).0, 5);
}
