//! `sluice cluster info`: cluster id, controller, brokers (Metadata) and, with
//! `--api-versions`, the API versions the bootstrap broker offers.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{api_name, Client};
use super::error::CliError;
use super::output::Table;
use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Cluster id, controller, brokers and topic count.
    Info {
        /// Also list the API versions the broker supports.
        #[arg(long)]
        api_versions: bool,
    },
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub cmd: ClusterCmd,
}

pub fn run(ctx: &Ctx, args: ClusterArgs) -> Result<(), CliError> {
    let ClusterCmd::Info { api_versions } = args.cmd;
    let mut client = Client::connect(&ctx.brokers)?;
    let metadata = client.metadata(None)?;
    let mut brokers: Vec<Value> = metadata
        .brokers
        .iter()
        .map(|b| {
            json!({"node_id": b.node_id.0, "host": b.host.as_str(), "port": b.port,
                   "rack": b.rack.as_deref()})
        })
        .collect();
    brokers.sort_by_key(|b| b["node_id"].as_i64());
    let cluster_id = metadata.cluster_id.as_deref().map(|c| c.to_string());
    let controller = metadata.controller_id.0;
    let topics = metadata.topics.iter().filter(|t| !t.is_internal).count();
    let versions: Vec<(i16, i16, i16)> = client.bootstrap().api_versions();
    let mut value = json!({
        "cluster_id": cluster_id,
        "controller_id": controller,
        "brokers": brokers,
        "topics": topics,
    });
    if api_versions {
        let listed: Value = versions
            .iter()
            .map(
                |(k, min, max)| json!({"api_key": k, "name": api_name(*k), "min": min, "max": max}),
            )
            .collect();
        if let Some(object) = value.as_object_mut() {
            object.insert("api_versions".into(), listed);
        }
    }
    ctx.out.emit(&value, || {
        let mut t = Table::new(&["ID", "HOST", "PORT", "RACK"]);
        for b in &brokers {
            t.row(
                ["node_id", "host", "port", "rack"]
                    .iter()
                    .map(|k| super::topic::cell(&b[*k]))
                    .collect(),
            );
        }
        let mut text = format!(
            "CLUSTER {}  CONTROLLER {controller}  TOPICS {topics}\n\n{}",
            cluster_id.as_deref().unwrap_or("-"),
            t.render()
        );
        if api_versions {
            let mut a = Table::new(&["API", "KEY", "MIN", "MAX"]);
            for (k, min, max) in &versions {
                a.row(vec![
                    api_name(*k),
                    k.to_string(),
                    min.to_string(),
                    max.to_string(),
                ]);
            }
            text.push('\n');
            text.push_str(&a.render());
        }
        text
    });
    Ok(())
}
