//! Kafka's KRaft settings (`process.roles`, `node.id`, `controller.quorum.voters`,
//! `controller.quorum.bootstrap.servers`, `controller.listener.names`,
//! `broker.session.timeout.ms`, `broker.heartbeat.interval.ms`, `metadata.log.dir` and the
//! quorum timeouts), validated as Kafka's `KafkaConfig.validateValues` does, and turned into the
//! quorum's settings.
//!
//! Invariants: without `process.roles` the broker is the single node of old (its own
//! controller on shard 0, no quorum: `make run` unchanged); with it, every setting the roles
//! need is present and consistent before any thread starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::quorum::{parse_voters, QuorumConfig, Voter};
use crate::config::{BrokerConfig, ConfigError};

/// The roles of this process (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

/// This node's KRaft settings (see the module documentation).
#[derive(Debug, Clone)]
pub struct KraftSettings {
    pub roles: Roles,
    pub node_id: i32,
    pub voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers`, else the voters' addresses: where a broker first
    /// looks for the active controller.
    pub bootstrap: Vec<SocketAddr>,
    pub controller_listener: String,
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub metadata_dir: PathBuf,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Parses `process.roles` (Kafka: a non-empty list of `broker` / `controller`, no repeats).
pub fn parse_roles(value: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles {
        broker: false,
        controller: false,
    };
    let mut seen = 0;
    for role in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let slot = match role.to_ascii_lowercase().as_str() {
            "broker" => &mut roles.broker,
            "controller" => &mut roles.controller,
            other => {
                return Err(invalid(
                    "process.roles",
                    format!("unknown role `{other}` (broker, controller)"),
                ))
            }
        };
        if *slot {
            return Err(invalid("process.roles", format!("duplicate role `{role}`")));
        }
        *slot = true;
        seen += 1;
    }
    if seen == 0 {
        return Err(invalid("process.roles", "empty"));
    }
    Ok(roles)
}

/// The KRaft settings, or None when `process.roles` is unset (single node of old).
pub fn settings(config: &BrokerConfig) -> Result<Option<KraftSettings>, ConfigError> {
    let Some(roles) = config.controller.process_roles.as_deref() else {
        return Ok(None);
    };
    let roles = parse_roles(roles)?;
    if config.server.node_id < 0 {
        return Err(invalid(
            "node.id",
            "must be set (>= 0) when process.roles is",
        ));
    }
    let voters = match config.controller.controller_quorum_voters.as_deref() {
        Some(v) if !v.trim().is_empty() => {
            parse_voters(v).map_err(|e| invalid("controller.quorum.voters", e.to_string()))?
        }
        _ => Vec::new(),
    };
    let bootstrap = parse_bootstrap(
        config
            .controller
            .controller_quorum_bootstrap_servers
            .as_deref(),
    )?;
    if voters.is_empty() && bootstrap.is_empty() {
        return Err(invalid(
            "controller.quorum.voters",
            "if using process.roles, either controller.quorum.bootstrap.servers or \
             controller.quorum.voters must contain at least one controller",
        ));
    }
    let controller_listener = config
        .controller
        .controller_listener_names
        .as_deref()
        .and_then(|names| names.split(',').map(str::trim).find(|n| !n.is_empty()))
        .ok_or_else(|| {
            invalid(
                "controller.listener.names",
                "must contain at least one value when running KRaft (process.roles is set)",
            )
        })?
        .to_owned();
    let node = u64::try_from(config.server.node_id).unwrap_or(u64::MAX);
    let is_voter = voters.iter().any(|v| v.node_id == node);
    if roles.controller {
        check_controller_listener(config, &controller_listener, &voters, node)?;
        if voters.is_empty() {
            // Dynamic quorums (KIP-853) are not supported: a controller needs static voters.
            return Err(invalid(
                "controller.quorum.voters",
                "a controller needs the static voters (dynamic quorums are not supported)",
            ));
        }
        if !is_voter {
            return Err(invalid(
                "controller.quorum.voters",
                format!(
                    "if process.roles contains the 'controller' role, the node id {} must be \
                     included in the set of voters",
                    config.server.node_id
                ),
            ));
        }
    } else if is_voter {
        return Err(invalid(
            "controller.quorum.voters",
            format!(
                "if process.roles contains just the 'broker' role, the node id {} must not be \
                 included in the set of voters",
                config.server.node_id
            ),
        ));
    }
    if config.controller.broker_heartbeat_interval_ms == 0 {
        return Err(invalid("broker.heartbeat.interval.ms", "must be positive"));
    }
    if config.controller.broker_session_timeout_ms <= config.controller.broker_heartbeat_interval_ms
    {
        return Err(invalid(
            "broker.session.timeout.ms",
            "must be greater than broker.heartbeat.interval.ms",
        ));
    }
    let bootstrap = match bootstrap.is_empty() {
        true => voters.iter().map(|v| v.addr).collect(),
        false => bootstrap,
    };
    let metadata_dir = config
        .controller
        .metadata_log_dir
        .clone()
        .unwrap_or_else(|| config.server.data_dir.join("__cluster_metadata-0"));
    let settings = KraftSettings {
        roles,
        node_id: config.server.node_id,
        voters,
        bootstrap,
        controller_listener,
        session_timeout_ms: config.controller.broker_session_timeout_ms,
        heartbeat_interval_ms: config.controller.broker_heartbeat_interval_ms,
        metadata_dir,
    };
    if roles.controller {
        quorum_config(&settings, config)
            .validate()
            .map_err(|e| invalid("controller.quorum.voters", e.to_string()))?;
    }
    Ok(Some(settings))
}

/// A controller listener named in `listeners` (Kafka's way to give its address) must be the
/// address this node has in `controller.quorum.voters`, which is where the quorum binds.
fn check_controller_listener(
    config: &BrokerConfig,
    name: &str,
    voters: &[Voter],
    node: u64,
) -> Result<(), ConfigError> {
    let Some(listeners) = config.listener.listeners.as_deref() else {
        return Ok(());
    };
    let Some(entry) = listeners.split(',').map(str::trim).find(|l| {
        l.split("://")
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    }) else {
        return Ok(());
    };
    let port: Option<u16> = entry.rsplit(':').next().and_then(|p| p.parse().ok());
    let voter_port = voters
        .iter()
        .find(|v| v.node_id == node)
        .map(|v| v.addr.port());
    match (port, voter_port) {
        (Some(port), Some(voter)) if port != voter => Err(invalid(
            "listeners",
            format!(
                "the controller listener {entry} is not this node's address in \
                 controller.quorum.voters (port {voter})"
            ),
        )),
        _ => Ok(()),
    }
}

fn parse_bootstrap(value: Option<&str>) -> Result<Vec<SocketAddr>, ConfigError> {
    const KEY: &str = "controller.quorum.bootstrap.servers";
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| invalid(KEY, format!("`{s}` is not an ip:port")))
        })
        .collect()
}

/// The quorum member's settings of a controller node.
pub fn quorum_config(settings: &KraftSettings, config: &BrokerConfig) -> QuorumConfig {
    let node = u64::try_from(settings.node_id).unwrap_or(u64::MAX);
    let mut quorum =
        QuorumConfig::new(node, settings.voters.clone(), settings.metadata_dir.clone());
    quorum.listener_name = settings.controller_listener.clone();
    quorum.election_timeout_ms = config.controller.controller_quorum_election_timeout_ms;
    quorum.fetch_timeout_ms = config.controller.controller_quorum_fetch_timeout_ms;
    quorum.request_timeout_ms = config.controller.controller_quorum_request_timeout_ms;
    quorum.snapshot_entries_between = config.controller.metadata_log_max_entries_between_snapshots;
    quorum.connections_max = config.controller.controller_max_connections;
    quorum.cluster_id = config.server.cluster_id.clone();
    quorum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn combined(node: i32) -> BrokerConfig {
        let mut c = BrokerConfig::default();
        c.server.node_id = node;
        c.controller.process_roles = Some("broker,controller".into());
        c.controller.controller_quorum_voters =
            Some("1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095".into());
        c.controller.controller_listener_names = Some("CONTROLLER".into());
        c
    }

    #[test]
    fn no_roles_is_the_single_node_of_old() {
        assert!(settings(&BrokerConfig::default()).unwrap().is_none());
    }

    #[test]
    fn a_combined_node_parses() {
        let s = settings(&combined(2)).unwrap().unwrap();
        assert!(s.roles.broker && s.roles.controller);
        assert_eq!(s.voters.len(), 3);
        assert_eq!(s.bootstrap.len(), 3, "the voters are the bootstrap");
        assert_eq!(s.controller_listener, "CONTROLLER");
        assert!(s.metadata_dir.ends_with("__cluster_metadata-0"));
    }

    #[test]
    fn kafkas_rules_are_enforced() {
        let mut c = combined(4);
        assert!(settings(&c).is_err(), "a controller outside the voters");
        c.controller.process_roles = Some("broker".into());
        assert!(settings(&c).is_ok(), "a broker outside the voters");
        let mut c = combined(1);
        c.controller.process_roles = Some("broker".into());
        assert!(settings(&c).is_err(), "a broker-only node among the voters");
        let mut c = combined(1);
        c.controller.controller_listener_names = None;
        assert!(settings(&c).is_err(), "controller.listener.names required");
        let mut c = combined(1);
        c.controller.controller_quorum_voters = None;
        assert!(settings(&c).is_err(), "no quorum named");
        for bad in ["", "worker", "broker,broker"] {
            let mut c = combined(1);
            c.controller.process_roles = Some(bad.into());
            assert!(settings(&c).is_err(), "{bad:?}");
        }
        let mut c = combined(1);
        c.controller.broker_session_timeout_ms = c.controller.broker_heartbeat_interval_ms;
        assert!(settings(&c).is_err(), "session <= heartbeat");
    }

    #[test]
    fn the_example_configs_are_valid() {
        let examples = [
            (
                include_str!("../../configs/kraft-combined.toml"),
                true,
                true,
            ),
            (include_str!("../../configs/kraft-broker.toml"), true, false),
            (
                include_str!("../../configs/kraft-controller.toml"),
                false,
                true,
            ),
        ];
        for (text, broker, controller) in examples {
            let config = BrokerConfig::from_toml(text).unwrap();
            let s = settings(&config).unwrap().unwrap();
            assert_eq!((s.roles.broker, s.roles.controller), (broker, controller));
        }
    }

    #[test]
    fn controller_listeners_are_not_client_listeners() {
        let mut c = combined(1);
        c.listener.listeners =
            Some("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:19099".into());
        assert!(settings(&c).is_err(), "not the voter address");
        c.listener.listeners =
            Some("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:19093".into());
        assert!(settings(&c).is_ok());
        assert_eq!(
            c.broker_listeners().as_deref(),
            Some("PLAINTEXT://127.0.0.1:9092")
        );
    }
}
