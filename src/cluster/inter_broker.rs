//! Connections this broker opens to other brokers (replica fetchers, transaction markers, and
//! any later broker-to-broker RPC): Kafka's `inter.broker.listener.name` /
//! `security.inter.broker.protocol` choose the listener of the other broker's registration to
//! dial, and its security protocol decides whether the connection is TLS (rustls client, the
//! broker's keystore as client certificate, its truststore to verify the other broker) and
//! whether it authenticates with SASL first (`sasl.mechanism.inter.broker.protocol`, the
//! broker's login from `listener.name.<l>.<mechanism>.sasl.jaas.config` or `sasl.jaas.config`).
//!
//! The settings are the process's (one broker per process), installed once at start
//! ([`install`]) from the inter-broker listener's effective config (`listener.name.<l>.ssl.*`
//! applied); without them (unit tests, a controller-only node) connections are plaintext to a
//! broker's first endpoint, as before.
//!
//! Invariants: a connection carries requests only after its TLS handshake and SASL exchange
//! (SaslHandshake v1, SaslAuthenticate v2) succeeded; when the other broker answers a session
//! lifetime (KIP-368, `connections.max.reauth.ms`) the connection re-authenticates in-band
//! before the first request after 85% of it, so it is never closed for expiry; a refused login
//! is an `io::Error` (PermissionDenied) that the caller logs and retries with its backoff.
//! Every answer read is bounded (`SASL_RESPONSE_BYTES_MAX`).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::secure_stream::SecureStream;
use crate::config::{BrokerConfig, ConfigError};
use crate::security::listener::SecurityProtocol;
use crate::security::sasl::SaslMechanism;
use crate::security::sasl_client::{self, ClientLogin, ScramClient};
use crate::security::scram::Mechanism;

/// Largest SaslHandshake / SaslAuthenticate answer read.
const SASL_RESPONSE_BYTES_MAX: usize = 1024 * 1024;
/// The client id of the SASL exchange.
const CLIENT_ID: &str = "sluice-inter-broker";
/// Re-authenticate after this share of the session lifetime (Kafka's clients: 85-95%).
const REAUTH_SHARE: f64 = 0.85;
/// Salted passwords kept (per salt and iterations, so a reconnect skips the PBKDF2).
const SALTED_CACHE_ENTRIES: usize = 16;

/// The inter-broker listener and how to speak to it.
#[derive(Debug)]
pub struct InterBroker {
    /// Upper-case listener name, as registered by every broker.
    pub listener: String,
    pub protocol: SecurityProtocol,
    /// The TLS client config when `protocol` uses TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The broker's login when `protocol` uses SASL.
    pub sasl: Option<ClientLogin>,
}

static SETTINGS: OnceLock<InterBroker> = OnceLock::new();

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Resolves the inter-broker listener of `config` as Kafka's `KafkaConfig` does: the named
/// listener, else the listener named after `security.inter.broker.protocol` (PLAINTEXT by
/// default); setting both is an error, and the listener must be one of the broker's.
pub fn settings(config: &BrokerConfig) -> Result<InterBroker, ConfigError> {
    let listener = match (
        &config.listener.inter_broker_listener_name,
        &config.listener.security_inter_broker_protocol,
    ) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "inter.broker.listener.name",
                "set inter.broker.listener.name or security.inter.broker.protocol, not both",
            ))
        }
        (Some(name), None) => name.trim().to_ascii_uppercase(),
        (None, Some(protocol)) => SecurityProtocol::parse(protocol)
            .ok_or_else(|| invalid("security.inter.broker.protocol", "unknown protocol"))?
            .name()
            .to_owned(),
        (None, None) => SecurityProtocol::Plaintext.name().to_owned(),
    };
    let specs = crate::security::config::listeners(config)?;
    let explicit = config.listener.inter_broker_listener_name.is_some();
    let Some(spec) = specs.iter().find(|s| s.name == listener) else {
        if !explicit && config.listener.security_inter_broker_protocol.is_none() {
            // No PLAINTEXT listener and nothing asked: the first listener, as before.
            let first = specs
                .first()
                .ok_or_else(|| invalid("listeners", "no listener"))?;
            return build(config, first.name.clone(), first.protocol);
        }
        return Err(invalid(
            "inter.broker.listener.name",
            format!("{listener} is not one of this broker's listeners"),
        ));
    };
    build(config, spec.name.clone(), spec.protocol)
}

