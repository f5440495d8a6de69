//! Validation of the security settings of `BrokerConfig` (the fields live there, under Kafka's
//! names), so a bad listener, mechanism or rule stops the broker before any shard starts.

use crate::config::{BrokerConfig, ConfigError};

use super::listener::{self, ListenerSpec};
use super::principal::PrincipalMapper;
use super::sasl::{self, SaslMechanism};
use super::tls::{self, ClientAuth};

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// The configured listeners.
pub fn listeners(config: &BrokerConfig) -> Result<Vec<ListenerSpec>, ConfigError> {
    listener::parse(
        &config.listen,
        config.listeners.as_deref(),
        config.advertised_listeners.as_deref(),
        &config.listener_security_protocol_map,
    )
}

pub fn enabled_mechanisms(config: &BrokerConfig) -> Result<Vec<SaslMechanism>, ConfigError> {
    sasl::parse_enabled(&config.sasl_enabled_mechanisms)
        .map_err(|e| invalid("sasl.enabled.mechanisms", e))
}

pub fn principal_mapper(config: &BrokerConfig) -> Result<PrincipalMapper, ConfigError> {
    PrincipalMapper::parse(&config.ssl_principal_mapping_rules)
        .map_err(|e| invalid("ssl.principal.mapping.rules", e.to_string()))
}

/// The authorizer's settings (`authorizer.class.name`, `super.users`,
/// `allow.everyone.if.no.acl.found`).
pub fn authorizer(config: &BrokerConfig) -> Result<super::acl::AuthorizerConfig, ConfigError> {
    super::acl::AuthorizerConfig::parse(
        &config.authorizer_class_name,
        &config.super_users,
        config.allow_everyone_if_no_acl_found,
    )
    .map_err(|e| invalid("authorizer.class.name", e))
}

/// Checks every security setting that can be checked without reading files (the keystore and
/// truststore are read when the TLS config is built, at start).
pub fn validate(config: &BrokerConfig) -> Result<(), ConfigError> {
    let specs = listeners(config)?;
    enabled_mechanisms(config)?;
    principal_mapper(config)?;
    authorizer(config)?;
    tls::protocol_versions(&config.ssl_enabled_protocols)?;
    ClientAuth::parse(&config.ssl_client_auth)
        .ok_or_else(|| invalid("ssl.client.auth", "must be none, requested or required"))?;
    if config.sasl_server_max_receive_size == 0 {
        return Err(invalid("sasl.server.max.receive.size", "must be > 0"));
    }
    if config.authentication_timeout_ms == 0 {
        return Err(invalid("authentication.timeout.ms", "must be > 0"));
    }
    if specs.iter().any(|s| s.protocol.uses_sasl()) && enabled_mechanisms(config)?.is_empty() {
        return Err(invalid(
            "sasl.enabled.mechanisms",
            "a SASL listener needs at least one mechanism",
        ));
    }
    Ok(())
}
