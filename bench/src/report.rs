//! Results and their outputs: the JSON summary, `.hgrm` percentile files, the Markdown
//! comparison table, and (via `plot`) SVG charts, all written into the `--out` directory.
//!
//! The JSON is the contract other tools read (the broker's smoke test among them): each run
//! has top-level `produced_acked`, `consumed_unique`, `lost`, `duplicates` and `produce_errors`
//! so a check needs no digging.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::plot;
use crate::stats::{LatencyHistogram, LatencySummary, Verification};
use crate::workload::Workload;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("serializing summary: {0}")]
    Json(#[from] serde_json::Error),
    #[error("plotting {path}: {reason}")]
    Plot { path: String, reason: String },
}

/// One second of a run (the last sample may cover less).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TimelineSample {
    /// End of the interval, seconds since producers started.
    pub t_s: f64,
    pub produce_msgs_per_s: f64,
    pub produce_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Throughput {
    pub produce_msgs_per_s: f64,
    pub produce_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubscriptionResult {
    pub topic: String,
    pub subscription: u32,
    pub group_id: Option<String>,
    pub consumers: u32,
    #[serde(flatten)]
    pub verification: Verification,
}

/// One broker's run of the workload.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokerResult {
    pub broker: String,
    pub bootstrap: String,
    /// True for the built-in sink (generator ceiling; no consumers).
    pub is_sink: bool,
    pub topics: Vec<String>,
    pub fixed_rate_msgs_per_s: Option<u64>,
    pub consumers_enabled: bool,
    pub produced_sent: u64,
    pub produced_acked: u64,
    pub produce_errors: u64,
    /// Messages consumed, duplicates included, over all subscriptions.
    pub consumed_total: u64,
    /// Distinct messages consumed, summed over subscriptions.
    pub consumed_unique: u64,
    pub consume_errors: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Over the measured window (after warm-up, before drain).
    pub throughput: Throughput,
    pub publish_latency_ms: LatencySummary,
    pub end_to_end_latency_ms: LatencySummary,
    pub subscriptions: Vec<SubscriptionResult>,
    pub timeline: Vec<TimelineSample>,
    /// Seconds consumers needed after producers stopped to catch up (or the drain timeout).
    pub drain_s: f64,
    /// False when consumers did not receive every acknowledged message in time.
    pub complete: bool,
    pub notes: Vec<String>,
}

/// A run's result plus the histograms behind its percentiles.
#[derive(Debug, Clone)]
pub struct BrokerRun {
    pub result: BrokerResult,
    pub publish: LatencyHistogram,
    pub end_to_end: LatencyHistogram,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tool: &'static str,
    pub version: &'static str,
    pub workload: Workload,
    pub runs: Vec<BrokerResult>,
    /// Which side limits, when a sink run is part of the comparison.
    pub bottleneck: Vec<String>,
}

/// Files written, for the caller to list.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

/// Writes every output into `dir` and returns the Markdown table.
pub fn write_all(
    dir: &Path,
    workload: &Workload,
    runs: &[BrokerRun],
) -> Result<(String, Written), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let mut written = Written::default();
    let summary = Summary {
        tool: "sluice-bench",
        version: env!("CARGO_PKG_VERSION"),
        workload: workload.clone(),
        runs: runs.iter().map(|r| r.result.clone()).collect(),
        bottleneck: bottleneck_lines(runs),
    };
    let json = serde_json::to_string_pretty(&summary)?;
    write_file(dir, "summary.json", &json, &mut written)?;
    for run in runs {
        let name = file_stem(&run.result.broker);
        write_file(
            dir,
            &format!("{name}-publish.hgrm"),
            &run.publish.to_hgrm(),
            &mut written,
        )?;
        if run.result.consumers_enabled {
            write_file(
                dir,
                &format!("{name}-end-to-end.hgrm"),
                &run.end_to_end.to_hgrm(),
                &mut written,
            )?;
        }
    }
    let table = markdown_table(workload, runs, &summary.bottleneck);
    write_file(dir, "comparison.md", &table, &mut written)?;
    for path in plot::write_plots(dir, workload, runs)? {
        written.files.push(path);
    }
    Ok((table, written))
}

fn write_file(
    dir: &Path,
    name: &str,
    contents: &str,
    written: &mut Written,
) -> Result<(), ReportError> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })?;
    written.files.push(path);
    Ok(())
}

