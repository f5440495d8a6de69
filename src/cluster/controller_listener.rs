//! Security of the controller listener (Kafka's `controller.listener.names`): its protocol from
//! `listener.security.protocol.map` (PLAINTEXT when the map does not name it, as before), and
//! for SSL the rustls configs built from its effective settings (`listener.name.<l>.ssl.*`
//! over the broker's `ssl.*`): the server side for this node's controller listener (the quorum
//! RPCs and brokers' registration, heartbeats, AlterPartition, Envelope), the client side for
//! every connection this node opens to a controller (raft peers, `heartbeat::ControllerChannel`).
//!
//! The settings are the process's (one node per process), installed once at start
//! ([`install`]); without them (unit tests, a node that never installed) connections are
//! plaintext, as before. SASL on the controller listener is refused at start (its RPCs are not
//! Kafka requests, so there is no SaslHandshake to carry; `sasl.mechanism.controller.protocol`
//! is therefore not used).
//!
//! Invariants: with SSL, a controller connection is used only after its handshake; the client
//! verifies the controller's certificate for the dialled IP address and presents this node's
//! keystore; the server requires client certificates when `ssl.client.auth = required`.

use std::sync::{Arc, OnceLock};

use crate::config::{BrokerConfig, ConfigError};
use crate::security::listener::SecurityProtocol;

/// The controller listener's protocol and TLS configs.
#[derive(Debug)]
pub struct ControllerSecurity {
    /// Upper-case listener name (the first of `controller.listener.names`).
    pub listener: String,
    pub protocol: SecurityProtocol,
    /// For connections to controllers (SSL only).
    pub client: Option<Arc<rustls::ClientConfig>>,
    /// For this node's controller listener (SSL, controller role only).
    pub server: Option<Arc<rustls::ServerConfig>>,
}

static SETTINGS: OnceLock<ControllerSecurity> = OnceLock::new();

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Resolves the controller listener's security (None: not a KRaft node).
pub fn settings(config: &BrokerConfig) -> Result<Option<ControllerSecurity>, ConfigError> {
    let Some(kraft) = super::kraft::settings(config)? else {
        return Ok(None);
    };
    let listener = kraft.controller_listener.trim().to_ascii_uppercase();
    let map = crate::security::listener::parse_protocol_map(
        &config.listener.listener_security_protocol_map,
    )?;
    let protocol = map
        .get(&listener)
        .copied()
        .or_else(|| SecurityProtocol::parse(&listener))
        .unwrap_or(SecurityProtocol::Plaintext);
    if protocol.uses_sasl() {
        return Err(invalid(
            "controller.listener.names",
            format!(
                "controller listener {listener} is {}: SASL on the controller listener is not \
                 supported (use SSL, with ssl.client.auth = required for mutual TLS)",
                protocol.name()
            ),
        ));
    }
    let (client, server) = if protocol.uses_tls() {
        let dynamic = crate::security::listener_configs::load(&config.server.data_dir)
            .map_err(|e| invalid("controller.listener.names", e.to_string()))?;
        let effective = crate::security::config::listener_config(config, &listener, &dynamic)?;
        let client = crate::security::tls::client_config(&effective)?;
        let server = if kraft.roles.controller {
            Some(crate::security::tls::server_config(&effective)?)
        } else {
            None
        };
        (Some(client), server)
    } else {
        (None, None)
    };
    Ok(Some(ControllerSecurity {
        listener,
        protocol,
        client,
        server,
    }))
}

/// Installs this process's controller-listener security (once, at start).
pub fn install(config: &BrokerConfig) -> Result<(), ConfigError> {
    if let Some(resolved) = settings(config)? {
        tracing::info!(
            listener = %resolved.listener,
            protocol = resolved.protocol.name(),
            "controller listener"
        );
        let _ = SETTINGS.set(resolved);
    }
    Ok(())
}

/// TLS for connections to controllers (None: plaintext).
pub fn client_tls() -> Option<Arc<rustls::ClientConfig>> {
    SETTINGS.get().and_then(|s| s.client.clone())
}

/// TLS for this node's controller listener (None: plaintext).
pub fn server_tls() -> Option<Arc<rustls::ServerConfig>> {
    SETTINGS.get().and_then(|s| s.server.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(map: &str) -> BrokerConfig {
        let mut c = BrokerConfig::default();
        c.server.node_id = 1;
        c.controller.process_roles = Some("broker,controller".into());
        c.controller.controller_quorum_voters = Some("1@127.0.0.1:9093".into());
        c.controller.controller_listener_names = Some("CONTROLLER".into());
        c.listener.listeners = Some("PLAINTEXT://127.0.0.1:0".into());
        c.listener.listener_security_protocol_map = map.into();
        c
    }

    #[test]
    fn the_protocol_comes_from_the_map() {
        let plain = settings(&config("PLAINTEXT:PLAINTEXT")).unwrap().unwrap();
        assert_eq!(
            plain.protocol,
            SecurityProtocol::Plaintext,
            "not in the map"
        );
        assert!(plain.client.is_none() && plain.server.is_none());
        let sasl = settings(&config("PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL")).unwrap_err();
        assert!(
            sasl.to_string().contains("controller.listener.names"),
            "{sasl}"
        );
        // SSL without a truststore or keystore cannot verify or be verified.
        let ssl = settings(&config("PLAINTEXT:PLAINTEXT,CONTROLLER:SSL")).unwrap_err();
        assert!(ssl.to_string().contains("ssl."), "{ssl}");
        assert!(settings(&BrokerConfig::default()).unwrap().is_none());
    }
}
