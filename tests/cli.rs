//! The admin CLI (`sluice topic|produce|consume|group|cluster`) against a real broker: each
//! subcommand's table output and its `--json` (parsed), error messages naming the Kafka error
//! code, and records crossing between the CLI and librdkafka both ways.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::kafka;
use common::{wait_until, Broker, BrokerOpts};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Runs `sluice ARGS --brokers <broker>` with `stdin`; returns the finished process.
fn sluice_in(broker: &Broker, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--brokers", &broker.addr()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(stdin.as_bytes()).expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait for sluice")
}

fn sluice(broker: &Broker, args: &[&str]) -> Output {
    sluice_in(broker, args, "")
}

/// Runs a command that must succeed; returns its stdout.
fn ok(broker: &Broker, args: &[&str]) -> String {
    ok_in(broker, args, "")
}

fn ok_in(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let out = sluice_in(broker, args, stdin);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sluice {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `ok` with `--json`, parsed.
fn json(broker: &Broker, args: &[&str]) -> Value {
    let mut with = args.to_vec();
    with.push("--json");
    let text = ok(broker, &with);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

/// A command that must fail with exit status `code`; returns its stderr.
fn fails(broker: &Broker, args: &[&str], code: i32) -> String {
    let out = sluice(broker, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "sluice {args:?} should exit {code}; stderr: {stderr}"
    );
    stderr
}

/// `consume --json` output: one object per line.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn topic_create_list_describe_alter_delete() {
    let broker = Broker::start(BrokerOpts::default());
    let out = ok(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-c",
            "retention.ms=86400000",
        ],
    );
    assert!(out.contains("orders") && out.contains("created"), "{out}");

    let again = fails(&broker, &["topic", "create", "orders"], 1);
    assert!(again.contains("TOPIC_ALREADY_EXISTS (36)"), "{again}");
    assert!(again.contains("hint:"), "{again}");

    let table = ok(&broker, &["topic", "list"]);
    let line = table
        .lines()
        .find(|l| l.starts_with("orders "))
        .unwrap_or_else(|| panic!("orders missing from:\n{table}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["orders", "3", "1"]
    );
    let list = json(&broker, &["topic", "list"]);
    let orders = list
        .as_array()
        .and_then(|a| a.iter().find(|t| t["topic"] == "orders"))
        .unwrap_or_else(|| panic!("orders missing from {list}"));
    assert_eq!(orders["partitions"], 3);

    let described = json(&broker, &["topic", "describe", "orders"]);
    let partitions = described["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["log_start_offset"], 0);
        assert_eq!(p["high_watermark"], 0);
    }
    assert_eq!(
        config_value(&described, "retention.ms"),
        Some("86400000".into())
    );

    let altered = ok(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=1000",
            "--set",
            "cleanup.policy=compact",
        ],
    );
    assert!(
        altered.contains("retention.ms") && altered.contains("1000"),
        "{altered}"
    );
    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(
        config_value(&described, "retention.ms"),
        Some("1000".into())
    );
    assert_eq!(
        config_value(&described, "cleanup.policy"),
        Some("compact".into())
    );
    ok(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--delete",
            "cleanup.policy",
        ],
    );
    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(
        config_value(&described, "cleanup.policy"),
        None,
        "{described}"
    );
    let human = ok(&broker, &["topic", "describe", "orders"]);
    assert!(
        human.contains("HIGH-WATERMARK") && human.contains("retention.ms"),
        "{human}"
    );

    let bad = fails(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=soon",
        ],
        1,
    );
    assert!(bad.contains("INVALID_CONFIG (40)"), "{bad}");

    let deleted = json(&broker, &["topic", "delete", "orders"]);
    assert_eq!(deleted[0]["status"], "deleted", "{deleted}");
    let gone = fails(&broker, &["topic", "describe", "orders"], 1);
    assert!(gone.contains("UNKNOWN_TOPIC_OR_PARTITION (3)"), "{gone}");
    let twice = fails(&broker, &["topic", "delete", "orders"], 1);
    assert!(twice.contains("UNKNOWN_TOPIC_OR_PARTITION (3)"), "{twice}");
}

/// The topic-set value of config `name` in `topic describe --json`.
fn config_value(described: &Value, name: &str) -> Option<String> {
    described["configs"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name && c["source"] == "topic")
        .and_then(|c| c["value"].as_str().map(str::to_owned))
}

