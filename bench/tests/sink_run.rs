//! End to end without a broker: `sluice-bench run --sink` drives the smoke workload through
//! librdkafka into the built-in sink and must write a complete report.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

/// Runs the smoke workload against the built-in sink with `extra` flags; returns the output
/// dir (kept alive), stdout and the parsed `summary.json`.
fn run_smoke_on_sink(extra: &[&str]) -> (tempfile::TempDir, String, serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let workload = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/smoke.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args([
            "run",
            "--sink",
            "--quiet",
            "--fail-on-loss",
            "--duration-s",
            "1",
        ])
        .args(extra)
        .arg("--workload")
        .arg(&workload)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sluice-bench failed: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (out, stdout, summary)
}

#[test]
fn smoke_workload_against_the_builtin_sink_writes_a_report() {
    let (out, table, summary) = run_smoke_on_sink(&[]);
    assert!(table.contains("| sink |"), "table on stdout: {table}");

    let run = &summary["runs"][0];
    assert_eq!(run["broker"], "sink");
    assert_eq!(run["is_sink"], true);
    // 1 s at 2000 msg/s: every message was sent and acknowledged by the sink.
    assert_eq!(run["produced_sent"], 2000);
    assert_eq!(run["produced_acked"], 2000);
    assert_eq!(run["produce_errors"], 0);
    assert_eq!(run["lost"], 0);
    assert_eq!(run["complete"], true);
    assert_eq!(run["publish_latency_ms"]["count"], 2000);
    for file in [
        "sink-publish.hgrm",
        "latency-publish.svg",
        "throughput.svg",
        "comparison.md",
    ] {
        let len = std::fs::metadata(out.path().join(file)).unwrap().len();
        assert!(len > 0, "{file} is empty");
    }
}

#[test]
fn native_producer_at_max_rate_against_the_builtin_sink() {
    let (_out, _table, summary) = run_smoke_on_sink(&["--client", "native", "--rate", "0"]);
    assert_eq!(summary["workload"]["client"], "native");
    let run = &summary["runs"][0];
    let acked = run["produced_acked"].as_u64().unwrap();
    // Max rate for 1 s: far more than a fixed-rate smoke would send, every one acked once.
    assert!(acked > 10_000, "native max rate acked only {acked}");
    assert_eq!(run["produced_sent"].as_u64(), Some(acked));
    assert_eq!(run["produce_errors"], 0);
    assert!(run["publish_latency_ms"]["count"].as_u64().unwrap() > 0);
    assert!(run["throughput"]["produce_msgs_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_workload_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "name = \"bad\"\npartitions_per_topic = 0\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(["run", "--sink", "--workload"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sluice-bench:"), "{stderr}");
}
