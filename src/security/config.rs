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
        config.broker_listeners().as_deref(),
        config.broker_advertised_listeners().as_deref(),
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
    validate_listener_overrides(config)
}

/// Kafka's prefix of per-listener configs (`ListenerName.configPrefix`).
pub use crate::config::LISTENER_PREFIX;

/// The settings a listener may override (`listener.name.<l>.<key>`).
pub const LISTENER_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.principal.mapping.rules",
    "ssl.allow.dn.changes",
    "ssl.allow.san.changes",
    "sasl.enabled.mechanisms",
];

/// Splits `listener.name.<l>.<key>` into the (lower-case) listener and the key.
pub fn split_listener_key(full: &str) -> Option<(String, &str)> {
    let rest = full.strip_prefix(LISTENER_PREFIX)?;
    let (listener, key) = rest.split_once('.')?;
    (!listener.is_empty() && !key.is_empty()).then(|| (listener.to_ascii_lowercase(), key))
}

fn optional(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// Sets one overridable setting; false for a key listeners cannot override.
fn set_listener_key(config: &mut BrokerConfig, key: &str, value: &str) -> bool {
    match key {
        "ssl.keystore.type" => config.ssl_keystore_type = value.to_owned(),
        "ssl.keystore.location" => config.ssl_keystore_location = optional(value).map(Into::into),
        "ssl.keystore.certificate.chain" => config.ssl_keystore_certificate_chain = optional(value),
        "ssl.keystore.key" => config.ssl_keystore_key = optional(value),
        "ssl.key.password" => config.ssl_key_password = optional(value),
        "ssl.truststore.type" => config.ssl_truststore_type = value.to_owned(),
        "ssl.truststore.location" => {
            config.ssl_truststore_location = optional(value).map(Into::into)
        }
        "ssl.truststore.certificates" => config.ssl_truststore_certificates = optional(value),
        "ssl.client.auth" => config.ssl_client_auth = value.to_owned(),
        "ssl.enabled.protocols" => config.ssl_enabled_protocols = value.to_owned(),
        "ssl.principal.mapping.rules" => config.ssl_principal_mapping_rules = value.to_owned(),
        "sasl.enabled.mechanisms" => config.sasl_enabled_mechanisms = value.to_owned(),
        "ssl.allow.dn.changes" => config.ssl_allow_dn_changes = value.eq_ignore_ascii_case("true"),
        "ssl.allow.san.changes" => {
            config.ssl_allow_san_changes = value.eq_ignore_ascii_case("true")
        }
        _ => return false,
    }
    true
}

/// The settings one listener runs with: the broker's, with its `listener.name.<l>.*`
/// overrides applied key by key (Kafka's `valuesWithPrefixOverride`), then `dynamic` ones
/// (set at run time with AlterConfigs) over those.
pub fn listener_config(
    config: &BrokerConfig,
    listener: &str,
    dynamic: &std::collections::BTreeMap<String, String>,
) -> Result<BrokerConfig, ConfigError> {
    let mut effective = config.clone();
    let wanted = listener.to_ascii_lowercase();
    for (full, value) in config.listener_overrides.iter().chain(dynamic) {
        let Some((l, key)) = split_listener_key(full) else {
            return Err(invalid(
                "listener.name",
                format!("{full:?} names no listener"),
            ));
        };
        if l == wanted && !set_listener_key(&mut effective, key, value) {
            return Err(invalid(
                "listener.name",
                format!("{full:?}: {key} cannot be set per listener ({LISTENER_KEYS:?})"),
            ));
        }
    }
    Ok(effective)
}

/// Every `listener.name.<l>.*` key names a configured listener and an overridable setting,
/// and each listener's effective settings are valid.
pub fn validate_listener_overrides(config: &BrokerConfig) -> Result<(), ConfigError> {
    let specs = listeners(config)?;
    for full in config.listener_overrides.keys() {
        let known = split_listener_key(full).is_some_and(|(l, key)| {
            specs.iter().any(|s| s.name.eq_ignore_ascii_case(&l)) && LISTENER_KEYS.contains(&key)
        });
        if !known {
            return Err(invalid(
                "listener.name",
                format!("{full:?}: not a configured listener and a per-listener setting ({LISTENER_KEYS:?})"),
            ));
        }
    }
    for spec in &specs {
        let effective = listener_config(config, &spec.name, &Default::default())?;
        principal_mapper(&effective)?;
        tls::protocol_versions(&effective.ssl_enabled_protocols)?;
        ClientAuth::parse(&effective.ssl_client_auth)
            .ok_or_else(|| invalid("ssl.client.auth", "must be none, requested or required"))?;
        if spec.protocol.uses_sasl() && enabled_mechanisms(&effective)?.is_empty() {
            return Err(invalid(
                "sasl.enabled.mechanisms",
                format!("SASL listener {} needs at least one mechanism", spec.name),
            ));
        }
    }
    Ok(())
}
