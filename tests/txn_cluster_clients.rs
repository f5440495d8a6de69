//! Transactions on a three-broker KRaft cluster with outside clients (issue 12):
//! - the Java client (kafka-clients 4.x, `make java-deps`) with transaction version 2 (KIP-890):
//!   commit, abort, commit across partitions led by every broker, the epoch bumped by every
//!   transaction, read_committed exactly the committed records (`scripts/compat/TxnTv2.java`);
//! - exactly-once consume-transform-produce with confluent-kafka (librdkafka, TV1, the
//!   leaders verifying with the coordinator) at RF=3, the processor killed with kill -9 several
//!   times mid-run (`scripts/compat/txn_eos_kill.py`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::process::Command;

use common::cluster::{Cluster, RF3_TOML};

fn cluster() -> Cluster {
    common::txn::txn_cluster(RF3_TOML)
}

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| format!("{}/.venv/bin/python", root()))
}

/// Runs `command`, failing the test with its output unless it exits 0; answers its stdout.
fn run(mut command: Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn java_client_uses_transaction_version_2_on_three_brokers() {
    let lib =
        std::env::var("KAFKA_TOOLS_LIB").unwrap_or_else(|_| format!("{}/compat/tools/lib", root()));
    let has_clients = std::fs::read_dir(&lib)
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("kafka-clients-")
            })
        })
        .unwrap_or(false);
    assert!(
        has_clients,
        "no kafka-clients jar in {lib} (make java-deps)"
    );
    let cluster = cluster();
    let topic = "tv2-java";
    assert_eq!(
        cluster.create_topic(topic, 3, std::time::Duration::from_secs(30)),
        0
    );
    let mut java = Command::new(std::env::var("JAVA").unwrap_or_else(|_| "java".into()));
    java.arg("-cp")
        .arg(format!("{lib}/*"))
        .arg(format!("{}/scripts/compat/TxnTv2.java", root()))
        .args([cluster.bootstrap().as_str(), topic, "3"]);
    let out = run(java, "TxnTv2.java (make java-deps)");
    assert!(
        out.contains("ok: epoch bumped by every transaction"),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "ok"), "{out}");
}

#[test]
fn eos_processor_killed_mid_run_on_three_brokers_rf3() {
    let cluster = cluster();
    let mut script = Command::new(python());
    script
        .arg(format!("{}/scripts/compat/txn_eos_kill.py", root()))
        // One bootstrap broker; 3,000 records, 3 kills, RF=3 topics.
        .args([cluster.broker(0).addr().as_str(), "3000", "3", "3"]);
    let out = run(script, "txn_eos_kill.py (make py-deps)");
    assert!(out.contains("exactly once"), "{out}");
    assert!(out.contains("ok: in order per key"), "{out}");
    assert_eq!(out.matches("killed with SIGKILL").count(), 3, "{out}");
}