fn build(
    config: &BrokerConfig,
    listener: String,
    protocol: SecurityProtocol,
) -> Result<InterBroker, ConfigError> {
    let dynamic = crate::security::listener_configs::load(&config.server.data_dir)
        .map_err(|e| invalid("inter.broker.listener.name", e.to_string()))?;
    let effective = crate::security::config::listener_config(config, &listener, &dynamic)?;
    let sasl = if protocol.uses_sasl() {
        Some(client_login(
            config,
            &effective,
            &listener,
            "sasl.mechanism.inter.broker.protocol",
            &config.sasl.sasl_mechanism_inter_broker_protocol,
        )?)
    } else {
        None
    };
    let tls = if protocol.uses_tls() {
        Some(crate::security::tls::client_config(&effective)?)
    } else {
        None
    };
    Ok(InterBroker {
        listener,
        protocol,
        tls,
        sasl,
    })
}

/// The broker's SASL login on `listener` (Kafka's `KafkaConfig` checks): `mechanism` (the value
/// of `mechanism_key`) is PLAIN or SCRAM and enabled on that listener, and a JAAS config gives
/// its username and password: `listener.name.<l>.<mechanism>.sasl.jaas.config`, else
/// `sasl.jaas.config`.
pub fn client_login(
    config: &BrokerConfig,
    effective: &BrokerConfig,
    listener: &str,
    mechanism_key: &'static str,
    mechanism: &str,
) -> Result<ClientLogin, ConfigError> {
    let name = mechanism.trim();
    let parsed = SaslMechanism::parse(name)
        .filter(|m| !matches!(m, SaslMechanism::OAuthBearer))
        .ok_or_else(|| {
            invalid(
                mechanism_key,
                format!(
                    "{name} is not supported between brokers (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; Kafka's default GSSAPI is not implemented)"
                ),
            )
        })?;
    let enabled = crate::security::config::enabled_mechanisms(effective)?;
    if !enabled.contains(&parsed) {
        return Err(invalid(
            mechanism_key,
            format!(
                "{name} must be included in sasl.enabled.mechanisms of listener {listener} when SASL is used between brokers"
            ),
        ));
    }
    let prefixed = format!(
        "{}{}.{}.sasl.jaas.config",
        crate::config::LISTENER_PREFIX,
        listener.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    );
    let (key, jaas) = match config.listener.listener_overrides.get(&prefixed) {
        Some(jaas) => (prefixed.clone(), jaas),
        None => match &config.sasl.sasl_jaas_config {
            Some(jaas) => ("sasl.jaas.config".to_owned(), jaas),
            None => {
                return Err(invalid(
                    "sasl.jaas.config",
                    format!(
                        "listener {listener} uses SASL between brokers: set {prefixed} (or \
                         sasl.jaas.config) to the broker's login, e.g. \
                         org.apache.kafka.common.security.scram.ScramLoginModule required \
                         username=\"broker\" password=\"...\";"
                    ),
                ))
            }
        },
    };
    ClientLogin::from_jaas(parsed, jaas)
        .map_err(|e| invalid("sasl.jaas.config", format!("{key}: {e}")))
}

/// Installs this process's inter-broker settings (once, at start; later calls are ignored).
pub fn install(config: &BrokerConfig) -> Result<(), ConfigError> {
    let resolved = settings(config)?;
    tracing::info!(
        listener = %resolved.listener,
        protocol = resolved.protocol.name(),
        sasl_mechanism = resolved.sasl.as_ref().map(|l| l.mechanism.name()),
        sasl_username = resolved.sasl.as_ref().map(|l| l.username.as_str()),
        "inter-broker listener"
    );
    let _ = SETTINGS.set(resolved);
    Ok(())
}

/// The installed settings (None before `install`, or in a process that never called it).
pub fn installed() -> Option<&'static InterBroker> {
    SETTINGS.get()
}

/// The name of the listener to dial on other brokers, if configured.
pub fn listener_name() -> Option<&'static str> {
    installed().map(|s| s.listener.as_str())
}

/// A connection to another broker over the inter-broker listener: TLS and SASL as installed.
pub struct BrokerStream {
    stream: SecureStream,
    addr: SocketAddr,
    /// When the SASL session must be renewed (KIP-368); None: never.
    reauth_at: Option<Instant>,
    correlation_id: i32,
}