#[test]
fn produce_and_consume_with_keys_headers_codecs_and_offsets() {
    let broker = Broker::start(BrokerOpts::default());
    ok(&broker, &["topic", "create", "events", "-p", "2"]);
    let mut sent = 0;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let input: String = (0..5)
            .map(|i| format!("{codec}-k{i}:{codec}-v{i}\n"))
            .collect();
        let report = ok_in(
            &broker,
            &[
                "produce", "events", "-K", ":", "-H", "codec=x", "-H", "n=1", "-z", codec, "--json",
            ],
            &input,
        );
        let report: Value = serde_json::from_str(&report).expect("produce --json");
        assert_eq!(report["records"], 5, "{report}");
        sent += 5;
    }
    let records = json_lines(&ok(&broker, &["consume", "events", "-e", "--json"]));
    assert_eq!(records.len(), sent);
    for r in &records {
        let key = r["key"].as_str().expect("key");
        let value = r["value"].as_str().expect("value");
        assert_eq!(key.replace("-k", "-v"), value, "{r}");
        assert_eq!(r["headers"][0]["key"], "codec");
        assert_eq!(r["headers"][1]["value"], "1");
        // Kafka's partitioner (murmur2) puts a key where the Java client would.
        let expected = sluice::cli::produce::partition_for_key(key.as_bytes(), 2);
        assert_eq!(r["partition"], expected, "{r}");
    }

    // librdkafka reads what the CLI wrote, keys and headers included.
    let received = kafka::consume_all(&broker, "events", 2);
    assert_eq!(received.len(), sent);
    let first = &received[0];
    let headers = first.headers.clone();
    assert_eq!(headers[0].0, "codec");
    assert!(first.key.is_some());

    // Offsets: a partition from an exact offset, the last N, a time, a count.
    let p0: Vec<Value> = records
        .iter()
        .filter(|r| r["partition"] == 0)
        .cloned()
        .collect();
    assert!(p0.len() >= 2, "both partitions get keys");
    let from1 = json_lines(&ok(
        &broker,
        &["consume", "events", "-p", "0", "-o", "1", "-e", "--json"],
    ));
    assert_eq!(from1.len(), p0.len() - 1);
    assert_eq!(from1[0]["offset"], 1);
    let last2 = json_lines(&ok(
        &broker,
        &["consume", "events", "-p", "0", "-o", "-2", "-e", "--json"],
    ));
    assert_eq!(last2.len(), 2);
    assert_eq!(last2[1]["offset"], p0.len() - 1);
    let future = ok(
        &broker,
        &["consume", "events", "-o", "@9999999999999", "-e"],
    );
    assert_eq!(future, "", "no record is after that time");
    let hour = json_lines(&ok(
        &broker,
        &["consume", "events", "-o", "@-1h", "-e", "--json"],
    ));
    assert_eq!(hour.len(), sent);
    let three = ok(
        &broker,
        &["consume", "events", "-n", "3", "-f", "%p/%o %k=%v %h\\n"],
    );
    let lines: Vec<&str> = three.lines().collect();
    assert_eq!(lines.len(), 3, "{three}");
    assert!(
        lines[0].starts_with("0/0 ") && lines[0].contains("codec=x,n=1"),
        "{three}"
    );

    // `--input json` reads what `consume --json` prints: a copy keeps keys, values, headers.
    ok(&broker, &["topic", "create", "copy", "-p", "2"]);
    let dump = ok(&broker, &["consume", "events", "-e", "--json"]);
    ok_in(&broker, &["produce", "copy", "--input", "json"], &dump);
    let copied = json_lines(&ok(&broker, &["consume", "copy", "-e", "--json"]));
    let strip = |v: &[Value]| {
        let mut out: Vec<(Value, Value, Value, Value)> = v
            .iter()
            .map(|r| {
                (
                    r["partition"].clone(),
                    r["key"].clone(),
                    r["value"].clone(),
                    r["headers"].clone(),
                )
            })
            .collect();
        out.sort_by_key(|t| format!("{t:?}"));
        out
    };
    assert_eq!(strip(&copied), strip(&records));

    // Plain values as arguments, acks=0 and a pinned partition.
    ok(
        &broker,
        &[
            "produce", "events", "-p", "1", "--acks", "0", "fire", "forget",
        ],
    );
    wait_until(Duration::from_secs(10), "acks=0 records land", || {
        let tail = ok(&broker, &["consume", "events", "-p", "1", "-o", "-2", "-e"]);
        tail == "fire\nforget\n"
    });

    let missing = fails(&broker, &["produce", "nope", "x"], 1);
    assert!(
        missing.contains("UNKNOWN_TOPIC_OR_PARTITION (3)"),
        "{missing}"
    );
    let usage = fails(&broker, &["consume", "events", "-o", "soon"], 2);
    assert!(usage.contains("--offset"), "{usage}");
}

