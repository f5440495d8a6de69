//! `sluice-bench`: an OpenMessaging-Benchmark-style load generator for any Kafka-compatible
//! broker, driving load through librdkafka (or the built-in native producer). See bench/README.md.
//!
//! `run` executes one workload against each `--broker` in turn (and the built-in sink with
//! `--sink`), prints progress once a second on stderr, writes the JSON summary, `.hgrm`
//! files, SVG plots and a Markdown table into `--out`, and prints the table on stdout.
//! `sink` serves the minimal Kafka sink on its own, `validate` parses workload files.

mod batch;
mod consumer;
mod native;
mod payload;
mod plot;
mod producer;
mod report;
mod runner;
mod schedule;
mod sink;
mod stats;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::runner::{BrokerTarget, RunOptions};
use crate::workload::{Client, ConsumerMode, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Load generator for Kafka-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workload against one or more brokers, one after the other.
    Run(RunArgs),
    /// Serve the minimal Kafka-protocol sink (acks Produce without storing) until killed.
    Sink(SinkArgs),
    /// Parse and validate workload files.
    Validate {
        #[arg(required = true)]
        workloads: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Group,
    Assign,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClientArg {
    Rdkafka,
    Native,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Workload TOML file (see bench/workloads/).
    #[arg(short, long)]
    workload: PathBuf,
    /// Broker to test, as NAME=HOST:PORT (or just HOST:PORT); repeat to compare.
    #[arg(short, long = "broker")]
    brokers: Vec<String>,
    /// Also run against the built-in sink first: the generator's own ceiling.
    #[arg(long)]
    sink: bool,
    /// Output directory for summary.json, *.hgrm, *.svg and comparison.md.
    #[arg(short, long, default_value = "bench-out")]
    out: PathBuf,
    /// Override the workload's measured duration.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Override the workload's warm-up.
    #[arg(long)]
    warmup_s: Option<u64>,
    /// Override the total producer rate in msg/s (0 = max).
    #[arg(long)]
    rate: Option<u64>,
    /// Override the consumer mode (assign: no consumer groups needed).
    #[arg(long, value_enum)]
    consumer_mode: Option<ModeArg>,
    /// Override the producer client: rdkafka (librdkafka) or native (built-in, lighter).
    #[arg(long, value_enum)]
    client: Option<ClientArg>,
    /// Override how long consumers may catch up after producers stop.
    #[arg(long)]
    drain_timeout_s: Option<u64>,
    /// Override consumers per subscription (0 = producer-only run).
    #[arg(long)]
    consumers: Option<u32>,
    /// Prefix of the (per-run, uniquely tagged) topic names.
    #[arg(long, default_value = "sluice-bench")]
    topic_prefix: String,
    /// No progress lines.
    #[arg(short, long)]
    quiet: bool,
    /// Exit with status 2 if any run lost or duplicated messages or did not drain.
    #[arg(long)]
    fail_on_loss: bool,
}

#[derive(Debug, clap::Args)]
struct SinkArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Partitions of topics first seen in Metadata (CreateTopics sets its own).
    #[arg(long, default_value_t = sink::DEFAULT_PARTITIONS)]
    partitions: i32,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Workload(#[from] workload::WorkloadError),
    #[error(transparent)]
    Run(#[from] runner::RunError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error("starting tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("no broker given: pass --broker NAME=HOST:PORT and/or --sink")]
    NoBroker,
    #[error("bad --broker {0:?}: expected NAME=HOST:PORT or HOST:PORT")]
    BadBroker(String),
    #[error("duplicate broker name {0:?}")]
    DuplicateBroker(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run(args),
        Command::Sink(args) => serve_sink(args).map(|()| ExitCode::SUCCESS),
        Command::Validate { workloads } => validate(&workloads).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

fn parse_broker(spec: &str) -> Result<BrokerTarget, CliError> {
    let (name, addr) = match spec.split_once('=') {
        Some((n, a)) => (n.trim(), a.trim()),
        None => (spec.trim(), spec.trim()),
    };
    if name.is_empty() || addr.is_empty() || !addr.contains(':') {
        return Err(CliError::BadBroker(spec.to_string()));
    }
    Ok(BrokerTarget {
        name: name.to_string(),
        bootstrap: addr.to_string(),
        is_sink: false,
    })
}

fn apply_overrides(workload: &mut Workload, args: &RunArgs) -> Result<(), CliError> {
    if let Some(d) = args.duration_s {
        workload.duration_s = d;
    }
    if let Some(w) = args.warmup_s {
        workload.warmup_s = w;
    }
    if let Some(r) = args.rate {
        workload.producer_rate_msgs_per_s = r;
    }
    if let Some(m) = args.consumer_mode {
        workload.consumer_mode = match m {
            ModeArg::Group => ConsumerMode::Group,
            ModeArg::Assign => ConsumerMode::Assign,
        };
    }
    if let Some(c) = args.client {
        workload.client = match c {
            ClientArg::Rdkafka => Client::Rdkafka,
            ClientArg::Native => Client::Native,
        };
    }
    if let Some(d) = args.drain_timeout_s {
        workload.drain_timeout_s = d;
    }
    if let Some(c) = args.consumers {
        workload.consumers_per_subscription = c;
    }
    workload.validate()?;
    Ok(())
}

fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let mut workload = Workload::from_file(&args.workload)?;
    apply_overrides(&mut workload, &args)?;
    let workload = Arc::new(workload);
    let mut targets = Vec::new();
    for spec in &args.brokers {
        let target = parse_broker(spec)?;
        if targets.iter().any(|t: &BrokerTarget| t.name == target.name)
            || target.name == "sink" && args.sink
        {
            return Err(CliError::DuplicateBroker(target.name));
        }
        targets.push(target);
    }
    let rt = runtime()?;
    if args.sink {
        let partitions = i32::try_from(workload.partitions_per_topic).unwrap_or(i32::MAX);
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let bound = rt.block_on(sink::spawn(addr, partitions))?;
        targets.insert(
            0,
            BrokerTarget {
                name: "sink".to_string(),
                bootstrap: bound.to_string(),
                is_sink: true,
            },
        );
    }
    if targets.is_empty() {
        return Err(CliError::NoBroker);
    }
    let base_tag = fastrand::u32(..);
    let mut runs = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let options = RunOptions {
            topic_prefix: format!("{}-{}", args.topic_prefix, workload.name),
            run_tag: base_tag.wrapping_add(i as u32),
            quiet: args.quiet,
        };
        eprintln!(
            "[{}] running {} against {}",
            target.name, workload.name, target.bootstrap
        );
        runs.push(runner::run_broker(target, &workload, &options, &rt)?);
    }
    let (table, written) = report::write_all(&args.out, &workload, &runs)?;
    println!("{table}");
    for file in &written.files {
        eprintln!("wrote {}", file.display());
    }
    let bad = runs
        .iter()
        .any(|r| r.result.lost > 0 || r.result.duplicates > 0 || !r.result.complete);
    Ok(if args.fail_on_loss && bad {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn serve_sink(args: SinkArgs) -> Result<(), CliError> {
    let rt = runtime()?;
    rt.block_on(async {
        let bound = sink::spawn(args.listen, args.partitions).await?;
        eprintln!("ready listening={bound}");
        // Serve until killed; the accept loop runs on the runtime.
        std::future::pending::<()>().await;
        Ok::<(), CliError>(())
    })
}

fn validate(paths: &[PathBuf]) -> Result<(), CliError> {
    for path in paths {
        let w = Workload::from_file(path)?;
        println!(
            "{}: ok ({} topic(s) x {} partitions, {} B, rate {})",
            path.display(),
            w.topics,
            w.partitions_per_topic,
            w.message_size_bytes,
            if w.is_fixed_rate() {
                w.producer_rate_msgs_per_s.to_string()
            } else {
                "max".to_string()
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_specs_parse() {
        let t = parse_broker("sluice=127.0.0.1:9092").unwrap();
        assert_eq!(
            (t.name.as_str(), t.bootstrap.as_str()),
            ("sluice", "127.0.0.1:9092")
        );
        let t = parse_broker("localhost:19092").unwrap();
        assert_eq!(t.name, "localhost:19092");
        assert!(parse_broker("kafka=").is_err());
        assert!(parse_broker("nohostport").is_err());
    }
}
