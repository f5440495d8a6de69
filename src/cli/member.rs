//! A classic consumer-group member for `sluice consume --group`: JoinGroup (protocol type
//! `consumer`, the `range` assignor), SyncGroup (as leader it computes the assignment, as
//! Kafka's RangeAssignor does), Heartbeat, OffsetCommit with its generation, LeaveGroup.
//!
//! Invariants: every request goes to the group's coordinator, found again when it answers
//! NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS; a member is
//! either joined (generation >= 0, an assignment) or rejoining, never both; offsets are
//! committed only with the generation they were assigned in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedPartitions,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::client::{Client, Wanted};
use super::error::{check, CliError};
use super::group;

/// v1 adds the rebalance timeout; v9 is the newest classic JoinGroup.
const JOIN_GROUP: Wanted = Wanted { min: 1, max: 9 };
const SYNC_GROUP: Wanted = Wanted { min: 0, max: 5 };
const HEARTBEAT: Wanted = Wanted { min: 0, max: 4 };
/// v3 leaves by a list of members; v0-2 by one member id.
const LEAVE_GROUP: Wanted = Wanted { min: 0, max: 5 };
/// v9 is KIP-848's member epoch; v8 is the last classic-only one.
const OFFSET_COMMIT: Wanted = Wanted { min: 2, max: 8 };
const OFFSET_FETCH: Wanted = Wanted { min: 1, max: 7 };

/// Kafka's consumer defaults (`session.timeout.ms`, `heartbeat.interval.ms`); the rebalance
/// timeout is short because this member polls at least every fetch wait (500 ms).
pub const SESSION_TIMEOUT_MS: i32 = 45_000;
pub const REBALANCE_TIMEOUT_MS: i32 = 30_000;
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
pub const PROTOCOL_TYPE: &str = "consumer";
pub const ASSIGNOR: &str = "range";
/// How many times one join may be answered by a retriable error before giving up.
const JOIN_ATTEMPTS_MAX: u32 = 20;

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;

/// What a heartbeat says about the member.
#[derive(Debug, PartialEq)]
pub enum Beat {
    /// Still in the current generation.
    Stable,
    /// The group is rebalancing (or this generation is gone): commit and rejoin.
    Rejoin,
}

/// One joined member of a classic consumer group.
pub struct Member {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    /// topic -> partitions assigned to this member in this generation.
    pub assignment: BTreeMap<String, Vec<i32>>,
    topics: Vec<String>,
    last_heartbeat: Instant,
}

impl Member {
    /// Joins `group` subscribed to `topics` and waits for its assignment.
    pub fn join(client: &mut Client, group: &str, topics: &[String]) -> Result<Member, CliError> {
        let mut member = Member {
            group: group.to_owned(),
            member_id: String::new(),
            generation: -1,
            assignment: BTreeMap::new(),
            topics: topics.to_vec(),
            last_heartbeat: Instant::now(),
        };
        member.rejoin(client)?;
        Ok(member)
    }

