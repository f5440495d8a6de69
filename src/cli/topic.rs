//! `sluice topic create|list|describe|delete|alter-config`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::client::{Client, Wanted, NOT_CONTROLLER};
use super::error::{check, CliError};
use super::meta::{self, EARLIEST, LATEST};
use super::output::{join, Out, Table};
use super::Ctx;

const CREATE_TOPICS: Wanted = Wanted { min: 2, max: 7 };
/// v6 names topics by `topics[]` instead of `topic_names[]`; v5 is enough for names.
const DELETE_TOPICS: Wanted = Wanted { min: 1, max: 5 };
const DESCRIBE_CONFIGS: Wanted = Wanted { min: 1, max: 4 };
const INCREMENTAL_ALTER_CONFIGS: Wanted = Wanted { min: 0, max: 1 };
const RESOURCE_TOPIC: i8 = 2;
const TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create topics.
    Create {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partitions per topic (-1: the broker's num.partitions).
        #[arg(short, long, default_value_t = 1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default.replication.factor).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Topic config, NAME=VALUE (repeatable), e.g. -c cleanup.policy=compact.
        #[arg(short = 'c', long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition counts.
    List {
        /// Include internal topics (e.g. __consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// Partitions (leader, replicas, ISR, log start offset, high watermark) and configs.
    Describe {
        topic: String,
        /// Show every config, not only those set on the topic.
        #[arg(long)]
        all_configs: bool,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Set or remove topic configs (IncrementalAlterConfigs).
    AlterConfig {
        topic: String,
        /// NAME=VALUE to set (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// NAME to reset to the default (repeatable).
        #[arg(long = "delete", value_name = "NAME")]
        delete: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub cmd: TopicCmd,
}

pub fn run(ctx: &Ctx, args: TopicArgs) -> Result<(), CliError> {
    let mut client = Client::connect(&ctx.brokers)?;
    match args.cmd {
        TopicCmd::Create {
            topics,
            partitions,
            replication_factor,
            configs,
        } => create(
            &mut client,
            ctx.out,
            &topics,
            partitions,
            replication_factor,
            &configs,
        ),
        TopicCmd::List { internal } => list(&mut client, ctx.out, internal),
        TopicCmd::Describe { topic, all_configs } => {
            describe(&mut client, ctx.out, &topic, all_configs)
        }
        TopicCmd::Delete { topics } => delete(&mut client, ctx.out, &topics),
        TopicCmd::AlterConfig { topic, set, delete } => {
            alter_config(&mut client, ctx.out, &topic, &set, &delete)
        }
    }
}

/// `NAME=VALUE` -> (name, value).
pub fn parse_pair(flag: &str, pair: &str) -> Result<(String, String), CliError> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(CliError::Usage(format!(
            "{flag} takes NAME=VALUE, got {pair:?}"
        ))),
    }
}

fn create(
    client: &mut Client,
    out: Out,
    topics: &[String],
    partitions: i32,
    replication_factor: i16,
    configs: &[String],
) -> Result<(), CliError> {
    let configs: Vec<(String, String)> = configs
        .iter()
        .map(|c| parse_pair("--config", c))
        .collect::<Result<_, _>>()?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(
            topics
                .iter()
                .map(|name| {
                    CreatableTopic::default()
                        .with_name(TopicName(name.clone().into()))
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication_factor)
                        .with_configs(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(k.clone().into())
                                        .with_value(Some(v.clone().into()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let (response, _) = client.call_controller(&request, CREATE_TOPICS, |r| {
        r.topics.iter().any(|t| t.error_code == NOT_CONTROLLER)
    })?;
    let mut rows = Vec::new();
    let mut first_error = None;
    for t in &response.topics {
        let message = t.error_message.as_deref().unwrap_or("");
        let result = check(
            t.error_code,
            &format!("create topic {}", t.name.as_str()),
            message,
        );
        let status = match &result {
            Ok(()) => "created".to_owned(),
            Err(CliError::Kafka { name, .. }) => name.clone(),
            Err(e) => e.to_string(),
        };
        rows.push(json!({
            "topic": t.name.as_str(),
            "partitions": t.num_partitions,
            "replication_factor": t.replication_factor,
            "error_code": t.error_code,
            "status": status,
        }));
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    emit_rows(out, &rows, &["TOPIC", "STATUS"], &["topic", "status"]);
    first_error.map_or(Ok(()), Err)
}

fn list(client: &mut Client, out: Out, internal: bool) -> Result<(), CliError> {
    let metadata = client.metadata(None)?;
    let mut rows: Vec<Value> = metadata
        .topics
        .iter()
        .filter(|t| internal || !t.is_internal)
        .map(|t| {
            let partitions = meta::partition_infos(t);
            let replicas = partitions.first().map_or(0, |p| p.replicas.len());
            json!({
                "topic": t.name.as_deref().map(|n| n.as_str()).unwrap_or(""),
                "partitions": partitions.len(),
                "replicas": replicas,
                "internal": t.is_internal,
                "error_code": t.error_code,
            })
        })
        .collect();
    rows.sort_by(|a, b| a["topic"].as_str().cmp(&b["topic"].as_str()));
    emit_rows(
        out,
        &rows,
        &["NAME", "PARTITIONS", "REPLICAS"],
        &["topic", "partitions", "replicas"],
    );
    Ok(())
}

fn describe(client: &mut Client, out: Out, topic: &str, all_configs: bool) -> Result<(), CliError> {
    let partitions = meta::partitions(client, topic)?;
    let wanted: Vec<(String, meta::PartitionInfo)> = partitions
        .iter()
        .map(|p| (topic.to_owned(), p.clone()))
        .collect();
    let start = offsets_of_reachable(client, &wanted, EARLIEST);
    let end = offsets_of_reachable(client, &wanted, LATEST);
    let partition_rows: Vec<Value> = partitions
        .iter()
        .map(|p| {
            let key = (topic.to_owned(), p.partition);
            json!({
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "log_start_offset": start.get(&key).copied().unwrap_or(-1),
                "high_watermark": end.get(&key).copied().unwrap_or(-1),
            })
        })
        .collect();
    let configs = describe_configs(client, topic)?;
    let shown: Vec<&ConfigEntry> = configs
        .iter()
        .filter(|c| all_configs || c.source == "topic")
        .collect();
    let value = json!({
        "topic": topic,
        "partitions": partition_rows,
        "configs": shown.iter().map(|c| json!({
            "name": c.name, "value": c.value, "source": c.source, "read_only": c.read_only,
        })).collect::<Vec<_>>(),
    });
    out.emit(&value, || {
        let mut t = Table::new(&[
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG-START-OFFSET",
            "HIGH-WATERMARK",
        ]);
        for p in &partitions {
            let key = (topic.to_owned(), p.partition);
            t.row(vec![
                p.partition.to_string(),
                p.leader.to_string(),
                p.leader_epoch.to_string(),
                join(&p.replicas),
                join(&p.isr),
                start.get(&key).copied().unwrap_or(-1).to_string(),
                end.get(&key).copied().unwrap_or(-1).to_string(),
            ]);
        }
        let mut c = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
        for e in &shown {
            c.row(vec![
                e.name.clone(),
                e.value.clone().unwrap_or_else(|| "(null)".into()),
                e.source.to_owned(),
            ]);
        }
        format!(
            "TOPIC {topic} ({} partitions)\n\n{}\n{}",
            partitions.len(),
            t.render(),
            c.render()
        )
    });
    Ok(())
}

/// `meta::list_offsets` per leader, for describe: a partition without a leader (-1, its broker
/// fenced) or whose leader does not answer is shown with offsets -1 and a warning on stderr, as
/// Kafka's `kafka-topics --describe` still lists an offline partition (`Leader: none`) instead
/// of failing the whole command.
fn offsets_of_reachable(
    client: &mut Client,
    wanted: &[(String, meta::PartitionInfo)],
    timestamp: i64,
) -> BTreeMap<(String, i32), i64> {
    let mut by_leader: BTreeMap<i32, Vec<(String, meta::PartitionInfo)>> = BTreeMap::new();
    for entry in wanted.iter().filter(|(_, p)| p.leader >= 0) {
        by_leader
            .entry(entry.1.leader)
            .or_default()
            .push(entry.clone());
    }
    let mut out = BTreeMap::new();
    for (leader, entries) in by_leader {
        match meta::list_offsets(client, &entries, timestamp) {
            Ok(found) => out.extend(found),
            Err(e) => eprintln!("warning: offsets of the partitions led by broker {leader}: {e}"),
        }
    }
    out
}

struct ConfigEntry {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
}

/// Kafka's ConfigSource enum, by its id.
fn config_source(id: i8) -> &'static str {
    match id {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "static-broker",
        5 => "default",
        6 => "dynamic-broker-logger",
        7 => "client-metrics",
        8 => "group",
        _ => "unknown",
    }
}

fn describe_configs(client: &mut Client, topic: &str) -> Result<Vec<ConfigEntry>, CliError> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configuration_keys(None)]);
    let (response, version) = client.bootstrap().call(&request, DESCRIBE_CONFIGS)?;
    let mut out = Vec::new();
    for r in response.results {
        let message = r.error_message.as_deref().unwrap_or("");
        check(r.error_code, &format!("configs of {topic}"), message)?;
        for c in r.configs {
            // DescribeConfigs v0 has no config_source; treat every value as the topic's.
            let source = if version == 0 { 1 } else { c.config_source };
            out.push(ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: config_source(source),
                read_only: c.read_only,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn delete(client: &mut Client, out: Out, topics: &[String]) -> Result<(), CliError> {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topic_names(topics.iter().map(|t| TopicName(t.clone().into())).collect());
    let (response, _) = client.call_controller(&request, DELETE_TOPICS, |r| {
        r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER)
    })?;
    let mut rows = Vec::new();
    let mut first_error = None;
    for r in &response.responses {
        let name = r.name.as_deref().map(|n| n.as_str()).unwrap_or("");
        let message = r.error_message.as_deref().unwrap_or("");
        let result = check(r.error_code, &format!("delete topic {name}"), message);
        let status = match &result {
            Ok(()) => "deleted".to_owned(),
            Err(CliError::Kafka { name, .. }) => name.clone(),
            Err(e) => e.to_string(),
        };
        rows.push(json!({"topic": name, "error_code": r.error_code, "status": status}));
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    emit_rows(out, &rows, &["TOPIC", "STATUS"], &["topic", "status"]);
    first_error.map_or(Ok(()), Err)
}

fn alter_config(
    client: &mut Client,
    out: Out,
    topic: &str,
    set: &[String],
    delete: &[String],
) -> Result<(), CliError> {
    if set.is_empty() && delete.is_empty() {
        return Err(CliError::Usage(
            "alter-config needs --set NAME=VALUE or --delete NAME".into(),
        ));
    }
    let mut configs = Vec::new();
    let mut changes = BTreeMap::new();
    for pair in set {
        let (k, v) = parse_pair("--set", pair)?;
        configs.push(
            AlterableConfig::default()
                .with_name(k.clone().into())
                .with_config_operation(0)
                .with_value(Some(v.clone().into())),
        );
        changes.insert(k, Value::String(v));
    }
    for name in delete {
        configs.push(
            AlterableConfig::default()
                .with_name(name.clone().into())
                .with_config_operation(1)
                .with_value(None),
        );
        changes.insert(name.clone(), Value::Null);
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configs(configs),
    ]);
    let (response, _) = client.call_controller(&request, INCREMENTAL_ALTER_CONFIGS, |r| {
        r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER)
    })?;
    for r in &response.responses {
        let message = r.error_message.as_deref().unwrap_or("");
        check(r.error_code, &format!("alter configs of {topic}"), message)?;
    }
    let value = json!({"topic": topic, "changed": changes});
    out.emit(&value, || {
        let mut t = Table::new(&["CONFIG", "NEW-VALUE"]);
        for (k, v) in &changes {
            t.row(vec![
                k.clone(),
                v.as_str().unwrap_or("(default)").to_owned(),
            ]);
        }
        t.render()
    });
    Ok(())
}

/// Prints JSON rows as an array, or as a table of `keys` under `headers`.
pub fn emit_rows(out: Out, rows: &[Value], headers: &[&'static str], keys: &[&str]) {
    out.emit(&Value::Array(rows.to_vec()), || {
        let mut t = Table::new(headers);
        for row in rows {
            t.row(keys.iter().map(|k| cell(&row[*k])).collect());
        }
        t.render()
    });
}

/// A JSON value as a table cell: strings bare, arrays comma-joined.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
