//! `sluice group list|describe|reset-offsets|delete`: consumer groups through their
//! coordinator, with lag (log end offset minus committed offset) per partition, as
//! `kafka-consumer-groups.sh --describe` shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Buf;
use clap::{Args, Subcommand};
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::{json, Value};

use super::client::{Client, Wanted};
use super::error::{check, CliError};
use super::meta::{self, PartitionInfo, EARLIEST, LATEST};
use super::output::{Out, Table};
use super::topic::{cell, emit_rows};
use super::Ctx;

/// v4+ batches keys (`coordinator_keys`); v3 asks for one.
const FIND_COORDINATOR: Wanted = Wanted { min: 0, max: 3 };
const LIST_GROUPS: Wanted = Wanted { min: 0, max: 4 };
const DESCRIBE_GROUPS: Wanted = Wanted { min: 0, max: 5 };
/// v8+ asks for several groups at once; v7 for one.
const OFFSET_FETCH: Wanted = Wanted { min: 1, max: 7 };
/// v9 is KIP-848's member epoch; v8 is the last classic-only one.
const OFFSET_COMMIT: Wanted = Wanted { min: 2, max: 8 };
const DELETE_GROUPS: Wanted = Wanted { min: 0, max: 2 };

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List the consumer groups of every broker.
    List,
    /// State, members and per-partition committed offset, log end offset and lag.
    Describe { group: String },
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
    /// Delete groups (they must have no active members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub cmd: GroupCmd,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    pub group: String,
    /// TOPIC or TOPIC:P,P,... (repeatable).
    #[arg(long = "topic", required_unless_present = "all_topics")]
    pub topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    #[arg(long, group = "target")]
    pub to_earliest: bool,
    #[arg(long, group = "target")]
    pub to_latest: bool,
    #[arg(long, group = "target", value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// First offset at or after this unix time in ms.
    #[arg(long, group = "target", value_name = "UNIX_MS")]
    pub to_datetime: Option<i64>,
    /// Move the committed offset by N (negative: back).
    #[arg(
        long,
        group = "target",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub shift_by: Option<i64>,
    /// Commit the new offsets (without it, only show them).
    #[arg(long)]
    pub execute: bool,
}

pub fn run(ctx: &Ctx, args: GroupArgs) -> Result<(), CliError> {
    let mut client = Client::connect(&ctx.brokers)?;
    match args.cmd {
        GroupCmd::List => list(&mut client, ctx.out),
        GroupCmd::Describe { group } => describe(&mut client, ctx.out, &group),
        GroupCmd::ResetOffsets(reset) => reset_offsets(&mut client, ctx.out, &reset),
        GroupCmd::Delete { groups } => delete(&mut client, ctx.out, &groups),
    }
}

/// How long a group command waits for a coordinator that is loading or moving (Kafka creates
/// `__consumer_offsets` on the first FindCoordinator, so a fresh cluster answers
/// COORDINATOR_NOT_AVAILABLE for a few seconds).
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
const COORDINATOR_RETRY: Duration = Duration::from_millis(250);

/// Runs `op` against `group`'s coordinator, finding it again and retrying while the answer is
/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR.
pub(super) fn with_coordinator<T>(
    client: &mut Client,
    group: &str,
    mut op: impl FnMut(&mut Client, i32) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let deadline = Instant::now() + COORDINATOR_WAIT;
    loop {
        let result = coordinator(client, group).and_then(|node| op(client, node));
        match result {
            Err(CliError::Kafka { code: 14..=16, .. }) if Instant::now() < deadline => {
                std::thread::sleep(COORDINATOR_RETRY);
            }
            other => return other,
        }
    }
}

/// The node id of `group`'s coordinator (its address is remembered by the client).
fn coordinator(client: &mut Client, group: &str) -> Result<i32, CliError> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(0);
    let (response, _) = client.bootstrap().call(&request, FIND_COORDINATOR)?;
    let message = response.error_message.as_deref().unwrap_or("");
    check(
        response.error_code,
        &format!("find the coordinator of {group}"),
        message,
    )?;
    let node = response.node_id.0;
    client.learn_address(
        node,
        format!("{}:{}", response.host.as_str(), response.port),
    );
    Ok(node)
}