#[test]
fn rdkafka_records_are_readable_by_consume() {
    let broker = Broker::start(BrokerOpts::default());
    kafka::create_topic(&broker, "from-rdkafka", 1);
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(20, 4, 32);
    kafka::produce(&producer, "from-rdkafka", &records, Some(0));
    let got = json_lines(&ok(&broker, &["consume", "from-rdkafka", "-e", "--json"]));
    assert_eq!(got.len(), records.len());
    for (r, sent) in got.iter().zip(&records) {
        assert_eq!(r["key"], sent.key.as_str());
        assert_eq!(r["value"], String::from_utf8_lossy(&sent.value).as_ref());
        assert_eq!(r["timestamp"], sent.timestamp_ms);
        assert_eq!(r["headers"][0]["value"], sent.id.to_string());
    }
    // From a time: records carry explicit timestamps TIMESTAMP_BASE_MS + id.
    let at = format!("@{}", kafka::TIMESTAMP_BASE_MS + 15);
    let tail = json_lines(&ok(
        &broker,
        &["consume", "from-rdkafka", "-o", &at, "-e", "--json"],
    ));
    assert_eq!(tail.len(), 5);
    assert_eq!(tail[0]["offset"], 15);
}

#[test]
fn group_list_describe_reset_delete() {
    let broker = Broker::start(BrokerOpts::default());
    kafka::create_topic(&broker, "work", 2);
    let producer = kafka::producer(&broker, &[]);
    kafka::produce(&producer, "work", &kafka::keyed_records(10, 2, 16), Some(0));
    kafka::produce(&producer, "work", &kafka::keyed_records(4, 2, 16), Some(1));

    // A live member that consumed and committed 6 records of partition 0.
    let consumer = kafka::consumer_with(
        &broker,
        &[("group.id", "billing"), ("client.id", "billing-1")],
    );
    consumer.subscribe(&["work"]).expect("subscribe");
    let mut seen = 0;
    wait_until(
        Duration::from_secs(30),
        "the member consumes 6 records",
        || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                if m.partition() == 0 && m.offset() < 6 {
                    seen += 1;
                    let _ = m.headers().map(|h| h.count());
                    if seen == 6 {
                        let mut tpl = rdkafka::TopicPartitionList::new();
                        tpl.add_partition_offset("work", 0, rdkafka::Offset::Offset(6))
                            .expect("tpl");
                        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
                    }
                }
            }
            seen >= 6
        },
    );

    let groups = json(&broker, &["group", "list"]);
    let billing = groups
        .as_array()
        .and_then(|a| a.iter().find(|g| g["group"] == "billing"))
        .unwrap_or_else(|| panic!("billing missing from {groups}"));
    assert_eq!(billing["state"], "Stable");
    assert_eq!(billing["protocol_type"], "consumer");

    let d = json(&broker, &["group", "describe", "billing"]);
    assert_eq!(d["state"], "Stable");
    assert_eq!(d["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(d["members"][0]["client_id"], "billing-1");
    let p0 = offset_row(&d, "work", 0);
    assert_eq!(
        (
            p0["current_offset"].clone(),
            p0["log_end_offset"].clone(),
            p0["lag"].clone()
        ),
        (6.into(), 10.into(), 4.into())
    );
    assert!(
        p0["member_id"].is_string(),
        "the assignment names the owner: {d}"
    );
    let human = ok(&broker, &["group", "describe", "billing"]);
    assert!(
        human.contains("STATE Stable") && human.contains("billing-1") && human.contains("LAG"),
        "{human}"
    );

    let busy = fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "work",
            "--to-earliest",
            "--execute",
        ],
        1,
    );
    assert!(busy.contains("Stable"), "{busy}");
    let busy = fails(&broker, &["group", "delete", "billing"], 1);
    assert!(busy.contains("NON_EMPTY_GROUP (68)"), "{busy}");

    drop(consumer); // leaves the group
    wait_until(Duration::from_secs(30), "the group empties", || {
        json(&broker, &["group", "describe", "billing"])["state"] == "Empty"
    });

    let dry = json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "work:0",
            "--shift-by",
            "-2",
        ],
    );
    assert_eq!(dry["executed"], false);
    assert_eq!(dry["offsets"][0]["new_offset"], 4);
    assert_eq!(
        offset_row(&json(&broker, &["group", "describe", "billing"]), "work", 0)["current_offset"],
        6,
        "a dry run commits nothing"
    );
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "work",
            "--to-earliest",
            "--execute",
        ],
    );
    let d = json(&broker, &["group", "describe", "billing"]);
    assert_eq!(offset_row(&d, "work", 0)["lag"], 10);
    assert_eq!(offset_row(&d, "work", 1)["lag"], 4);
    assert_eq!(d["total_lag"], 14);
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--all-topics",
            "--to-offset",
            "99",
            "--execute",
        ],
    );
    let d = json(&broker, &["group", "describe", "billing"]);
    assert_eq!(
        offset_row(&d, "work", 0)["current_offset"],
        10,
        "clamped to the log end"
    );

    let deleted = json(&broker, &["group", "delete", "billing"]);
    assert_eq!(deleted[0]["status"], "deleted");
    let gone = fails(&broker, &["group", "describe", "billing"], 1);
    assert!(gone.contains("does not exist"), "{gone}");
}

