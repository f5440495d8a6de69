//! The admin CLI (`sluice topic|produce|consume|group|cluster ...`), like rpk or Kafka's
//! scripts: each subcommand talks the Kafka protocol to any broker (`--brokers`), prints a
//! human table or, with `--json`, JSON (one JSON object per record for `consume`).
//!
//! This module tree is a client: it imports nothing from the broker (`net`, `handlers`,
//! `router`, ...), only kafka-protocol's codecs, over the blocking connection in [`client`].
//! Exit status: 0 on success, 1 on a failed request (the message names the Kafka error code
//! and what to do), 2 on bad usage.

pub mod client;
pub mod cluster;
pub mod consume;
pub mod error;
pub mod group;
pub mod member;
pub mod meta;
pub mod output;
pub mod produce;
pub mod topic;

use clap::{Args, Subcommand};

pub use error::CliError;

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Brokers to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(
        long,
        short = 'b',
        global = true,
        env = "SLUICE_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Print JSON instead of tables (consume: one object per line).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, delete topics and change their configs.
    Topic {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: topic::TopicArgs,
    },
    /// Write records from arguments or stdin.
    Produce {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: produce::ProduceArgs,
    },
    /// Read records from an offset or a time, or as a member of a consumer group (--group).
    Consume {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: consume::ConsumeArgs,
    },
    /// List, describe (with lag), reset offsets of and delete consumer groups.
    Group {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: group::GroupArgs,
    },
    /// Cluster id, controller and brokers.
    Cluster {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: cluster::ClusterArgs,
    },
}

/// What every command needs: where the cluster is and how to print.
pub struct Ctx {
    pub brokers: String,
    pub out: output::Out,
}

impl Ctx {
    fn new(conn: ConnArgs) -> Ctx {
        Ctx {
            brokers: conn.brokers,
            out: output::Out { json: conn.json },
        }
    }
}

/// Runs one subcommand; returns the process exit status.
pub fn run(command: Command) -> i32 {
    let result = match command {
        Command::Topic { conn, args } => topic::run(&Ctx::new(conn), args),
        Command::Produce { conn, args } => produce::run(&Ctx::new(conn), args),
        Command::Consume { conn, args } => consume::run(&Ctx::new(conn), args),
        Command::Group { conn, args } => group::run(&Ctx::new(conn), args),
        Command::Cluster { conn, args } => cluster::run(&Ctx::new(conn), args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