fn list(client: &mut Client, out: Out) -> Result<(), CliError> {
    client.metadata(Some(&[]))?;
    let mut rows = Vec::new();
    for node in client.node_ids() {
        let (response, _) = client
            .node(node)?
            .call(&ListGroupsRequest::default(), LIST_GROUPS)?;
        check(
            response.error_code,
            &format!("list groups on broker {node}"),
            "",
        )?;
        for g in response.groups {
            rows.push(json!({
                "group": g.group_id.as_str(),
                "state": g.group_state.as_str(),
                "protocol_type": g.protocol_type.as_str(),
                "coordinator": node,
            }));
        }
    }
    rows.sort_by(|a, b| a["group"].as_str().cmp(&b["group"].as_str()));
    emit_rows(
        out,
        &rows,
        &["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"],
        &["group", "state", "protocol_type", "coordinator"],
    );
    Ok(())
}

struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Value>,
    /// (topic, partition) -> member id.
    owners: BTreeMap<(String, i32), String>,
}

fn describe_group(client: &mut Client, node: i32, group: &str) -> Result<Described, CliError> {
    let request =
        DescribeGroupsRequest::default().with_groups(vec![GroupId(group.to_owned().into())]);
    let (response, _) = client.node(node)?.call(&request, DESCRIBE_GROUPS)?;
    let g = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Protocol("DescribeGroups answered no group".into()))?;
    let message = g.error_message.as_deref().unwrap_or("");
    check(g.error_code, &format!("describe group {group}"), message)?;
    let mut owners = BTreeMap::new();
    let mut members = Vec::new();
    for m in &g.members {
        let assigned = if g.protocol_type.as_str() == "consumer" {
            decode_assignment(&m.member_assignment)
        } else {
            Vec::new()
        };
        for (topic, partitions) in &assigned {
            for p in partitions {
                owners.insert((topic.clone(), *p), m.member_id.to_string());
            }
        }
        members.push(json!({
            "member_id": m.member_id.as_str(),
            "group_instance_id": m.group_instance_id.as_deref(),
            "client_id": m.client_id.as_str(),
            "client_host": m.client_host.as_str(),
            "assignment": assigned.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps}))
                .collect::<Vec<_>>(),
        }));
    }
    Ok(Described {
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members,
        owners,
    })
}

/// A consumer-protocol assignment (version i16, then the body); empty if it does not decode.
fn decode_assignment(bytes: &bytes::Bytes) -> Vec<(String, Vec<i32>)> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    // Newer assignment versions only add fields after the ones read here.
    let Ok(assignment) = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) else {
        return Vec::new();
    };
    assignment
        .assigned_partitions
        .into_iter()
        .map(|tp| (tp.topic.to_string(), tp.partitions))
        .collect()
}

/// Committed offsets of `group`: (topic, partition) -> offset.
fn committed(
    client: &mut Client,
    node: i32,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(group.to_owned().into()))
        .with_topics(None);
    let (response, _) = client.node(node)?.call(&request, OFFSET_FETCH)?;
    check(
        response.error_code,
        &format!("offsets of group {group}"),
        "",
    )?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!("offset of {}/{}", t.name.as_str(), p.partition_index),
                "",
            )?;
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Metadata for every topic in `keys`; unknown topics (deleted since) are left out.
fn partitions_of(
    client: &mut Client,
    topics: &BTreeSet<String>,
) -> Result<Vec<(String, PartitionInfo)>, CliError> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = topics.iter().cloned().collect();
    let metadata = client.metadata(Some(&names))?;
    let mut out = Vec::new();
    for t in &metadata.topics {
        if t.error_code != 0 {
            continue;
        }
        let name = t.name.as_deref().map(|n| n.to_string()).unwrap_or_default();
        for p in meta::partition_infos(t) {
            out.push((name.clone(), p));
        }
    }
    Ok(out)
}