fn offset_row<'a>(described: &'a Value, topic: &str, partition: i32) -> &'a Value {
    described["offsets"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["topic"] == topic && r["partition"] == partition)
        })
        .unwrap_or_else(|| panic!("no {topic}/{partition} in {described}"))
}

#[test]
fn cluster_info_and_connection_errors() {
    let broker = Broker::start(BrokerOpts::default());
    ok(&broker, &["topic", "create", "a"]);
    let info = json(&broker, &["cluster", "info", "--api-versions"]);
    assert_eq!(info["brokers"].as_array().map(Vec::len), Some(1));
    assert_eq!(info["brokers"][0]["port"], broker.socket_addr().port());
    assert_eq!(info["brokers"][0]["node_id"], info["controller_id"]);
    assert!(info["cluster_id"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(info["topics"], 1);
    let apis = info["api_versions"].as_array().expect("api_versions");
    assert!(apis.iter().any(|a| a["name"] == "Produce"));
    let human = ok(&broker, &["cluster", "info"]);
    assert!(
        human.contains("CONTROLLER") && human.contains(&broker.socket_addr().port().to_string()),
        "{human}"
    );

    // Nothing listens on a port this test just bound and closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let out = Command::new(BIN)
        .args(["topic", "list", "--brokers", &format!("127.0.0.1:{port}")])
        .output()
        .expect("run sluice");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach a broker") && stderr.contains("--brokers"),
        "{stderr}"
    );
}

/// A broker whose groups rebalance without Kafka's initial 3 s delay (as Kafka's test brokers).
fn broker_without_rebalance_delay() -> Broker {
    Broker::start(BrokerOpts {
        config_toml: Some("\"group.initial.rebalance.delay.ms\" = 0\n".into()),
        ..BrokerOpts::default()
    })
}

/// `group describe --json`, or Null while the group does not exist yet (for wait loops).
fn describe_while_joining(broker: &Broker, group: &str) -> Value {
    let out = sluice(broker, &["group", "describe", group, "--json"]);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// (partition, offset) of every record a `consume --json` printed.
fn positions_printed(stdout: &str) -> Vec<(i64, i64)> {
    json_lines(stdout)
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().expect("partition"),
                r["offset"].as_i64().expect("offset"),
            )
        })
        .collect()
}

