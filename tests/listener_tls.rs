//! Per-listener settings and certificate reload, over real brokers: `listener.name.<l>.ssl.*`
//! and `sasl.enabled.mechanisms` overrides give two listeners of one broker their own
//! certificate, client-auth rule and mechanisms; IncrementalAlterConfigs of
//! `listener.name.<l>.ssl.keystore.location` on this broker reloads the keystore without a
//! restart (also when the same path now holds a renewed certificate), refuses a keystore with
//! another identity, a bad file, the cluster-default resource and non-dynamic keys (nothing
//! changes then), and the reloaded keystore survives a restart.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use common::certs::{self, TestPki};
use common::sasl::{listener, request};
use common::wire;
use common::{Broker, BrokerOpts};

const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;
const BROKER: i8 = 4;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn client_config(pki: &TestPki, client_cert: bool) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("add ca");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = if client_cert {
        let chain = CertificateDer::pem_file_iter(&pki.client_cert)
            .expect("cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("cert pem");
        let key = PrivateKeyDer::from_pem_file(&pki.client_key).expect("key pem");
        builder
            .with_client_auth_cert(chain, key)
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

/// The certificate the listener at `addr` presents (DER), or None when the TLS session or the
/// first request failed (e.g. a client certificate was required).
fn server_cert(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Option<Vec<u8>> {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("client conn");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let answered: Option<MetadataResponse> = request(
        &mut tls,
        ApiKey::Metadata,
        12,
        1,
        &MetadataRequest::default(),
    );
    answered?;
    let cert = tls.conn.peer_certificates()?.first()?.to_vec();
    Some(cert)
}

fn file_cert(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let first = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .expect("pem")
        .next()
        .expect("a certificate")
        .expect("pem cert");
    first.to_vec()
}

fn set_keystore(addr: SocketAddr, resource: &str, key: &str, value: &str) -> (i16, String) {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(resource))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        wire::call(addr, ApiKey::IncrementalAlterConfigs, 1, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

fn pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::tempdir().expect("pki dir");
    let pki = certs::generate(dir.path());
    (dir, pki)
}

#[test]
fn listeners_take_their_own_ssl_and_sasl_settings() {
    let (_dir, pki) = pki();
    let toml = format!(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"\n\
         \"listener.security.protocol.map\" = \"PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT\"\n\
         \"ssl.keystore.location\" = {:?}\n\
         \"ssl.truststore.location\" = {:?}\n\
         \"listener.name.internal.ssl.keystore.location\" = {:?}\n\
         \"listener.name.internal.ssl.client.auth\" = \"required\"\n\
         \"listener.name.sasl_plaintext.sasl.enabled.mechanisms\" = \"PLAIN\"\n",
        pki.broker.display().to_string(),
        pki.ca.display().to_string(),
        pki.broker_other.display().to_string(),
    );
    let broker = Broker::start(BrokerOpts::default().config(&toml));
    let ssl = listener(&broker, "SSL");
    let internal = listener(&broker, "INTERNAL");
    assert_eq!(
        server_cert(ssl, client_config(&pki, false)),
        Some(file_cert(&pki.broker))
    );
    assert_eq!(
        server_cert(internal, client_config(&pki, false)),
        None,
        "INTERNAL requires a client certificate"
    );
    assert_eq!(
        server_cert(internal, client_config(&pki, true)),
        Some(file_cert(&pki.broker_other))
    );
    let mut sasl = wire::connect(listener(&broker, "SASL_PLAINTEXT"));
    let hs: SaslHandshakeResponse = request(
        &mut sasl,
        ApiKey::SaslHandshake,
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-512")),
    )
    .expect("handshake answered");
    assert_eq!(hs.error_code, 33, "SCRAM is not enabled on this listener");
    let names: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["PLAIN"]);
}

#[test]
fn a_listener_with_an_unknown_override_does_not_start() {
    let dir = tempfile::tempdir().expect("dir");
    let toml = "listeners = \"PLAINTEXT://127.0.0.1:0\"\n\
                \"listener.name.nosuch.ssl.client.auth\" = \"required\"\n";
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, toml).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run sluice");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listener.name.nosuch"), "{stderr}");
}

