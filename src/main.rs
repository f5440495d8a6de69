//! The `sluice` binary: without a subcommand it parses the broker flags, loads the TOML
//! config, sets up logging and runs the broker until SIGINT/SIGTERM; with one (`sluice topic
//! list`, ...) it is the admin CLI (`sluice::cli`), a Kafka client of any broker.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Parser;
use sluice::config::{BrokerConfig, Overrides};

/// A Kafka-compatible event-streaming broker.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Admin commands (a Kafka client); without one, `sluice` runs the broker.
    #[command(subcommand)]
    command: Option<sluice::cli::Command>,
    /// TOML config file (Kafka setting names; see configs/sluice.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Address clients are told to connect to, HOST:PORT.
    #[arg(long)]
    advertise: Option<String>,
    /// Address of the admin HTTP endpoint serving /metrics, HOST:PORT (port 0 picks a free port).
    #[arg(long)]
    admin_listen: Option<String>,
    /// Directory for partition logs and the topic registry.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards (0 = one per core).
    #[arg(long)]
    cores: Option<usize>,
}

fn main() {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        std::process::exit(sluice::cli::run(command));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let overrides = Overrides {
        listen: cli.listen,
        advertise: cli.advertise,
        admin_listen: cli.admin_listen,
        data_dir: cli.data_dir,
        cores: cli.cores,
    };
    let loaded = BrokerConfig::load(cli.config.as_deref(), overrides)
        .and_then(|config| sluice::validate_config(&config).map(|()| config));
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = sluice::run(config) {
        tracing::error!("{e}");
        std::process::exit(1);
    }
    tracing::info!("shut down cleanly");
}