#[test]
fn consume_in_a_group_starts_at_commits_and_leaves() {
    let broker = broker_without_rebalance_delay();
    kafka::create_topic(&broker, "orders", 2);
    let producer = kafka::producer(&broker, &[]);
    kafka::produce(&producer, "orders", &kafka::keyed_records(6, 2, 8), Some(0));
    kafka::produce(&producer, "orders", &kafka::keyed_records(4, 2, 8), Some(1));

    // First run: the group has no offsets, so --offset start applies; it reads everything,
    // commits the ends and leaves (the group is Empty at once, not after the session timeout).
    let first = ok(
        &broker,
        &["consume", "orders", "--group", "audit", "--exit", "--json"],
    );
    let mut read = positions_printed(&first);
    read.sort_unstable();
    let all: Vec<(i64, i64)> = (0..6)
        .map(|o| (0, o))
        .chain((0..4).map(|o| (1, o)))
        .collect();
    assert_eq!(read, all, "every record once: {first}");
    let d = json(&broker, &["group", "describe", "audit"]);
    assert_eq!(d["state"], "Empty", "the member left: {d}");
    assert_eq!(offset_row(&d, "orders", 0)["current_offset"], 6);
    assert_eq!(offset_row(&d, "orders", 1)["current_offset"], 4);
    assert_eq!(d["total_lag"], 0);

    // Second run starts at the committed offsets: only the new records; --num stops after 2
    // and commits exactly those.
    kafka::produce(&producer, "orders", &kafka::keyed_records(3, 1, 8), Some(1));
    let second = ok(
        &broker,
        &["consume", "orders", "-g", "audit", "-n", "2", "--json"],
    );
    assert_eq!(positions_printed(&second), vec![(1, 4), (1, 5)]);
    let d = json(&broker, &["group", "describe", "audit"]);
    assert_eq!(offset_row(&d, "orders", 1)["current_offset"], 6);
    assert_eq!(d["total_lag"], 1);

    // --partition picks partitions itself, which a group member cannot.
    let usage = fails(&broker, &["consume", "orders", "-g", "audit", "-p", "0"], 2);
    assert!(usage.contains("cannot be used with"), "{usage}");
}