/// A broker label made safe for a file name.
pub fn file_stem(broker: &str) -> String {
    broker
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Generator ceiling vs. each broker. Max rate: within 10% of the sink's produce rate means
/// the generator (this tool, librdkafka, the host) is the limit, not the broker. Fixed rate:
/// whoever misses the target rate limits; if both meet it, neither does.
pub fn bottleneck_lines(runs: &[BrokerRun]) -> Vec<String> {
    let Some(sink) = runs.iter().find(|r| r.result.is_sink) else {
        return Vec::new();
    };
    let ceiling = sink.result.throughput.produce_msgs_per_s;
    let mut lines = vec![format!(
        "generator ceiling (sink): {} msg/s",
        human(ceiling)
    )];
    for run in runs.iter().filter(|r| !r.result.is_sink) {
        let rate = run.result.throughput.produce_msgs_per_s;
        let ratio = if ceiling > 0.0 { rate / ceiling } else { 0.0 };
        let verdict = verdict(run.result.fixed_rate_msgs_per_s, rate, ceiling);
        lines.push(format!(
            "{}: {} msg/s = {:.0}% of the generator ceiling -> {verdict}",
            run.result.broker,
            human(rate),
            ratio * 100.0
        ));
    }
    lines
}

fn verdict(target: Option<u64>, rate: f64, ceiling: f64) -> &'static str {
    const MET: f64 = 0.9;
    match target {
        Some(target) => {
            let target = target as f64;
            match (rate >= MET * target, ceiling >= MET * target) {
                (true, _) => "target rate met: neither side limits",
                (false, true) => "broker-bound (missed the target rate the generator reaches)",
                (false, false) => "generator-bound (the generator cannot reach the target rate)",
            }
        }
        None if rate >= MET * ceiling => "generator-bound (within 10% of the generator's ceiling)",
        None => "broker-bound",
    }
}