fn describe(client: &mut Client, out: Out, group: &str) -> Result<(), CliError> {
    let (node, described, offsets) = with_coordinator(client, group, |client, node| {
        Ok((
            node,
            describe_group(client, node, group)?,
            committed(client, node, group)?,
        ))
    })?;
    if described.state == "Dead" && offsets.is_empty() {
        return Err(CliError::NotFound(format!(
            "consumer group {group} does not exist\n  hint: `sluice group list` shows the groups"
        )));
    }
    let keys: BTreeSet<(String, i32)> = offsets
        .keys()
        .chain(described.owners.keys())
        .cloned()
        .collect();
    let topics: BTreeSet<String> = keys.iter().map(|(t, _)| t.clone()).collect();
    let known: Vec<(String, PartitionInfo)> = partitions_of(client, &topics)?
        .into_iter()
        .filter(|(t, p)| keys.contains(&(t.clone(), p.partition)))
        .collect();
    let ends = meta::list_offsets(client, &known, LATEST)?;
    let mut total_lag = 0_i64;
    let rows: Vec<Value> = keys
        .iter()
        .map(|key| {
            let current = offsets.get(key).copied();
            let end = ends.get(key).copied();
            let lag = match (current, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            };
            total_lag += lag.unwrap_or(0);
            json!({
                "topic": key.0, "partition": key.1,
                "current_offset": current, "log_end_offset": end, "lag": lag,
                "member_id": described.owners.get(key),
            })
        })
        .collect();
    let value = json!({
        "group": group,
        "coordinator": node,
        "state": described.state,
        "protocol_type": described.protocol_type,
        "protocol": described.protocol,
        "members": described.members,
        "offsets": rows,
        "total_lag": total_lag,
    });
    out.emit(&value, || {
        let mut t = Table::new(&[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "MEMBER-ID",
        ]);
        for r in &rows {
            t.row(
                [
                    "topic",
                    "partition",
                    "current_offset",
                    "log_end_offset",
                    "lag",
                    "member_id",
                ]
                .iter()
                .map(|k| cell(&r[*k]))
                .collect(),
            );
        }
        let mut m = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "INSTANCE-ID"]);
        for member in &described.members {
            m.row(
                ["member_id", "client_id", "client_host", "group_instance_id"]
                    .iter()
                    .map(|k| cell(&member[*k]))
                    .collect(),
            );
        }
        format!(
            "GROUP {group}  STATE {}  PROTOCOL {}  MEMBERS {}  COORDINATOR {node}  TOTAL-LAG {total_lag}\n\n{}\n{}",
            described.state,
            if described.protocol.is_empty() { "-" } else { &described.protocol },
            described.members.len(),
            t.render(),
            m.render(),
        )
    });
    Ok(())
}

/// `TOPIC` or `TOPIC:0,1` -> (topic, partitions; empty = all).
fn parse_topic_spec(spec: &str) -> Result<(String, Vec<i32>), CliError> {
    match spec.split_once(':') {
        None => Ok((spec.to_owned(), Vec::new())),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| p.trim().parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| CliError::Usage(format!("--topic {spec}: use TOPIC or TOPIC:P,P")))?;
            Ok((topic.to_owned(), partitions))
        }
    }
}