    /// JoinGroup then SyncGroup until both succeed in one generation.
    pub fn rejoin(&mut self, client: &mut Client) -> Result<(), CliError> {
        self.generation = -1;
        self.assignment.clear();
        for _ in 0..JOIN_ATTEMPTS_MAX {
            match self.join_and_sync(client) {
                Ok(()) => {
                    self.last_heartbeat = Instant::now();
                    return Ok(());
                }
                Err(CliError::Kafka { code, .. }) if code == UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                }
                Err(CliError::Kafka { code, .. })
                    if code == MEMBER_ID_REQUIRED
                        || code == REBALANCE_IN_PROGRESS
                        || code == ILLEGAL_GENERATION => {}
                Err(e) => return Err(e),
            }
        }
        Err(CliError::Protocol(format!(
            "group {}: no stable generation after {JOIN_ATTEMPTS_MAX} joins",
            self.group
        )))
    }

    fn join_and_sync(&mut self, client: &mut Client) -> Result<(), CliError> {
        let subscription = encode_subscription(&self.topics)?;
        let (node, join) = group::with_coordinator(client, &self.group, |client, node| {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(self.group.clone().into()))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(ASSIGNOR))
                    .with_metadata(subscription.clone())]);
            let (response, _) = client.node(node)?.call(&request, JOIN_GROUP)?;
            coordinator_moved(response.error_code, &self.group)?;
            Ok((node, response))
        })?;
        if !join.member_id.is_empty() {
            // MEMBER_ID_REQUIRED hands out the id to join with next.
            self.member_id = join.member_id.to_string();
        }
        check(join.error_code, &format!("join group {}", self.group), "")?;
        let assignments = if join.leader == join.member_id && !join.skip_assignment {
            let subscriptions: Vec<(String, Vec<String>)> = join
                .members
                .iter()
                .map(|m| (m.member_id.to_string(), decode_subscription(&m.metadata)))
                .collect();
            let wanted: BTreeSet<String> = subscriptions
                .iter()
                .flat_map(|(_, t)| t.iter().cloned())
                .collect();
            let counts = partition_counts(client, &wanted)?;
            range_assign(&subscriptions, &counts)
                .into_iter()
                .map(|(member, assigned)| {
                    Ok(SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(encode_assignment(&assigned)?))
                })
                .collect::<Result<Vec<_>, CliError>>()?
        } else {
            Vec::new()
        };
        let conn = client.node(node)?;
        let version = conn.version::<SyncGroupRequest>(SYNC_GROUP)?;
        let mut request = SyncGroupRequest::default()
            .with_group_id(GroupId(self.group.clone().into()))
            .with_generation_id(join.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_assignments(assignments);
        if version >= 5 {
            request = request
                .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                .with_protocol_name(Some(StrBytes::from_static_str(ASSIGNOR)));
        }
        let sync = conn.send(&request, version)?;
        check(sync.error_code, &format!("sync group {}", self.group), "")?;
        self.generation = join.generation_id;
        self.assignment = decode_assignment(&sync.assignment)?;
        Ok(())
    }

    /// This member's partitions of `topic`.
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        self.assignment.get(topic).cloned().unwrap_or_default()
    }

    /// A heartbeat when one is due (every [`HEARTBEAT_INTERVAL`]); `Stable` otherwise.
    pub fn heartbeat_if_due(&mut self, client: &mut Client) -> Result<Beat, CliError> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(Beat::Stable);
        }
        self.last_heartbeat = Instant::now();
        let response = group::with_coordinator(client, &self.group, |client, node| {
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(self.group.clone().into()))
                .with_generation_id(self.generation)
                .with_member_id(StrBytes::from_string(self.member_id.clone()));
            let (response, _) = client.node(node)?.call(&request, HEARTBEAT)?;
            coordinator_moved(response.error_code, &self.group)?;
            Ok(response)
        })?;
        match response.error_code {
            0 => Ok(Beat::Stable),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => Ok(Beat::Rejoin),
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                Ok(Beat::Rejoin)
            }
            code => check(code, &format!("heartbeat to group {}", self.group), "")
                .map(|()| Beat::Stable),
        }
    }

    /// The group's committed offsets of this member's partitions of `topic` (none: absent).
    pub fn committed(
        &self,
        client: &mut Client,
        topic: &str,
    ) -> Result<BTreeMap<i32, i64>, CliError> {
        let partitions = self.partitions_of(topic);
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let response = group::with_coordinator(client, &self.group, |client, node| {
            let request = OffsetFetchRequest::default()
                .with_group_id(GroupId(self.group.clone().into()))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(topic.to_owned().into()))
                    .with_partition_indexes(partitions.clone())]));
            let (response, _) = client.node(node)?.call(&request, OFFSET_FETCH)?;
            check(
                response.error_code,
                &format!("offsets of group {}", self.group),
                "",
            )?;
            Ok(response)
        })?;
        let mut out = BTreeMap::new();
        for t in response.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    &format!("offset of {topic}/{}", p.partition_index),
                    "",
                )?;
                if p.committed_offset >= 0 {
                    out.insert(p.partition_index, p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` (partition -> next offset to read) of `topic` in this generation.
    /// Returns `Rejoin` when the generation is gone (the offsets were not committed; the next
    /// owner reads those records again, as Kafka's at-least-once consumer does).
    pub fn commit(
        &mut self,
        client: &mut Client,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<Beat, CliError> {
        if offsets.is_empty() || self.generation < 0 {
            return Ok(Beat::Stable);
        }
        let partitions: Vec<OffsetCommitRequestPartition> = offsets
            .iter()
            .map(|(&partition, &offset)| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str("")))
            })
            .collect();
        let response = group::with_coordinator(client, &self.group, |client, node| {
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(self.group.clone().into()))
                .with_generation_id_or_member_epoch(self.generation)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_retention_time_ms(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(topic.to_owned().into()))
                    .with_partitions(partitions.clone())]);
            let (response, _) = client.node(node)?.call(&request, OFFSET_COMMIT)?;
            for p in response.topics.iter().flat_map(|t| t.partitions.iter()) {
                coordinator_moved(p.error_code, &self.group)?;
            }
            Ok(response)
        })?;
        for t in response.topics {
            for p in t.partitions {
                match p.error_code {
                    REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
                        return Ok(Beat::Rejoin)
                    }
                    code => check(
                        code,
                        &format!(
                            "commit {} offset of {topic}/{}",
                            self.group, p.partition_index
                        ),
                        "",
                    )?,
                }
            }
        }
        Ok(Beat::Stable)
    }

    /// LeaveGroup, so the group rebalances (or empties) at once instead of after the session
    /// timeout.
    pub fn leave(&mut self, client: &mut Client) -> Result<(), CliError> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let response = group::with_coordinator(client, &self.group, |client, node| {
            let conn = client.node(node)?;
            let version = conn.version::<LeaveGroupRequest>(LEAVE_GROUP)?;
            let mut request =
                LeaveGroupRequest::default().with_group_id(GroupId(self.group.clone().into()));
            if version >= 3 {
                request = request.with_members(vec![MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(self.member_id.clone()))]);
            } else {
                request = request.with_member_id(StrBytes::from_string(self.member_id.clone()));
            }
            let response = conn.send(&request, version)?;
            coordinator_moved(response.error_code, &self.group)?;
            Ok(response)
        })?;
        self.generation = -1;
        check(
            response.error_code,
            &format!("leave group {}", self.group),
            "",
        )
    }
}

/// An error for COORDINATOR_LOAD_IN_PROGRESS (14), COORDINATOR_NOT_AVAILABLE (15) and
/// NOT_COORDINATOR (16), which [`group::with_coordinator`] retries after finding the
/// coordinator again; `Ok` for every other code (the caller handles those).
fn coordinator_moved(code: i16, group: &str) -> Result<(), CliError> {
    if (14..=16).contains(&code) {
        check(code, &format!("coordinator of group {group}"), "")
    } else {
        Ok(())
    }
}

/// Partition counts of `topics` from a Metadata answer (unknown topics left out).
fn partition_counts(
    client: &mut Client,
    topics: &BTreeSet<String>,
) -> Result<BTreeMap<String, i32>, CliError> {
    let names: Vec<String> = topics.iter().cloned().collect();
    let metadata = client.metadata(Some(&names))?;
    Ok(metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            let name = t.name.as_deref()?.to_string();
            Some((name, i32::try_from(t.partitions.len()).unwrap_or(i32::MAX)))
        })
        .collect())
}

/// Kafka's RangeAssignor (without racks): per topic, its subscribers in member-id order each
/// take a contiguous range, the first `partitions % members` one partition more.
pub fn range_assign(
    subscriptions: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let mut members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        members.sort();
        let Ok(n) = i32::try_from(members.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (per, extra) = (count / n, count % n);
        for (i, member) in (0..n).zip(members) {
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                if let Some(assigned) = out.get_mut(member) {
                    assigned.insert(topic.clone(), (start..start + len).collect());
                }
            }
        }
    }
    out
}

/// A consumer-protocol subscription: version (i16) then the body at that version (0).
pub fn encode_subscription(topics: &[String]) -> Result<Bytes, CliError> {
    let body = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.clone()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    body.encode(&mut buf, 0)
        .map_err(|e| CliError::Protocol(format!("encode subscription: {e}")))?;
    Ok(buf.freeze())
}

/// The topics of a member's subscription (empty if it does not decode).
pub fn decode_subscription(bytes: &Bytes) -> Vec<String> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    // Newer subscription versions only add fields after the ones read here.
    ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3))
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// A consumer-protocol assignment at version 0.
pub fn encode_assignment(assigned: &BTreeMap<String, Vec<i32>>) -> Result<Bytes, CliError> {
    let body = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assigned
            .iter()
            .map(|(t, ps)| {
                AssignedPartitions::default()
                    .with_topic(TopicName(t.clone().into()))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    body.encode(&mut buf, 0)
        .map_err(|e| CliError::Protocol(format!("encode assignment: {e}")))?;
    Ok(buf.freeze())
}

/// The leader's assignment for this member; an empty one (no partitions) is valid.
pub fn decode_assignment(bytes: &Bytes) -> Result<BTreeMap<String, Vec<i32>>, CliError> {
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(CliError::Protocol("assignment cut short".into()));
    }
    let version = buf.get_i16();
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3))
        .map_err(|e| CliError::Protocol(format!("decode assignment: {e}")))?;
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in assignment.assigned_partitions {
        out.entry(tp.topic.to_string())
            .or_default()
            .extend(tp.partitions);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_matches_kafkas() {
        // Kafka's RangeAssignorTest: 2 consumers, 3 partitions -> [0,1] and [2].
        let subs = vec![
            ("b".to_owned(), vec!["t".to_owned()]),
            ("a".to_owned(), vec!["t".to_owned(), "u".to_owned()]),
        ];
        let counts = BTreeMap::from([("t".to_owned(), 3), ("u".to_owned(), 1)]);
        let out = range_assign(&subs, &counts);
        assert_eq!(out["a"]["t"], vec![0, 1]);
        assert_eq!(out["b"]["t"], vec![2]);
        assert_eq!(out["a"]["u"], vec![0]);
        assert!(!out["b"].contains_key("u"));
        // More members than partitions: the last ones get nothing.
        let subs: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), vec!["t".to_owned()]))
            .collect();
        let out = range_assign(&subs, &BTreeMap::from([("t".to_owned(), 2)]));
        assert_eq!(out["a"]["t"], vec![0]);
        assert_eq!(out["b"]["t"], vec![1]);
        assert!(out["c"].is_empty());
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics = vec!["t1".to_owned(), "t2".to_owned()];
        assert_eq!(
            decode_subscription(&encode_subscription(&topics).unwrap()),
            topics
        );
        let assigned = BTreeMap::from([("t1".to_owned(), vec![0, 2]), ("t2".to_owned(), vec![1])]);
        assert_eq!(
            decode_assignment(&encode_assignment(&assigned).unwrap()).unwrap(),
            assigned
        );
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_subscription(&Bytes::from_static(&[0, 0, 0xff])).is_empty());
    }
}
