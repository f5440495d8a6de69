//! Settings of the controller quorum, named as Kafka's KRaft settings where Kafka has one.
//!
//! | field | setting | default |
//! |---|---|---|
//! | `node_id` | `node.id` | required |
//! | `voters` | `controller.quorum.voters` (`1@127.0.0.1:9093,2@...`) | required |
//! | `listener_name` | `controller.listener.names` (first name) | `CONTROLLER` |
//! | `metadata_dir` | `metadata.log.dir` | required |
//! | `election_timeout_ms` | `controller.quorum.election.timeout.ms` | 1000 |
//! | `fetch_timeout_ms` | `controller.quorum.fetch.timeout.ms` | 2000 |
//! | `request_timeout_ms` | `controller.quorum.request.timeout.ms` | 2000 |
//! | `retry_backoff_ms` | `controller.quorum.retry.backoff.ms` | 20 |
//! | `retry_backoff_max_ms` | `controller.quorum.election.backoff.max.ms` | 1000 |
//! | `request_max_bytes` | `controller.quorum.request.max.bytes` (Sluice; Kafka bounds every listener by `socket.request.max.bytes`) | 104857600 |
//! | `segment_bytes` | `metadata.log.segment.bytes` | 8 MiB (Kafka: 1 GiB; the metadata log here is purged after every snapshot) |
//! | `snapshot_entries_between` | `metadata.log.max.entries.between.snapshots` (Sluice; Kafka counts bytes: `metadata.log.max.record.bytes.between.snapshots`) | 10000 |
//! | `connections_max` | `controller.max.connections` (Sluice) | 64 |
//! | `connections_max_idle_ms` | `connections.max.idle.ms` | 600000 |
//! | `subscriber_capacity` | `metadata.subscriber.queue.capacity` (Sluice) | 4096 |
//! | `proposals_in_flight_max` | `controller.quorum.proposals.in.flight.max` (Sluice) | 64 |
//!
//! How the Kafka timeouts map onto openraft: a follower that hears nothing from the leader for
//! `fetch.timeout.ms` starts an election (openraft's `election_timeout_min`), after a random
//! extra wait of up to `election.timeout.ms` (so `election_timeout_max` is their sum); the
//! leader heartbeats every `fetch.timeout.ms / 4`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration the quorum refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuorumConfigError {
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> QuorumConfigError {
    QuorumConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// One voter of `controller.quorum.voters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub node_id: u64,
    pub addr: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct QuorumConfig {
    pub node_id: u64,
    /// `cluster.id`: brokers registering with another are refused (INCONSISTENT_CLUSTER_ID).
    pub cluster_id: String,
    pub voters: Vec<Voter>,
    pub listener_name: String,
    pub metadata_dir: PathBuf,
    pub election_timeout_ms: u64,
    pub fetch_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    pub request_max_bytes: usize,
    pub segment_bytes: u64,
    pub snapshot_entries_between: u64,
    pub connections_max: usize,
    pub connections_max_idle_ms: u64,
    pub subscriber_capacity: usize,
    pub proposals_in_flight_max: usize,
}

impl QuorumConfig {
    /// Kafka's defaults for everything but the identity and the directory.
    pub fn new(node_id: u64, voters: Vec<Voter>, metadata_dir: PathBuf) -> Self {
        QuorumConfig {
            node_id,
            cluster_id: crate::config::BrokerConfig::default().server.cluster_id,
            voters,
            listener_name: "CONTROLLER".to_owned(),
            metadata_dir,
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            retry_backoff_max_ms: 1000,
            request_max_bytes: 100 * 1024 * 1024,
            segment_bytes: 8 * 1024 * 1024,
            snapshot_entries_between: 10_000,
            connections_max: 64,
            connections_max_idle_ms: 600_000,
            subscriber_capacity: 4096,
            proposals_in_flight_max: 64,
        }
    }

    /// Applies one setting by its Kafka name (the table above). `Ok(false)`: not a quorum
    /// setting (the caller's other settings); an error for a known key with a bad value.
    pub fn apply_setting(&mut self, key: &str, value: &str) -> Result<bool, QuorumConfigError> {
        fn num<T: std::str::FromStr>(
            key: &'static str,
            value: &str,
        ) -> Result<T, QuorumConfigError> {
            value
                .trim()
                .parse()
                .map_err(|_| invalid(key, format!("`{value}` is not a non-negative integer")))
        }
        match key {
            "node.id" => self.node_id = num("node.id", value)?,
            "controller.quorum.voters" => self.voters = parse_voters(value)?,
            "controller.listener.names" => {
                let first = value.split(',').map(str::trim).find(|n| !n.is_empty());
                let name = first.ok_or_else(|| invalid("controller.listener.names", "empty"))?;
                self.listener_name = name.to_owned();
            }
            "metadata.log.dir" => self.metadata_dir = PathBuf::from(value),
            "controller.quorum.election.timeout.ms" => {
                self.election_timeout_ms = num("controller.quorum.election.timeout.ms", value)?
            }
            "controller.quorum.fetch.timeout.ms" => {
                self.fetch_timeout_ms = num("controller.quorum.fetch.timeout.ms", value)?
            }
            "controller.quorum.request.timeout.ms" => {
                self.request_timeout_ms = num("controller.quorum.request.timeout.ms", value)?
            }
            "controller.quorum.retry.backoff.ms" => {
                self.retry_backoff_ms = num("controller.quorum.retry.backoff.ms", value)?
            }
            "controller.quorum.election.backoff.max.ms" => {
                self.retry_backoff_max_ms = num("controller.quorum.election.backoff.max.ms", value)?
            }
            "controller.quorum.request.max.bytes" => {
                self.request_max_bytes = num("controller.quorum.request.max.bytes", value)?
            }
            "metadata.log.segment.bytes" => {
                self.segment_bytes = num("metadata.log.segment.bytes", value)?
            }
            "metadata.log.max.entries.between.snapshots" => {
                self.snapshot_entries_between =
                    num("metadata.log.max.entries.between.snapshots", value)?
            }
            "controller.max.connections" => {
                self.connections_max = num("controller.max.connections", value)?
            }
            "connections.max.idle.ms" => {
                self.connections_max_idle_ms = num("connections.max.idle.ms", value)?
            }
            "metadata.subscriber.queue.capacity" => {
                self.subscriber_capacity = num("metadata.subscriber.queue.capacity", value)?
            }
            "controller.quorum.proposals.in.flight.max" => {
                self.proposals_in_flight_max =
                    num("controller.quorum.proposals.in.flight.max", value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This node's own voter entry (its controller listener address).
    pub fn local_voter(&self) -> Option<&Voter> {
        self.voters.iter().find(|v| v.node_id == self.node_id)
    }

    pub fn validate(&self) -> Result<(), QuorumConfigError> {
        if self.local_voter().is_none() {
            return Err(invalid(
                "controller.quorum.voters",
                format!("node.id {} is not one of the voters", self.node_id),
            ));
        }
        let positive = [
            (
                "controller.quorum.election.timeout.ms",
                self.election_timeout_ms,
            ),
            ("controller.quorum.fetch.timeout.ms", self.fetch_timeout_ms),
            (
                "controller.quorum.request.timeout.ms",
                self.request_timeout_ms,
            ),
            ("controller.quorum.retry.backoff.ms", self.retry_backoff_ms),
            ("metadata.log.segment.bytes", self.segment_bytes),
            (
                "metadata.log.max.entries.between.snapshots",
                self.snapshot_entries_between,
            ),
            ("controller.max.connections", self.connections_max as u64),
            ("connections.max.idle.ms", self.connections_max_idle_ms),
            (
                "metadata.subscriber.queue.capacity",
                self.subscriber_capacity as u64,
            ),
            (
                "controller.quorum.proposals.in.flight.max",
                self.proposals_in_flight_max as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        if self.request_max_bytes < 1024 {
            return Err(invalid(
                "controller.quorum.request.max.bytes",
                "must be at least 1024",
            ));
        }
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            return Err(invalid(
                "controller.quorum.election.backoff.max.ms",
                "must not be below controller.quorum.retry.backoff.ms",
            ));
        }
        Ok(())
    }

    /// openraft's settings derived from Kafka's (see the module header).
    pub(crate) fn raft_config(&self) -> Result<openraft::Config, QuorumConfigError> {
        let config = openraft::Config {
            cluster_name: "sluice-metadata".to_owned(),
            election_timeout_min: self.fetch_timeout_ms,
            election_timeout_max: self.fetch_timeout_ms + self.election_timeout_ms,
            heartbeat_interval: (self.fetch_timeout_ms / 4).max(1),
            install_snapshot_timeout: self.request_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_entries_between),
            // Keep a few entries past the snapshot so a briefly lagging follower catches up from
            // the log instead of a full snapshot.
            max_in_snapshot_log_to_keep: (self.snapshot_entries_between / 10).min(1000),
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| invalid("controller.quorum.*", e.to_string()))
    }
}

/// Parses `controller.quorum.voters`: `id@host:port` entries separated by commas.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, QuorumConfigError> {
    const KEY: &str = "controller.quorum.voters";
    let mut voters: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| invalid(KEY, format!("`{entry}` is not id@host:port")))?;
        let node_id: u64 = id
            .parse()
            .map_err(|_| invalid(KEY, format!("`{id}` is not a node id")))?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| invalid(KEY, format!("`{addr}` is not an ip:port")))?;
        if voters.iter().any(|v| v.node_id == node_id) {
            return Err(invalid(KEY, format!("node id {node_id} appears twice")));
        }
        voters.push(Voter { node_id, addr });
    }
    if voters.is_empty() {
        return Err(invalid(KEY, "no voters"));
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_bad_ones_are_refused() {
        let voters = parse_voters("1@127.0.0.1:9093, 2@127.0.0.1:9094").expect("parse");
        assert_eq!(voters.len(), 2);
        assert_eq!(voters[1].node_id, 2);
        assert_eq!(voters[1].addr.port(), 9094);
        for bad in [
            "",
            "1",
            "x@127.0.0.1:1",
            "1@nohost",
            "1@127.0.0.1:1,1@127.0.0.1:2",
        ] {
            assert!(parse_voters(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kafka_named_settings_apply() {
        let mut config = QuorumConfig::new(0, Vec::new(), PathBuf::new());
        let settings = [
            ("node.id", "2"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:9093,2@127.0.0.1:9094",
            ),
            ("controller.listener.names", "CONTROLLER,OTHER"),
            ("metadata.log.dir", "/var/lib/sluice/meta"),
            ("controller.quorum.fetch.timeout.ms", "3000"),
        ];
        for (key, value) in settings {
            assert_eq!(config.apply_setting(key, value), Ok(true), "{key}");
        }
        assert_eq!(config.apply_setting("log.retention.ms", "1"), Ok(false));
        assert!(config
            .apply_setting("controller.quorum.fetch.timeout.ms", "-1")
            .is_err());
        assert_eq!(config.node_id, 2);
        assert_eq!(config.local_voter().map(|v| v.addr.port()), Some(9094));
        assert_eq!(config.listener_name, "CONTROLLER");
        assert_eq!(config.fetch_timeout_ms, 3000);
        config.validate().expect("valid");
    }

    #[test]
    fn a_node_outside_the_voters_is_refused() {
        let voters = parse_voters("1@127.0.0.1:9093").expect("parse");
        let config = QuorumConfig::new(2, voters, PathBuf::from("/tmp/x"));
        assert!(config.validate().is_err());
        let mut ok = QuorumConfig::new(1, config.voters.clone(), PathBuf::from("/tmp/x"));
        ok.validate().expect("valid");
        ok.raft_config().expect("raft config");
        ok.fetch_timeout_ms = 0;
        assert!(ok.validate().is_err());
    }
}
