//! Connections this broker opens to other brokers (replica fetchers, and any later
//! broker-to-broker RPC): Kafka's `inter.broker.listener.name` / `security.inter.broker.protocol`
//! choose the listener of the other broker's registration to dial, and its security protocol
//! decides whether the connection is TLS (rustls client, the broker's keystore as client
//! certificate, its truststore to verify the other broker).
//!
//! The settings are the process's (one broker per process), installed once at start
//! ([`install`]) from the inter-broker listener's effective config (`listener.name.<l>.ssl.*`
//! applied); without them (unit tests, a controller-only node) connections are plaintext to a
//! broker's first endpoint, as before.
//!
//! Invariants: a TLS connection is used only after its handshake completed and the peer's
//! certificate verified for the dialled address; a connection is used by one task, one request
//! at a time (the rustls session is never shared), ciphertext read ahead is kept for the next
//! read; every read is bounded by what the caller asks (`read_exact`) plus one TLS record.
//! SASL inter-broker protocols are refused at start (no client-side SASL yet).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;

use crate::config::{BrokerConfig, ConfigError};
use crate::security::listener::SecurityProtocol;

/// Ciphertext read from the socket at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// The inter-broker listener and how to speak to it.
#[derive(Debug)]
pub struct InterBroker {
    /// Upper-case listener name, as registered by every broker.
    pub listener: String,
    pub protocol: SecurityProtocol,
    /// The TLS client config when `protocol` uses TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
        &config.inter_broker_listener_name,
        &config.security_inter_broker_protocol,
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
    let explicit = config.inter_broker_listener_name.is_some();
    let Some(spec) = specs.iter().find(|s| s.name == listener) else {
        if !explicit && config.security_inter_broker_protocol.is_none() {
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
    if protocol.uses_sasl() {
        return Err(invalid(
            "inter.broker.listener.name",
            format!(
                "{listener} is {}: SASL between brokers is not supported yet (use SSL or PLAINTEXT)",
                protocol.name()
            ),
        ));
    }
    let tls = if protocol.uses_tls() {
        let dynamic = crate::security::listener_configs::load(&config.data_dir)
            .map_err(|e| invalid("inter.broker.listener.name", e.to_string()))?;
        let effective = crate::security::config::listener_config(config, &listener, &dynamic)?;
        Some(crate::security::tls::client_config(&effective)?)
    } else {
        None
    };
    Ok(InterBroker {
        listener,
        protocol,
        tls,
    })
}

/// Installs this process's inter-broker settings (once, at start; later calls are ignored).
pub fn install(config: &BrokerConfig) -> Result<(), ConfigError> {
    let resolved = settings(config)?;
    tracing::info!(
        listener = %resolved.listener,
        protocol = resolved.protocol.name(),
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

/// A connection to another broker: plaintext, or TLS over the inter-broker listener.
pub enum BrokerStream {
    Plain(TcpStream),
    Tls(Box<TlsClient>),
}

impl BrokerStream {
    /// Dials `addr` with the installed settings (TLS when the inter-broker listener uses it).
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        match installed().and_then(|s| s.tls.clone()) {
            None => Ok(Self::Plain(tcp)),
            Some(config) => Ok(Self::Tls(Box::new(
                TlsClient::handshake(tcp, config, addr).await?,
            ))),
        }
    }

    pub async fn write_all(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => {
                let BufResult(res, _) = tcp.write_all(bytes).await;
                res
            }
            Self::Tls(tls) => tls.write_all(&bytes).await,
        }
    }

    /// Reads exactly `len` bytes.
    pub async fn read_exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Self::Plain(tcp) => {
                let BufResult(res, buf) =
                    tcp.read_exact(Vec::with_capacity(len).slice(..len)).await;
                res.map(|()| buf.into_inner())
            }
            Self::Tls(tls) => tls.read_exact(len).await,
        }
    }
}

/// rustls's sans-I/O client session over a compio socket, used by one task.
pub struct TlsClient {
    tcp: TcpStream,
    session: rustls::ClientConnection,
    /// Ciphertext received but not yet taken by rustls.
    pending: Vec<u8>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsClient {
    /// Runs the client handshake, verifying the peer's certificate for `addr`'s IP address.
    async fn handshake(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        addr: SocketAddr,
    ) -> io::Result<Self> {
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let session = rustls::ClientConnection::new(config, name).map_err(tls_error)?;
        let mut client = Self {
            tcp,
            session,
            pending: Vec::new(),
        };
        while client.session.is_handshaking() {
            client.flush().await?;
            if client.session.is_handshaking() {
                client.receive().await?;
            }
        }
        client.flush().await?;
        Ok(client)
    }

    /// Sends every TLS record rustls has queued.
    async fn flush(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            let mut out = Vec::new();
            self.session.write_tls(&mut out)?;
            let BufResult(res, _) = self.tcp.write_all(out).await;
            res?;
        }
        Ok(())
    }

    /// Reads ciphertext (unless some is pending) and feeds it to rustls; a TLS error sends
    /// rustls's alert before failing.
    async fn receive(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            let BufResult(res, buf) = self.tcp.read(Vec::with_capacity(READ_CHUNK_BYTES)).await;
            if res? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the other broker closed the connection",
                ));
            }
            self.pending = buf;
        }
        let mut rest: &[u8] = &self.pending;
        let taken = self.session.read_tls(&mut rest)?;
        self.pending.drain(..taken);
        if let Err(e) = self.session.process_new_packets() {
            let _ = self.flush().await;
            return Err(tls_error(e));
        }
        Ok(())
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.session.writer().write_all(bytes)?;
        self.flush().await
    }

    async fn read_exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self
                .session
                .reader()
                .read(out.get_mut(filled..).unwrap_or_default())
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the other broker closed the TLS session",
                    ))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.receive().await?;
                    self.flush().await?; // e.g. a KeyUpdate answer
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listeners: &str, map: &str) -> BrokerConfig {
        BrokerConfig {
            listeners: Some(listeners.into()),
            listener_security_protocol_map: map.into(),
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn the_listener_is_resolved_as_kafka_does() {
        let map = "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,SECURE:SASL_SSL";
        let mut c = config(
            "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0,SECURE://127.0.0.1:0",
            map,
        );
        assert_eq!(settings(&c).unwrap().listener, "PLAINTEXT", "the default");
        c.inter_broker_listener_name = Some("internal".into());
        let resolved = settings(&c).unwrap();
        assert_eq!(resolved.listener, "INTERNAL");
        assert!(resolved.tls.is_none());
        c.security_inter_broker_protocol = Some("PLAINTEXT".into());
        assert!(settings(&c).is_err(), "both set");
        c.security_inter_broker_protocol = None;
        c.inter_broker_listener_name = Some("MISSING".into());
        assert!(settings(&c).is_err(), "not a listener");
        c.inter_broker_listener_name = Some("SECURE".into());
        let refused = settings(&c).unwrap_err().to_string();
        assert!(refused.contains("SASL"), "{refused}");
        // SSL without a truststore cannot verify the other brokers.
        let mut ssl = config("SSL://127.0.0.1:0", "SSL:SSL");
        ssl.security_inter_broker_protocol = Some("SSL".into());
        assert!(settings(&ssl).is_err());
    }
}