#[test]
fn consume_group_members_split_partitions_and_rebalance() {
    let broker = broker_without_rebalance_delay();
    kafka::create_topic(&broker, "events", 2);
    let producer = kafka::producer(&broker, &[]);
    let spawn = || {
        Command::new(BIN)
            .args(["consume", "events", "--group", "pair", "--json"])
            .args(["--brokers", &broker.addr()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice consume")
    };
    let members = |d: &Value| d["members"].as_array().map_or(0, Vec::len);
    let a = spawn();
    wait_until(Duration::from_secs(30), "the first member joins", || {
        let d = describe_while_joining(&broker, "pair");
        d["state"] == "Stable" && members(&d) == 1
    });
    let b = spawn();
    // The first member sees the rebalance on its next heartbeat and rejoins; as leader it
    // gives each member one partition (range assignor).
    wait_until(
        Duration::from_secs(30),
        "both members own a partition",
        || {
            let d = describe_while_joining(&broker, "pair");
            let owners: Vec<&str> = (0..2)
                .filter_map(|p| {
                    d["offsets"]
                        .as_array()?
                        .iter()
                        .find(|r| r["topic"] == "events" && r["partition"] == p)?["member_id"]
                        .as_str()
                })
                .collect();
            d["state"] == "Stable"
                && members(&d) == 2
                && owners.len() == 2
                && owners[0] != owners[1]
        },
    );
    kafka::produce(&producer, "events", &kafka::keyed_records(5, 1, 8), Some(0));
    kafka::produce(&producer, "events", &kafka::keyed_records(3, 1, 8), Some(1));
    wait_until(
        Duration::from_secs(30),
        "both commit what they read",
        || {
            let d = describe_while_joining(&broker, "pair");
            let committed = |p: i64| {
                d["offsets"].as_array().and_then(|rows| {
                    rows.iter()
                        .find(|r| r["topic"] == "events" && r["partition"] == p)
                        .and_then(|r| r["current_offset"].as_i64())
                })
            };
            committed(0) == Some(5) && committed(1) == Some(3)
        },
    );
    // SIGTERM: each commits and leaves; the group empties without waiting for a timeout.
    let mut outputs = Vec::new();
    for child in [a, b] {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let out = child.wait_with_output().expect("wait for sluice consume");
        assert!(
            out.status.success(),
            "sluice consume exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(positions_printed(&String::from_utf8_lossy(&out.stdout)));
    }
    let partitions_of = |read: &[(i64, i64)]| {
        let mut ps: Vec<i64> = read.iter().map(|(p, _)| *p).collect();
        ps.dedup();
        ps
    };
    let (pa, pb) = (partitions_of(&outputs[0]), partitions_of(&outputs[1]));
    assert_eq!(pa.len() + pb.len(), 2, "one partition each: {outputs:?}");
    assert_ne!(pa, pb);
    let mut read: Vec<(i64, i64)> = outputs.concat();
    read.sort_unstable();
    let all: Vec<(i64, i64)> = (0..5)
        .map(|o| (0, o))
        .chain((0..3).map(|o| (1, o)))
        .collect();
    assert_eq!(read, all, "each record read once by one member");
    let d = json(&broker, &["group", "describe", "pair"]);
    assert_eq!(d["state"], "Empty", "both left: {d}");
}

#[test]
fn consume_group_shares_a_group_with_librdkafka() {
    let broker = broker_without_rebalance_delay();
    kafka::create_topic(&broker, "mixed", 2);
    let consumer = kafka::consumer_with(
        &broker,
        &[
            ("group.id", "mixed"),
            ("partition.assignment.strategy", "range"),
        ],
    );
    consumer.subscribe(&["mixed"]).expect("subscribe");
    let members = |d: &Value| d["members"].as_array().map_or(0, Vec::len);
    wait_until(Duration::from_secs(30), "librdkafka joins", || {
        let _ = consumer.poll(Duration::from_millis(100));
        let d = describe_while_joining(&broker, "mixed");
        d["state"] == "Stable" && members(&d) == 1
    });
    let child = Command::new(BIN)
        .args(["consume", "mixed", "--group", "mixed", "--json"])
        .args(["--brokers", &broker.addr()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice consume");
    // librdkafka is the leader: its range assignment must decode in the CLI, and the CLI's
    // subscription in librdkafka.
    wait_until(Duration::from_secs(30), "one partition each", || {
        let _ = consumer.poll(Duration::from_millis(100));
        let d = describe_while_joining(&broker, "mixed");
        members(&d) == 2
            && d["state"] == "Stable"
            && consumer.assignment().map(|a| a.count()).unwrap_or(0) == 1
    });
    let mine = consumer.assignment().expect("assignment").elements()[0].partition();
    let producer = kafka::producer(&broker, &[]);
    kafka::produce(&producer, "mixed", &kafka::keyed_records(3, 1, 8), Some(0));
    kafka::produce(&producer, "mixed", &kafka::keyed_records(3, 1, 8), Some(1));
    let mut got = 0;
    wait_until(Duration::from_secs(30), "librdkafka reads its 3", || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            assert_eq!(m.partition(), mine);
            got += 1;
        }
        got == 3
    });
    wait_until(Duration::from_secs(30), "the CLI commits its 3", || {
        let d = describe_while_joining(&broker, "mixed");
        d["offsets"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["partition"] == 1 - mine && r["current_offset"] == 3)
        })
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait for sluice consume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = positions_printed(&String::from_utf8_lossy(&out.stdout));
    let theirs = i64::from(1 - mine);
    assert_eq!(read, vec![(theirs, 0), (theirs, 1), (theirs, 2)]);
    // The CLI left: librdkafka gets both partitions in the next generation.
    wait_until(Duration::from_secs(30), "librdkafka owns both", || {
        let _ = consumer.poll(Duration::from_millis(100));
        consumer.assignment().map(|a| a.count()).unwrap_or(0) == 2
    });
}

#[test]
fn consume_group_names_an_incompatible_assignor() {
    let broker = broker_without_rebalance_delay();
    kafka::create_topic(&broker, "rr", 1);
    let consumer = kafka::consumer_with(
        &broker,
        &[
            ("group.id", "rr"),
            ("partition.assignment.strategy", "roundrobin"),
        ],
    );
    consumer.subscribe(&["rr"]).expect("subscribe");
    wait_until(Duration::from_secs(30), "librdkafka joins", || {
        let _ = consumer.poll(Duration::from_millis(100));
        describe_while_joining(&broker, "rr")["state"] == "Stable"
    });
    // The group's only protocol is roundrobin; the CLI offers range: Kafka's error, with a hint.
    let err = fails(&broker, &["consume", "rr", "--group", "rr", "-e"], 1);
    assert!(err.contains("INCONSISTENT_GROUP_PROTOCOL (23)"), "{err}");
    assert!(err.contains("use another --group"), "{err}");
}
