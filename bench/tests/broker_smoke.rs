//! End to end against a real Sluice broker: the `sluice` binary of the same target dir and
//! profile is started on a loopback port it picks (port 0) with a temp data dir, and
//! `sluice-bench` drives the smoke workload through librdkafka into it.
//!
//! The binary is (re)built first with `cargo build --bin sluice` in the same target dir and
//! profile (a no-op when `cargo test --workspace` already built it), so the test never runs a
//! stale broker; a failed build fails the test. Brokers are killed and temp dirs removed on
//! drop, also when an assertion fails.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// How long a broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `sluice` binary next to `sluice-bench` (same target dir, same profile), built once.
fn sluice_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bench = Path::new(env!("CARGO_BIN_EXE_sluice-bench"));
        let profile_dir = bench.parent().expect("sluice-bench lives in a profile dir");
        let target_dir = profile_dir
            .parent()
            .expect("the profile dir lives in a target dir");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("bench/ lives in the workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace)
            .args(["build", "--quiet", "-p", "sluice", "--bin", "sluice"])
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(
            status.success(),
            "cargo build --bin sluice failed: {status}"
        );
        let bin = profile_dir.join("sluice");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
}

/// A running broker; killed (and its data dir removed) on drop.
struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

/// Flags putting every listener of the broker on a free port, so brokers of parallel tests
/// (and two in one test) never collide: the admin endpoint too, where this build has one.
fn listen_args() -> &'static [&'static str] {
    static ARGS: OnceLock<Vec<&'static str>> = OnceLock::new();
    ARGS.get_or_init(|| {
        let help = Command::new(sluice_bin())
            .arg("--help")
            .output()
            .expect("sluice --help runs");
        let mut args = vec!["--listen", "127.0.0.1:0"];
        if String::from_utf8_lossy(&help.stdout).contains("--admin-listen") {
            args.extend(["--admin-listen", "127.0.0.1:0"]);
        }
        args
    })
}

impl Broker {
    fn start(extra_args: &[&str]) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(sluice_bin())
            .args(listen_args())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra_args)
            .env("RUST_LOG", "warn,sluice=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stderr after the ready line so the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split_once("ready listening=")
                    .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_string())
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let mut broker = Broker {
            child,
            addr: String::new(),
            _dir: dir,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => broker.addr = addr,
            Err(e) => panic!(
                "broker {extra_args:?} not ready within {READY_TIMEOUT:?} ({e}); exit status: {:?}",
                broker.child.try_wait()
            ),
        }
        assert!(
            broker.addr.starts_with("127.0.0.1:") && !broker.addr.ends_with(":0"),
            "ready line names a real port: {}",
            broker.addr
        );
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smoke_workload() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/smoke.toml")
}

