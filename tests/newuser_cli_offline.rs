//! `sluice topic describe` on a cluster with a broker down: Kafka's `kafka-topics --describe`
//! still lists every partition (an offline one as `Leader: none`); the CLI must too, instead of
//! failing the whole command on the dead leader (found trying the cluster as a new user).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{leaders, Cluster, ClusterOpts};
use common::wait_until;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// `sluice topic describe TOPIC --json` against `addr`: its exit success and parsed output.
fn describe(addr: &str, topic: &str) -> (bool, String, Option<Value>) {
    let out = Command::new(BIN)
        .args(["topic", "describe", topic, "--json", "-b", addr])
        .output()
        .expect("run the sluice CLI");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success(),
        format!("{stdout}\n{stderr}"),
        serde_json::from_str(&stdout).ok(),
    )
}

fn partition(value: &Value, index: usize) -> &Value {
    &value["partitions"][index]
}

#[test]
fn describe_lists_the_partitions_of_a_dead_broker() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    assert_eq!(
        cluster.create_topic("offline", 3, Duration::from_secs(30)),
        0
    );
    let controller = cluster.controller_index(0).expect("a controller");
    let victim = (controller + 1) % 3;
    let victim_id = Cluster::node_id(victim);
    let survivor = (controller + 2) % 3;
    let addr = cluster.broker(survivor).addr();
    wait_until(Duration::from_secs(20), "the topic on the survivor", || {
        leaders(&cluster.metadata(survivor), "offline").len() == 3
    });
    let led: Vec<usize> = leaders(&cluster.metadata(survivor), "offline")
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == victim_id)
        .map(|(p, _)| p)
        .collect();
    assert!(!led.is_empty(), "the victim leads a partition");

    cluster.broker_mut(victim).kill9();
    // Before fencing the dead broker is still the leader, and unreachable.
    let (ok, text, value) = describe(&addr, "offline");
    assert!(ok, "describe with an unreachable leader failed: {text}");
    let value = value.expect("JSON output");
    assert_eq!(
        value["partitions"].as_array().map(Vec::len),
        Some(3),
        "{text}"
    );

    let bound = Duration::from_millis(cluster.opts.session_timeout_ms) + Duration::from_secs(10);
    wait_until(bound, "the victim's partitions to go leaderless", || {
        let now = leaders(&cluster.metadata(survivor), "offline");
        led.iter().all(|p| now[*p] == -1)
    });
    let (ok, text, value) = describe(&addr, "offline");
    assert!(ok, "describe with a leaderless partition failed: {text}");
    let value = value.expect("JSON output");
    for p in 0..3 {
        let row = partition(&value, p);
        if led.contains(&p) {
            assert_eq!(row["leader"], -1, "{text}");
            assert_eq!(row["high_watermark"], -1, "{text}");
        } else {
            assert_eq!(
                row["high_watermark"], 0,
                "a live partition keeps its offsets: {text}"
            );
        }
    }
}