fn reset_offsets(client: &mut Client, out: Out, args: &ResetArgs) -> Result<(), CliError> {
    let (described, offsets) = with_coordinator(client, &args.group, |client, node| {
        Ok((
            describe_group(client, node, &args.group)?,
            committed(client, node, &args.group)?,
        ))
    })?;
    if !matches!(described.state.as_str(), "Empty" | "Dead") {
        return Err(CliError::NotFound(format!(
            "group {} is {} with {} members; offsets can be reset only when it has none\n  hint: stop its consumers, then run this again",
            args.group,
            described.state,
            described.members.len()
        )));
    }
    let mut wanted_topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    if args.all_topics {
        for (t, _) in offsets.keys() {
            wanted_topics.entry(t.clone()).or_default();
        }
    }
    for spec in &args.topics {
        let (topic, partitions) = parse_topic_spec(spec)?;
        wanted_topics.entry(topic).or_default().extend(partitions);
    }
    let mut targets: Vec<(String, PartitionInfo)> = Vec::new();
    for (topic, partitions) in &wanted_topics {
        for p in meta::partitions(client, topic)? {
            if partitions.is_empty() || partitions.contains(&p.partition) {
                targets.push((topic.clone(), p));
            }
        }
    }
    let earliest = meta::list_offsets(client, &targets, EARLIEST)?;
    let latest = meta::list_offsets(client, &targets, LATEST)?;
    let by_time = match args.to_datetime {
        Some(ts) => Some(meta::list_offsets(client, &targets, ts)?),
        None => None,
    };
    let mut plan = Vec::new();
    for (topic, p) in &targets {
        let key = (topic.clone(), p.partition);
        let (low, high) = (
            earliest.get(&key).copied().unwrap_or(0),
            latest.get(&key).copied().unwrap_or(0),
        );
        let current = offsets.get(&key).copied();
        let new = if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if let Some(o) = args.to_offset {
            o
        } else if let Some(map) = &by_time {
            map.get(&key).copied().filter(|o| *o >= 0).unwrap_or(high)
        } else if let Some(n) = args.shift_by {
            current.unwrap_or(low).saturating_add(n)
        } else {
            return Err(CliError::Usage(
                "reset-offsets needs one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by".into(),
            ));
        };
        // As kafka-consumer-groups.sh: a target outside the log is clamped into it.
        plan.push((key, current, new.clamp(low, high)));
    }
    if args.execute && !plan.is_empty() {
        with_coordinator(client, &args.group, |client, node| {
            commit(client, node, &args.group, &plan)
        })?;
    }
    let rows: Vec<Value> = plan
        .iter()
        .map(|((t, p), current, new)| {
            json!({"topic": t, "partition": p, "current_offset": current, "new_offset": new})
        })
        .collect();
    let value = json!({"group": args.group, "executed": args.execute, "offsets": rows});
    out.emit(&value, || {
        let mut t = Table::new(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
        for r in &rows {
            t.row(
                ["topic", "partition", "current_offset", "new_offset"]
                    .iter()
                    .map(|k| cell(&r[*k]))
                    .collect(),
            );
        }
        let note = if args.execute {
            "committed"
        } else {
            "dry run: pass --execute to commit these offsets"
        };
        format!("{}{note}\n", t.render())
    });
    Ok(())
}

type Plan = ((String, i32), Option<i64>, i64);

fn commit(client: &mut Client, node: i32, group: &str, plan: &[Plan]) -> Result<(), CliError> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), _, new) in plan {
        topics.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*new)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    // Generation -1 and no member id: a commit from outside the group, allowed while it is empty.
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(group.to_owned().into()))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(name.to_owned().into()))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let (response, _) = client.node(node)?.call(&request, OFFSET_COMMIT)?;
    for t in response.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!(
                    "commit {group} offset of {}/{}",
                    t.name.as_str(),
                    p.partition_index
                ),
                "",
            )?;
        }
    }
    Ok(())
}

fn delete(client: &mut Client, out: Out, groups: &[String]) -> Result<(), CliError> {
    let mut rows = Vec::new();
    let mut first_error = None;
    for group in groups {
        let results = with_coordinator(client, group, |client, node| {
            let request = DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(group.clone().into())]);
            let (response, _) = client.node(node)?.call(&request, DELETE_GROUPS)?;
            for r in &response.results {
                if matches!(r.error_code, 14..=16) {
                    check(r.error_code, &format!("delete group {group}"), "")?;
                }
            }
            Ok(response.results)
        })?;
        for r in results {
            let result = check(
                r.error_code,
                &format!("delete group {}", r.group_id.as_str()),
                "",
            );
            let status = match &result {
                Ok(()) => "deleted".to_owned(),
                Err(CliError::Kafka { name, .. }) => name.clone(),
                Err(e) => e.to_string(),
            };
            rows.push(
                json!({"group": r.group_id.as_str(), "error_code": r.error_code, "status": status}),
            );
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
    }
    emit_rows(out, &rows, &["GROUP", "STATUS"], &["group", "status"]);
    first_error.map_or(Ok(()), Err)
}