impl BrokerStream {
    /// Dials `addr` with the installed settings: TLS handshake, then the SASL exchange.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let settings = installed();
        let tls = settings.and_then(|s| s.tls.clone());
        let mut stream = Self {
            stream: SecureStream::connect(addr, tls).await?,
            addr,
            reauth_at: None,
            correlation_id: 0,
        };
        if let Some(login) = settings.and_then(|s| s.sasl.as_ref()) {
            stream.authenticate(login).await?;
        }
        Ok(stream)
    }

    /// Writes one request; first re-authenticates in-band when the session is due (nothing is
    /// in flight then: callers read each answer before the next request).
    pub async fn write_all(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        if self.reauth_at.is_some_and(|at| Instant::now() >= at) {
            if let Some(login) = installed().and_then(|s| s.sasl.as_ref()) {
                self.authenticate(login).await?;
            }
        }
        self.stream.write_all(bytes).await
    }

    /// Reads exactly `len` bytes.
    pub async fn read_exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        self.stream.read_exact(len).await
    }

    fn refused(&self, login: &ClientLogin, why: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "SASL {} authentication as {} to the broker at {} failed: {why} (check \
                 sasl.mechanism.inter.broker.protocol and the broker's sasl.jaas.config)",
                login.mechanism.name(),
                login.username,
                self.addr
            ),
        )
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 rounds of the mechanism.
    async fn authenticate(&mut self, login: &ClientLogin) -> io::Result<()> {
        let handshake: SaslHandshakeResponse = self
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
            )
            .await?;
        if handshake.error_code != 0 {
            let enabled: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(self.refused(
                login,
                format!(
                    "SaslHandshake error {} (the other broker enables {enabled:?})",
                    handshake.error_code
                ),
            ));
        }
        let lifetime_ms = match login.mechanism {
            SaslMechanism::Scram(m) => self.scram(login, m).await?,
            _ => {
                let answer = self
                    .sasl_round(login, sasl_client::plain_token(login))
                    .await?;
                answer.session_lifetime_ms
            }
        };
        // The lifetime is the other broker's number: no overflow (a huge one is "never").
        self.reauth_at = u64::try_from(lifetime_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .and_then(|ms| Instant::now().checked_add(reauth_after(ms)));
        Ok(())
    }

    /// The SCRAM exchange; answers the session lifetime the server gave.
    async fn scram(&mut self, login: &ClientLogin, mechanism: Mechanism) -> io::Result<i64> {
        let nonce = client_nonce().map_err(|e| self.refused(login, e))?;
        let mut client = ScramClient::new(mechanism, &login.username, nonce);
        let first = self.sasl_round(login, client.client_first()).await?;
        let server_first = client
            .server_first(&first.auth_bytes)
            .map_err(|e| self.refused(login, e))?;
        let salted = salted_password(mechanism, &login.password, &server_first).await?;
        let client_final = client.client_final(&server_first, &salted);
        let last = self.sasl_round(login, client_final).await?;
        client
            .server_final(&last.auth_bytes)
            .map_err(|e| self.refused(login, e))?;
        Ok(last.session_lifetime_ms)
    }

    /// One SaslAuthenticate; an error code is a refused login.
    async fn sasl_round(
        &mut self,
        login: &ClientLogin,
        token: Vec<u8>,
    ) -> io::Result<SaslAuthenticateResponse> {
        let answer: SaslAuthenticateResponse = self
            .call(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
            )
            .await?;
        if answer.error_code != 0 {
            let message = answer.error_message.as_deref().unwrap_or("").to_owned();
            return Err(self.refused(login, format!("error {}: {message}", answer.error_code)));
        }
        Ok(answer)
    }

    /// One request and its answer on the raw stream.
    async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> io::Result<Resp>
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame =
            crate::cli::client::encode_frame(key, version, self.correlation_id, CLIENT_ID, request)
                .map_err(|e| io::Error::other(e.to_string()))?;
        self.stream.write_all(frame).await?;
        let head = self.stream.read_exact(4).await?;
        let len = <[u8; 4]>::try_from(head.as_slice())
            .map(i32::from_be_bytes)
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l <= SASL_RESPONSE_BYTES_MAX)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad SASL answer size"))?;
        let body = Bytes::from(self.stream.read_exact(len).await?);
        crate::cli::client::decode_frame(key, version, self.correlation_id, body)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// When to re-authenticate in a session of `lifetime_ms` (`REAUTH_SHARE` of it).
fn reauth_after(lifetime_ms: u64) -> Duration {
    let share = (lifetime_ms as f64 * REAUTH_SHARE) as u64; // `as` saturates
    Duration::from_millis(share)
}

/// 24 random bytes as hex (alphanumeric, as Kafka's nonces).
fn client_nonce() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

type SaltedKey = (Mechanism, Vec<u8>, u32);

