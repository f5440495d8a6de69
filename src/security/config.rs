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
        &config.server.listen,
        config.broker_listeners().as_deref(),
        config.broker_advertised_listeners().as_deref(),
        &config.listener.listener_security_protocol_map,
    )
}

pub fn enabled_mechanisms(config: &BrokerConfig) -> Result<Vec<SaslMechanism>, ConfigError> {
    sasl::parse_enabled(&config.sasl.sasl_enabled_mechanisms)
        .map_err(|e| invalid("sasl.enabled.mechanisms", e))
}

pub fn principal_mapper(config: &BrokerConfig) -> Result<PrincipalMapper, ConfigError> {
    PrincipalMapper::parse(&config.ssl.ssl_principal_mapping_rules)
        .map_err(|e| invalid("ssl.principal.mapping.rules", e.to_string()))
}

/// The authorizer's settings (`authorizer.class.name`, `super.users`,
/// `allow.everyone.if.no.acl.found`).
pub fn authorizer(config: &BrokerConfig) -> Result<super::acl::AuthorizerConfig, ConfigError> {
    super::acl::AuthorizerConfig::parse(
        &config.authorizer.authorizer_class_name,
        &config.authorizer.super_users,
        config.authorizer.allow_everyone_if_no_acl_found,
    )
    .map_err(|e| invalid("authorizer.class.name", e))
}

/// The OAUTHBEARER JWKS settings; None when `sasl.oauthbearer.jwks.endpoint.url` is unset.
pub fn oauth_jwks(
    config: &BrokerConfig,
) -> Result<Option<super::oauth_jwks::JwksConfig>, ConfigError> {
    let Some(url) = &config.sasl.sasl_oauthbearer_jwks_endpoint_url else {
        return Ok(None);
    };
    let source = super::oauth_jwks::jwks_source(
        url,
        config
            .sasl
            .sasl_oauthbearer_jwks_endpoint_ssl_truststore_location
            .as_deref(),
    )
    .map_err(|e| invalid("sasl.oauthbearer.jwks.endpoint.url", e))?;
    if config
        .sasl
        .sasl_oauthbearer_sub_claim_name
        .trim()
        .is_empty()
    {
        return Err(invalid(
            "sasl.oauthbearer.sub.claim.name",
            "must not be empty",
        ));
    }
    let expected_audience = config
        .sasl
        .sasl_oauthbearer_expected_audience
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Some(super::oauth_jwks::JwksConfig {
        source,
        expected_audience,
        expected_issuer: config.sasl.sasl_oauthbearer_expected_issuer.clone(),
        clock_skew_seconds: config.sasl.sasl_oauthbearer_clock_skew_seconds,
        sub_claim_name: config
            .sasl
            .sasl_oauthbearer_sub_claim_name
            .trim()
            .to_owned(),
        refresh: std::time::Duration::from_millis(
            config.sasl.sasl_oauthbearer_jwks_endpoint_refresh_ms.max(1),
        ),
        retry_backoff: std::time::Duration::from_millis(
            config.sasl.sasl_oauthbearer_jwks_endpoint_retry_backoff_ms,
        ),
    }))
}