fn run_bench(brokers: &[(&str, &Broker)], out: &Path, extra_args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-bench"));
    cmd.args(["run", "--quiet", "--fail-on-loss", "--workload"])
        .arg(smoke_workload())
        .arg("--out")
        .arg(out)
        .args(extra_args);
    for (name, broker) in brokers {
        cmd.arg("--broker").arg(format!("{name}={}", broker.addr));
    }
    let output = cmd.output().expect("sluice-bench runs");
    assert!(
        output.status.success(),
        "sluice-bench exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn summary(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Every acknowledged message was consumed exactly once.
fn assert_delivered(run: &Value) {
    let broker = &run["broker"];
    let acked = run["produced_acked"].as_u64().expect("produced_acked");
    assert!(acked > 0, "{broker}: nothing acknowledged: {run}");
    assert_eq!(
        run["produced_sent"].as_u64(),
        Some(acked),
        "{broker}: all sent were acked"
    );
    assert_eq!(
        run["consumed_unique"].as_u64(),
        Some(acked),
        "{broker}: consumed != produced"
    );
    assert_eq!(
        run["consumed_total"].as_u64(),
        Some(acked),
        "{broker}: extra deliveries"
    );
    assert_eq!(run["lost"], 0, "{broker}: lost");
    assert_eq!(run["duplicates"], 0, "{broker}: duplicates");
    assert_eq!(run["produce_errors"], 0, "{broker}: produce errors");
    assert_eq!(run["complete"], true, "{broker}: drain incomplete");
    assert_eq!(run["is_sink"], false);
}

#[test]
fn smoke_workload_against_sluice_delivers_everything_once() {
    let broker = Broker::start(&[]);
    let out = tempfile::tempdir().expect("temp dir");
    run_bench(&[("sluice", &broker)], out.path(), &[]);
    let summary = summary(out.path());
    let runs = summary["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["broker"], "sluice");
    assert_delivered(&runs[0]);
    // 2 s at 2000 msg/s: the whole schedule went out.
    assert_eq!(runs[0]["produced_acked"], 4000);
    assert!(runs[0]["publish_latency_ms"]["p99_ms"]
        .as_f64()
        .is_some_and(|v| v > 0.0));
}

#[test]
fn native_producer_against_sluice_delivers_everything_once() {
    let broker = Broker::start(&[]);
    let out = tempfile::tempdir().expect("temp dir");
    run_bench(&[("sluice", &broker)], out.path(), &["--client", "native"]);
    let summary = summary(out.path());
    assert_eq!(summary["workload"]["client"], "native");
    let run = &summary["runs"][0];
    // librdkafka consumers read back every record of the native producer's batches.
    assert_delivered(run);
    assert_eq!(run["produced_acked"], 4000, "2 s at 2000 msg/s");
    assert_eq!(run["publish_latency_ms"]["count"], 4000);
}

/// The numbers in a table row after the broker's name (`| name | 2.0k | 0.5 | ...`).
fn row_numbers(table: &str, name: &str) -> Vec<f64> {
    let row = table
        .lines()
        .find(|line| line.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"));
    row.split('|')
        .skip(2)
        .filter_map(|cell| {
            let cell = cell.trim();
            let (digits, scale) = match cell.strip_suffix('k') {
                Some(d) => (d, 1e3),
                None => match cell.strip_suffix('M') {
                    Some(d) => (d, 1e6),
                    None => (cell, 1.0),
                },
            };
            digits.parse::<f64>().ok().map(|v| v * scale)
        })
        .collect()
}

#[test]
fn one_shard_vs_two_shards_comparison_writes_table_and_plots() {
    let one = Broker::start(&["--cores", "1"]);
    let two = Broker::start(&["--cores", "2"]);
    let out = tempfile::tempdir().expect("temp dir");
    let output = run_bench(
        &[("cores-1", &one), ("cores-2", &two)],
        out.path(),
        &["--duration-s", "1"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let table = std::fs::read_to_string(out.path().join("comparison.md")).expect("comparison.md");
    assert!(
        stdout.contains(table.trim()),
        "the table is printed on stdout too"
    );
    for name in ["cores-1", "cores-2"] {
        let numbers = row_numbers(&table, name);
        // produce msg/s, MB/s, consume msg/s, 7 latencies, acked, lost, dup, errors.
        assert_eq!(
            numbers.len(),
            14,
            "{name}: every cell is a number:\n{table}"
        );
        assert!(numbers[0] > 0.0, "{name}: produce rate > 0:\n{table}");
        assert_eq!(
            numbers[10], 2000.0,
            "{name}: acked = 1 s at 2000 msg/s:\n{table}"
        );
        assert_eq!(
            &numbers[11..],
            &[0.0, 0.0, 0.0],
            "{name}: no loss, dups, errors"
        );
    }
    let summary = summary(out.path());
    let runs = summary["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_delivered(run);
    }
    for file in [
        "latency-publish.svg",
        "latency-end-to-end.svg",
        "throughput.svg",
        "cores-1-publish.hgrm",
        "cores-2-publish.hgrm",
    ] {
        let path = out.path().join(file);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .len();
        assert!(len > 0, "{file} is empty");
    }
    let svg = std::fs::read_to_string(out.path().join("latency-publish.svg")).expect("svg");
    assert!(svg.contains("<svg") && svg.contains("cores-1") && svg.contains("cores-2"));
}