pub fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub fn markdown_table(workload: &Workload, runs: &[BrokerRun], bottleneck: &[String]) -> String {
    let mut md = String::new();
    let rate = if workload.is_fixed_rate() {
        format!("{} msg/s", workload.producer_rate_msgs_per_s)
    } else {
        "max".to_string()
    };
    let _ = writeln!(
        md,
        "## {} ({} topic(s) x {} partitions, {} B, {} producers, {} consumers/sub, rate {rate}, {} s + {} s warm-up)\n",
        workload.name,
        workload.topics,
        workload.partitions_per_topic,
        workload.message_size_bytes,
        workload.producer_count(),
        workload.consumers_per_subscription,
        workload.duration_s,
        workload.warmup_s,
    );
    let _ = writeln!(
        md,
        "| broker | produce msg/s | produce MB/s | consume msg/s | pub p50 ms | pub p99 ms | pub p99.9 ms | pub max ms | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | acked | lost | dup | errors |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for run in runs {
        let r = &run.result;
        let (p, e) = (&r.publish_latency_ms, &r.end_to_end_latency_ms);
        let dash = |v: f64| {
            if r.consumers_enabled && e.count > 0 {
                format!("{v:.2}")
            } else {
                "-".to_string()
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            r.broker,
            human(r.throughput.produce_msgs_per_s),
            r.throughput.produce_mb_per_s,
            if r.consumers_enabled {
                human(r.throughput.consume_msgs_per_s)
            } else {
                "-".to_string()
            },
            p.p50_ms,
            p.p99_ms,
            p.p99_9_ms,
            p.max_ms,
            dash(e.p50_ms),
            dash(e.p99_ms),
            dash(e.p99_9_ms),
            r.produced_acked,
            r.lost,
            r.duplicates,
            r.produce_errors + r.consume_errors,
        );
    }
    if !bottleneck.is_empty() {
        md.push('\n');
        for line in bottleneck {
            let _ = writeln!(md, "- {line}");
        }
    }
    for run in runs {
        for note in &run.result.notes {
            let _ = writeln!(md, "- {}: {note}", run.result.broker);
        }
    }
    md
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn fake_run(name: &str, is_sink: bool, rate: f64) -> BrokerRun {
        let mut publish = LatencyHistogram::new();
        let mut e2e = LatencyHistogram::new();
        for us in 1..=20_000u64 {
            publish.record_ns(us * 100 * if is_sink { 1 } else { 3 });
            e2e.record_ns(us * 500);
        }
        let timeline = (1..=5)
            .map(|t| TimelineSample {
                t_s: f64::from(t),
                produce_msgs_per_s: rate * (0.9 + 0.02 * f64::from(t)),
                produce_mb_per_s: rate / 1000.0,
                consume_msgs_per_s: if is_sink { 0.0 } else { rate },
                consume_mb_per_s: if is_sink { 0.0 } else { rate / 1000.0 },
            })
            .collect();
        BrokerRun {
            result: BrokerResult {
                broker: name.to_string(),
                bootstrap: "127.0.0.1:1".to_string(),
                is_sink,
                topics: vec!["t0".to_string()],
                fixed_rate_msgs_per_s: None,
                consumers_enabled: !is_sink,
                produced_sent: 20_000,
                produced_acked: 20_000,
                produce_errors: 0,
                consumed_total: if is_sink { 0 } else { 20_001 },
                consumed_unique: if is_sink { 0 } else { 20_000 },
                consume_errors: 0,
                lost: 0,
                duplicates: if is_sink { 0 } else { 1 },
                error_kinds: BTreeMap::new(),
                throughput: Throughput {
                    produce_msgs_per_s: rate,
                    produce_mb_per_s: rate / 1000.0,
                    consume_msgs_per_s: rate,
                    consume_mb_per_s: rate / 1000.0,
                },
                publish_latency_ms: publish.summary(),
                end_to_end_latency_ms: e2e.summary(),
                subscriptions: Vec::new(),
                timeline,
                drain_s: 0.1,
                complete: true,
                notes: Vec::new(),
            },
            publish,
            end_to_end: e2e,
        }
    }

    fn workload() -> Workload {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/smoke.toml");
        Workload::from_file(&path).unwrap()
    }

    #[test]
    fn verdicts() {
        assert!(verdict(None, 95.0, 100.0).starts_with("generator-bound"));
        assert_eq!(verdict(None, 50.0, 100.0), "broker-bound");
        assert!(verdict(Some(2000), 2000.0, 2000.0).starts_with("target rate met"));
        assert!(verdict(Some(10_000), 6_000.0, 10_000.0).starts_with("broker-bound"));
        assert!(verdict(Some(10_000), 6_000.0, 7_000.0).starts_with("generator-bound"));
    }

    #[test]
    fn report_files_are_written_with_expected_fields() {
        let dir = tempfile::tempdir().unwrap();
        let runs = vec![
            fake_run("sink", true, 900_000.0),
            fake_run("sluice", false, 500_000.0),
            fake_run("kafka/local", false, 850_000.0),
        ];
        let (table, written) = write_all(dir.path(), &workload(), &runs).unwrap();
        for name in [
            "summary.json",
            "comparison.md",
            "sink-publish.hgrm",
            "sluice-publish.hgrm",
            "sluice-end-to-end.hgrm",
            "kafka_local-end-to-end.hgrm",
            "latency-publish.svg",
            "latency-end-to-end.svg",
            "throughput.svg",
        ] {
            let path = dir.path().join(name);
            let len = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .len();
            assert!(len > 100, "{name} has {len} bytes");
            assert!(written.files.contains(&path), "{name} listed");
        }
        assert!(!dir.path().join("sink-end-to-end.hgrm").exists());

        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["workload"]["name"], "smoke");
        let runs_json = json["runs"].as_array().unwrap();
        assert_eq!(runs_json.len(), 3);
        for field in [
            "produced_acked",
            "consumed_unique",
            "lost",
            "duplicates",
            "produce_errors",
        ] {
            assert!(runs_json[1][field].is_u64(), "{field} present");
        }
        assert_eq!(runs_json[1]["duplicates"], 1);
        assert!(
            runs_json[1]["publish_latency_ms"]["p99_ms"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        assert_eq!(runs_json[1]["timeline"].as_array().unwrap().len(), 5);
        let bottleneck = json["bottleneck"].as_array().unwrap();
        assert_eq!(bottleneck.len(), 3);
        assert!(bottleneck[1].as_str().unwrap().contains("broker-bound"));
        assert!(bottleneck[2].as_str().unwrap().contains("generator-bound"));

        assert!(table.contains("| sluice | 500.0k |"));
        assert!(table.contains("| sink |"));
        assert_eq!(
            table.lines().filter(|l| l.starts_with("| ")).count(),
            4,
            "header + 3 rows"
        );
        let svg = std::fs::read_to_string(dir.path().join("latency-publish.svg")).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("sluice") && svg.contains("kafka/local"),
            "legend names brokers"
        );
        assert!(svg.contains("99.9%"), "nines axis labels");
    }
}