/// Checks every security setting that can be checked without reading files (the keystore and
/// truststore are read when the TLS config is built, at start).
pub fn validate(config: &BrokerConfig) -> Result<(), ConfigError> {
    let specs = listeners(config)?;
    enabled_mechanisms(config)?;
    principal_mapper(config)?;
    authorizer(config)?;
    tls::protocol_versions(&config.ssl.ssl_enabled_protocols)?;
    oauth_jwks(config)?;
    ClientAuth::parse(&config.ssl.ssl_client_auth)
        .ok_or_else(|| invalid("ssl.client.auth", "must be none, requested or required"))?;
    if config.sasl.sasl_server_max_receive_size == 0 {
        return Err(invalid("sasl.server.max.receive.size", "must be > 0"));
    }
    if config.sasl.authentication_timeout_ms == 0 {
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
    "max.connection.creation.rate",
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

/// Sets one overridable setting; Ok(false) for a key listeners cannot override.
fn set_listener_key(config: &mut BrokerConfig, key: &str, value: &str) -> Result<bool, String> {
    match key {
        "max.connection.creation.rate" => {
            config.socket.max_connection_creation_rate = value
                .trim()
                .parse()
                .ok()
                .filter(|rate: &i32| *rate >= 0)
                .ok_or_else(|| format!("{key}: {value:?} is not an integer >= 0"))?;
        }
        "ssl.keystore.type" => config.ssl.ssl_keystore_type = value.to_owned(),
        "ssl.keystore.location" => {
            config.ssl.ssl_keystore_location = optional(value).map(Into::into)
        }
        "ssl.keystore.certificate.chain" => {
            config.ssl.ssl_keystore_certificate_chain = optional(value)
        }
        "ssl.keystore.key" => config.ssl.ssl_keystore_key = optional(value),
        "ssl.key.password" => config.ssl.ssl_key_password = optional(value),
        "ssl.truststore.type" => config.ssl.ssl_truststore_type = value.to_owned(),
        "ssl.truststore.location" => {
            config.ssl.ssl_truststore_location = optional(value).map(Into::into)
        }
        "ssl.truststore.certificates" => config.ssl.ssl_truststore_certificates = optional(value),
        "ssl.client.auth" => config.ssl.ssl_client_auth = value.to_owned(),
        "ssl.enabled.protocols" => config.ssl.ssl_enabled_protocols = value.to_owned(),
        "ssl.principal.mapping.rules" => config.ssl.ssl_principal_mapping_rules = value.to_owned(),
        "sasl.enabled.mechanisms" => config.sasl.sasl_enabled_mechanisms = value.to_owned(),
        "ssl.allow.dn.changes" => {
            config.ssl.ssl_allow_dn_changes = value.eq_ignore_ascii_case("true")
        }
        "ssl.allow.san.changes" => {
            config.ssl.ssl_allow_san_changes = value.eq_ignore_ascii_case("true")
        }
        // The broker's SASL login on this listener (`cluster::inter_broker::client_login`).
        k if is_jaas_key(k) => {}
        _ => return Ok(false),
    }
    Ok(true)
}

/// The names in `controller.listener.names` (their `listener.name.<l>.ssl.*` apply to the
/// controller listener, `cluster::controller_listener`).
fn controller_listener_names(config: &BrokerConfig) -> impl Iterator<Item = &str> {
    config
        .controller
        .controller_listener_names
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// `<mechanism>.sasl.jaas.config` (lower-case mechanism), Kafka's per-listener JAAS key.
pub fn is_jaas_key(key: &str) -> bool {
    key.strip_suffix(".sasl.jaas.config")
        .is_some_and(|m| sasl::SaslMechanism::parse(&m.to_ascii_uppercase()).is_some())
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
    for (full, value) in config.listener.listener_overrides.iter().chain(dynamic) {
        let Some((l, key)) = split_listener_key(full) else {
            return Err(invalid(
                "listener.name",
                format!("{full:?} names no listener"),
            ));
        };
        if l != wanted {
            continue;
        }
        let known = set_listener_key(&mut effective, key, value)
            .map_err(|e| invalid("listener.name", format!("{full:?}: {e}")))?;
        if !known {
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
    for full in config.listener.listener_overrides.keys() {
        let known = split_listener_key(full).is_some_and(|(l, key)| {
            (specs.iter().any(|s| s.name.eq_ignore_ascii_case(&l))
                || controller_listener_names(config).any(|c| c.eq_ignore_ascii_case(&l)))
                && (LISTENER_KEYS.contains(&key) || is_jaas_key(key))
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
        tls::protocol_versions(&effective.ssl.ssl_enabled_protocols)?;
        ClientAuth::parse(&effective.ssl.ssl_client_auth)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> BrokerConfig {
        let mut config = BrokerConfig::from_toml(text).unwrap();
        config.listener.listeners = Some("PLAINTEXT://127.0.0.1:0,LIMITED://127.0.0.1:0".into());
        config.listener.listener_security_protocol_map =
            "PLAINTEXT:PLAINTEXT,LIMITED:PLAINTEXT".into();
        config
    }

    #[test]
    fn a_listener_may_override_its_connection_creation_rate_only() {
        let mut c = config("\"max.connection.creation.rate\" = 50\n");
        c.listener.listener_overrides.insert(
            "listener.name.limited.max.connection.creation.rate".into(),
            "3".into(),
        );
        validate_listener_overrides(&c).unwrap();
        let none = Default::default();
        let limited = listener_config(&c, "LIMITED", &none).unwrap();
        assert_eq!(limited.socket.max_connection_creation_rate, 3);
        let plain = listener_config(&c, "PLAINTEXT", &none).unwrap();
        assert_eq!(
            plain.socket.max_connection_creation_rate, 50,
            "the broker's value"
        );
        c.listener.listener_overrides.insert(
            "listener.name.limited.max.connection.creation.rate".into(),
            "lots".into(),
        );
        assert!(listener_config(&c, "LIMITED", &none).is_err());
        assert!(validate_listener_overrides(&c).is_err());
    }

    #[test]
    fn jwks_settings_need_a_file_or_https_url() {
        let mut c = config("");
        assert_eq!(oauth_jwks(&c).unwrap(), None);
        c.sasl.sasl_oauthbearer_jwks_endpoint_url = Some("http://idp/jwks".into());
        assert!(oauth_jwks(&c).is_err(), "plain http is refused");
        c.sasl.sasl_oauthbearer_jwks_endpoint_url = Some("https://idp/jwks".into());
        c.sasl
            .sasl_oauthbearer_jwks_endpoint_ssl_truststore_location = Some("/ca.pem".into());
        assert_eq!(
            oauth_jwks(&c).unwrap().unwrap().source,
            super::super::oauth_jwks::JwksSource::Https {
                url: "https://idp/jwks".into(),
                truststore: Some("/ca.pem".into()),
            }
        );
        c.sasl.sasl_oauthbearer_jwks_endpoint_url = Some("file:///k.json".into());
        c.sasl.sasl_oauthbearer_expected_audience = "a, b,".into();
        let jwks = oauth_jwks(&c).unwrap().unwrap();
        assert_eq!(jwks.expected_audience, ["a", "b"]);
        assert_eq!(jwks.clock_skew_seconds, 30);
        c.sasl.sasl_oauthbearer_sub_claim_name = " ".into();
        assert!(oauth_jwks(&c).is_err());
    }
}
