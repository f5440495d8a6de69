//! Kafka's listener settings: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, parsed into one `ListenerSpec` per listener.
//!
//! Invariants: listener names are unique and each has a security protocol in the map; every
//! advertised listener names a configured listener; without `listeners` there is exactly one
//! PLAINTEXT listener named PLAINTEXT on `listen` (the behaviour before listeners existed).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::config::ConfigError;

/// Kafka's four security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// One configured listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Upper-case name, as Kafka normalises it.
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    /// Advertised host and port; `None` = derived from the bound address.
    pub advertised: Option<(String, u16)>,
}

fn invalid(key: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { key, reason }
}

/// Splits `NAME://HOST:PORT` (host may be empty for "all interfaces", IPv6 in brackets).
fn split_endpoint(key: &'static str, entry: &str) -> Result<(String, String, u16), ConfigError> {
    let entry = entry.trim();
    let (name, rest) = entry
        .split_once("://")
        .ok_or_else(|| invalid(key, format!("{entry:?} is not NAME://HOST:PORT")))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, format!("{entry:?} has no port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, format!("{entry:?} has a bad port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return Err(invalid(key, format!("{entry:?} has no listener name")));
    }
    Ok((name.to_ascii_uppercase(), host.to_owned(), port))
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
pub fn parse_protocol_map(text: &str) -> Result<HashMap<String, SecurityProtocol>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    let mut map = HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| invalid(KEY, format!("{entry:?} is not NAME:PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(protocol)
            .ok_or_else(|| invalid(KEY, format!("unknown security protocol in {entry:?}")))?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

/// Kafka's `checkDuplicateListenerPorts`: each listener needs its own port (port 0 picks one
/// each), unless one is IPv4 and the other IPv6. The shards bind with SO_REUSEPORT, so two
/// listeners on one port would otherwise split the connections between them.
fn refuse_shared_ports(specs: &[ListenerSpec], text: &str) -> Result<(), ConfigError> {
    let shared = specs.iter().enumerate().any(|(i, a)| {
        specs.iter().skip(i + 1).any(|b| {
            a.bind.port() != 0
                && a.bind.port() == b.bind.port()
                && a.bind.is_ipv4() == b.bind.is_ipv4()
        })
    });
    if shared {
        return Err(invalid(
            "listeners",
            format!("Each listener must have a different port, listeners: {text}"),
        ));
    }
    Ok(())
}

/// The listeners the broker binds, from `listeners` (or `listen` alone).
pub fn parse(
    listen: &str,
    listeners: Option<&str>,
    advertised: Option<&str>,
    protocol_map: &str,
) -> Result<Vec<ListenerSpec>, ConfigError> {
    let map = parse_protocol_map(protocol_map)?;
    let mut specs = Vec::new();
    match listeners {
        None => {
            let bind = listen.parse().map_err(|e: std::net::AddrParseError| {
                invalid("listen", format!("{listen:?}: {e}"))
            })?;
            specs.push(ListenerSpec {
                name: "PLAINTEXT".to_owned(),
                protocol: SecurityProtocol::Plaintext,
                bind,
                advertised: None,
            });
        }
        Some(text) => {
            for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
                let (name, host, port) = split_endpoint("listeners", entry)?;
                let protocol = *map.get(&name).ok_or_else(|| {
                    invalid(
                        "listener.security.protocol.map",
                        format!("listener {name} has no security protocol"),
                    )
                })?;
                let ip: std::net::IpAddr = match host.as_str() {
                    "" | "0.0.0.0" => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
                    other => other.parse().map_err(|_| {
                        invalid(
                            "listeners",
                            format!("{entry:?}: host must be an IP address"),
                        )
                    })?,
                };
                if specs.iter().any(|s: &ListenerSpec| s.name == name) {
                    return Err(invalid("listeners", format!("listener {name} twice")));
                }
                specs.push(ListenerSpec {
                    name,
                    protocol,
                    bind: SocketAddr::new(ip, port),
                    advertised: None,
                });
            }
            if specs.is_empty() {
                return Err(invalid("listeners", "no listener".to_owned()));
            }
            refuse_shared_ports(&specs, text)?;
        }
    }
    if let Some(text) = advertised {
        for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
            let (name, host, port) = split_endpoint("advertised.listeners", entry)?;
            let spec = specs.iter_mut().find(|s| s.name == name).ok_or_else(|| {
                invalid(
                    "advertised.listeners",
                    format!("{name} is not in listeners"),
                )
            })?;
            if host.is_empty() {
                return Err(invalid(
                    "advertised.listeners",
                    format!("{entry:?} has no host"),
                ));
            }
            spec.advertised = Some((host, port));
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

    #[test]
    fn without_listeners_one_plaintext_listener_on_listen() {
        let specs = parse("127.0.0.1:9092", None, None, MAP).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, "PLAINTEXT");
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[0].bind.port(), 9092);
    }

    #[test]
    fn several_listeners_and_advertised() {
        let specs = parse(
            "127.0.0.1:1",
            Some("PLAINTEXT://127.0.0.1:9092,ssl://:9093,INTERNAL://127.0.0.1:9094"),
            Some("SSL://broker.example:19093"),
            &format!("{MAP},INTERNAL:SASL_SSL"),
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[1].name, "SSL");
        assert!(specs[1].bind.ip().is_unspecified());
        assert_eq!(
            specs[1].advertised,
            Some(("broker.example".to_owned(), 19093))
        );
        assert_eq!(specs[2].protocol, SecurityProtocol::SaslSsl);
        assert!(specs[2].protocol.uses_tls() && specs[2].protocol.uses_sasl());
    }

    #[test]
    fn bad_listener_settings_are_rejected() {
        assert!(parse("x", Some("FOO://127.0.0.1:1"), None, MAP).is_err());
        assert!(parse("x", Some("PLAINTEXT://127.0.0.1"), None, MAP).is_err());
        assert!(parse(
            "x",
            Some("PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2"),
            None,
            MAP
        )
        .is_err());
        assert!(parse("x", Some("PLAINTEXT://127.0.0.1:1"), Some("SSL://h:1"), MAP).is_err());
        assert!(parse_protocol_map("A:TLS").is_err());
        assert!(parse("x", Some(""), None, MAP).is_err());
    }
}

#[cfg(test)]
mod shared_port_tests {
    use super::*;

    const MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

    #[test]
    fn two_listeners_on_one_port_are_refused_as_kafka_does() {
        let err = parse(
            "x",
            Some("PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9092"),
            None,
            MAP,
        )
        .unwrap_err();
        assert!(err.to_string().contains("different port"), "{err}");
        // Port 0 picks a port per listener; an IPv4 and an IPv6 listener may share one.
        assert!(parse(
            "x",
            Some("PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
            None,
            MAP
        )
        .is_ok());
        assert!(parse(
            "x",
            Some("PLAINTEXT://127.0.0.1:9092,SSL://[::1]:9092"),
            None,
            MAP
        )
        .is_ok());
    }
}