#[test]
fn alter_configs_reloads_a_listeners_keystore_without_restart() {
    let (dir, pki) = pki();
    // The keystore the broker starts with is a copy the test can overwrite.
    let live = dir.path().join("live.pem");
    std::fs::copy(&pki.broker, &live).expect("copy");
    let toml = format!(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0\"\n\
         \"ssl.keystore.location\" = {:?}\n\
         \"ssl.truststore.location\" = {:?}\n",
        live.display().to_string(),
        pki.ca.display().to_string(),
    );
    let mut broker = Broker::start(BrokerOpts::default().config(&toml));
    let admin = broker.socket_addr();
    let client = client_config(&pki, false);
    let original = file_cert(&pki.broker);
    let renewed = file_cert(&pki.broker_renewed);
    assert_eq!(
        server_cert(listener(&broker, "SSL"), client.clone()),
        Some(original.clone())
    );

    // A renewed file at the same path is not picked up by itself (Kafka does not watch files).
    std::fs::copy(&pki.broker_renewed, &live).expect("renew");
    assert_eq!(
        server_cert(listener(&broker, "SSL"), client.clone()),
        Some(original.clone())
    );

    let key = "listener.name.ssl.ssl.keystore.location";
    let live_path = live.display().to_string();
    // Refused: the cluster default, a key that is not dynamic, another identity, a bad file.
    assert_eq!(set_keystore(admin, "", key, &live_path).0, INVALID_REQUEST);
    assert_eq!(
        set_keystore(admin, "0", "listener.name.ssl.ssl.client.auth", "required").0,
        INVALID_REQUEST
    );
    let other = pki.broker_other.display().to_string();
    let (code, message) = set_keystore(admin, "0", key, &other);
    assert_eq!(code, INVALID_CONFIG, "{message}");
    assert!(message.contains("do not match"), "{message}");
    let missing = dir.path().join("missing.pem").display().to_string();
    assert_eq!(set_keystore(admin, "0", key, &missing).0, INVALID_CONFIG);
    assert_eq!(
        server_cert(listener(&broker, "SSL"), client.clone()),
        Some(original)
    );

    // The same path again: the renewed certificate is loaded, no restart.
    assert_eq!(
        set_keystore(admin, "0", key, &live_path),
        (0, String::new())
    );
    assert_eq!(
        server_cert(listener(&broker, "SSL"), client.clone()),
        Some(renewed.clone())
    );

    // A new path, persisted: it is what the restarted broker serves.
    let moved = dir.path().join("moved.pem");
    std::fs::copy(&pki.broker_renewed, &moved).expect("copy");
    std::fs::write(&live, b"not a keystore").expect("break the old path");
    let moved_path = moved.display().to_string();
    assert_eq!(set_keystore(admin, "0", key, &moved_path).0, 0);
    let described: DescribeConfigsResponse = wire::call(
        admin,
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s("0"))
            .with_configuration_keys(Some(vec![s(key)]))]),
    );
    let entry = &described.results[0].configs[0];
    assert_eq!(
        (
            entry.value.as_ref().map(|v| v.to_string()),
            entry.config_source
        ),
        (Some(moved_path.clone()), 2),
        "DYNAMIC_BROKER_CONFIG"
    );
    broker.restart();
    assert_eq!(
        server_cert(last_listener(&broker, "SSL"), client),
        Some(renewed)
    );
}

/// The listener's address from the broker's latest start (the log keeps earlier runs).
fn last_listener(broker: &Broker, name: &str) -> SocketAddr {
    let log = broker.log_text();
    let needle = format!("listener name={name} ");
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no listener {name}"));
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listening="))
        .unwrap_or_else(|| panic!("no address in {line}"));
    addr.parse().expect("address")
}

#[test]
fn ssl_allow_dn_changes_lets_a_listener_take_another_identity() {
    let (_dir, pki) = pki();
    let toml = format!(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0\"\n\
         \"ssl.keystore.location\" = {:?}\n\
         \"listener.name.ssl.ssl.allow.dn.changes\" = \"true\"\n",
        pki.broker.display().to_string(),
    );
    let broker = Broker::start(BrokerOpts::default().config(&toml));
    let other = pki.broker_other.display().to_string();
    let key = "listener.name.ssl.ssl.keystore.location";
    assert_eq!(
        set_keystore(broker.socket_addr(), "0", key, &other),
        (0, String::new())
    );
    assert_eq!(
        server_cert(listener(&broker, "SSL"), client_config(&pki, false)),
        Some(file_cert(&pki.broker_other))
    );
}