/// Hi(password, salt, i), from a small cache or computed on a blocking thread (PBKDF2 would
/// stall the shard for milliseconds).
async fn salted_password(
    mechanism: Mechanism,
    password: &str,
    first: &sasl_client::ServerFirst,
) -> io::Result<Vec<u8>> {
    static CACHE: Mutex<Vec<(SaltedKey, Vec<u8>)>> = Mutex::new(Vec::new());
    let key: SaltedKey = (mechanism, first.salt.clone(), first.iterations);
    let cached = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone());
    if let Some(salted) = cached {
        return Ok(salted);
    }
    let (password, salt, iterations) = (password.to_owned(), key.1.clone(), key.2);
    let salted = compio::runtime::spawn_blocking(move || {
        mechanism.salted_password(password.as_bytes(), &salt, iterations)
    })
    .await
    .map_err(|_| io::Error::other("PBKDF2 task failed"))?;
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= SALTED_CACHE_ENTRIES {
        cache.remove(0);
    }
    cache.push((key, salted.clone()));
    Ok(salted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listeners: &str, map: &str) -> BrokerConfig {
        let mut c = BrokerConfig::default();
        c.listener.listeners = Some(listeners.into());
        c.listener.listener_security_protocol_map = map.into();
        c
    }

    #[test]
    fn reauthentication_is_due_at_85_percent_without_overflow() {
        assert_eq!(reauth_after(2000), Duration::from_millis(1700));
        // The other broker's number: saturates, and adding it to now does not panic.
        let huge = reauth_after(u64::MAX);
        assert!(huge >= Duration::from_millis(u64::MAX / 2));
        let _ = Instant::now().checked_add(huge);
    }

    #[test]
    fn the_listener_is_resolved_as_kafka_does() {
        let map = "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,SECURE:SASL_SSL";
        let mut c = config(
            "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0,SECURE://127.0.0.1:0",
            map,
        );
        assert_eq!(settings(&c).unwrap().listener, "PLAINTEXT", "the default");
        c.listener.inter_broker_listener_name = Some("internal".into());
        let resolved = settings(&c).unwrap();
        assert_eq!(resolved.listener, "INTERNAL");
        assert!(resolved.tls.is_none());
        c.listener.security_inter_broker_protocol = Some("PLAINTEXT".into());
        assert!(settings(&c).is_err(), "both set");
        c.listener.security_inter_broker_protocol = None;
        c.listener.inter_broker_listener_name = Some("MISSING".into());
        assert!(settings(&c).is_err(), "not a listener");
        // SASL between brokers needs a supported mechanism and the broker's login.
        c.listener.inter_broker_listener_name = Some("SECURE".into());
        let refused = settings(&c).unwrap_err().to_string();
        assert!(
            refused.contains("sasl.mechanism.inter.broker.protocol"),
            "GSSAPI: {refused}"
        );
        c.sasl.sasl_mechanism_inter_broker_protocol = "SCRAM-SHA-1".into();
        let refused = settings(&c).unwrap_err().to_string();
        assert!(
            refused.contains("sasl.mechanism.inter.broker.protocol"),
            "{refused}"
        );
        c.sasl.sasl_mechanism_inter_broker_protocol = "SCRAM-SHA-512".into();
        c.sasl.sasl_enabled_mechanisms = "PLAIN".into();
        let refused = settings(&c).unwrap_err().to_string();
        assert!(
            refused.contains("sasl.enabled.mechanisms"),
            "not enabled: {refused}"
        );
        c.sasl.sasl_enabled_mechanisms = "SCRAM-SHA-512".into();
        let refused = settings(&c).unwrap_err().to_string();
        assert!(
            refused.contains("listener.name.secure.scram-sha-512.sasl.jaas.config"),
            "no JAAS config: {refused}"
        );
        c.sasl.sasl_jaas_config = Some("nonsense".into());
        let refused = settings(&c).unwrap_err().to_string();
        assert!(refused.contains("sasl.jaas.config"), "{refused}");
        c.sasl.sasl_jaas_config = Some(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"fallback\" password=\"x\";"
                .into(),
        );
        c.listener.listener_overrides.insert(
            "listener.name.secure.scram-sha-512.sasl.jaas.config".into(),
            "org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"broker\" password=\"broker-secret\";"
                .into(),
        );
        // SASL_SSL needs a truststore (no certificates in this unit test): SASL_PLAINTEXT.
        c.listener.listener_security_protocol_map =
            "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,SECURE:SASL_PLAINTEXT".into();
        let resolved = settings(&c).unwrap();
        let login = resolved.sasl.unwrap();
        assert_eq!(
            login.username, "broker",
            "the listener's own JAAS config first"
        );
        assert_eq!(login.password, "broker-secret");
        c.listener.listener_overrides.clear();
        assert_eq!(settings(&c).unwrap().sasl.unwrap().username, "fallback");
        // SSL without a truststore cannot verify the other brokers.
        let mut ssl = config("SSL://127.0.0.1:0", "SSL:SSL");
        ssl.listener.security_inter_broker_protocol = Some("SSL".into());
        assert!(settings(&ssl).is_err());
    }
}
