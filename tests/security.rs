//! Security over real brokers: listeners and the address Metadata advertises on each, TLS and
//! mTLS (rustls client, certificates from rcgen), SASL PLAIN and SCRAM over SaslAuthenticate
//! v2 and over v0 raw frames, the SCRAM admin APIs and their errors, and bad input: wrong
//! passwords, a SASL frame before the handshake, a request before authentication, an oversized
//! SASL token, a TLS handshake that stops halfway, plaintext on a TLS port, a client
//! certificate from another CA. Each is refused and the broker keeps serving.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, MetadataRequest,
    MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice::security::scram::Mechanism;

use common::certs::{self, TestPki};
use common::sasl::{
    authenticate, create_user, handshake, listener, read_frame, request, scram_login,
};
use common::wire;
use common::{Broker, BrokerOpts};

const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

fn pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::tempdir().expect("pki dir");
    let pki = certs::generate(dir.path());
    (dir, pki)
}

/// A broker with PLAINTEXT (first, so `Broker::addr` is it), SSL, SASL_SSL and SASL_PLAINTEXT.
fn secure_broker(pki: &TestPki, client_auth: &str, extra: &str) -> Broker {
    let toml = format!(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"\n\
         \"ssl.keystore.location\" = {:?}\n\
         \"ssl.truststore.location\" = {:?}\n\
         \"ssl.client.auth\" = {client_auth:?}\n{extra}",
        pki.broker.display().to_string(),
        pki.ca.display().to_string(),
    );
    Broker::start(BrokerOpts::default().config(&toml))
}

fn tls_client_config(
    pki: &TestPki,
    client_cert: Option<(&Path, &Path)>,
) -> Arc<rustls::ClientConfig> {
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
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("cert pem");
            let key = PrivateKeyDer::from_pem_file(key).expect("key pem");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
    };
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("client conn");
    rustls::StreamOwned::new(conn, tcp)
}

/// True once the peer closed (EOF, reset or TLS close), false if it sent more bytes.
fn closed<S: Read>(stream: &mut S) -> bool {
    let mut byte = [0u8; 1];
    !matches!(stream.read(&mut byte), Ok(n) if n > 0)
}

fn metadata<S: Read + Write>(stream: &mut S, correlation_id: i32) -> Option<MetadataResponse> {
    request(
        stream,
        ApiKey::Metadata,
        12,
        correlation_id,
        &MetadataRequest::default(),
    )
}

#[test]
fn metadata_advertises_the_listener_the_client_connected_on_over_tls() {
    let (_dir, pki) = pki();
    let broker = secure_broker(&pki, "none", "");
    let ssl = listener(&broker, "SSL");
    let mut tls = tls_connect(ssl, tls_client_config(&pki, None));
    let md = metadata(&mut tls, 5).expect("metadata over TLS");
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(
        md.brokers[0].port,
        i32::from(ssl.port()),
        "SSL listener advertised"
    );
    let mut plain = wire::connect(broker.socket_addr());
    plain
        .set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    let md = metadata(&mut plain, 6).expect("metadata over PLAINTEXT");
    assert_eq!(md.brokers[0].port, i32::from(broker.socket_addr().port()));
    // A SASL handshake on a listener without SASL: ILLEGAL_SASL_STATE, as Kafka answers.
    assert_eq!(handshake(&mut tls, "PLAIN", 1), ILLEGAL_SASL_STATE);
}

#[test]
fn tls_bad_input_is_refused_and_the_broker_keeps_serving() {
    let (_dir, pki) = pki();
    let broker = secure_broker(&pki, "required", "\"authentication.timeout.ms\" = 1500\n");
    let ssl = listener(&broker, "SSL");
    // 1. A handshake that stops halfway: the start of a ClientHello, then nothing.
    let mut half = TcpStream::connect(ssl).expect("connect");
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    half.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .expect("partial hello");
    let started = Instant::now();
    assert!(closed(&mut half), "half handshake closed");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed by authentication.timeout.ms"
    );
    // 2. Plaintext Kafka on the TLS port.
    let mut plain = TcpStream::connect(ssl).expect("connect");
    plain
        .set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    plain
        .write_all(&wire::frame(&wire::request_header(
            wire::API_VERSIONS,
            0,
            1,
            false,
        )))
        .expect("write");
    assert!(
        read_frame(&mut plain).is_none(),
        "no Kafka answer in clear text"
    );
    // 3. A client certificate from another CA, and 4. none where one is required.
    for cert in [
        Some((pki.rogue_cert.as_path(), pki.rogue_key.as_path())),
        None,
    ] {
        let mut tls = tls_connect(ssl, tls_client_config(&pki, cert));
        assert!(metadata(&mut tls, 1).is_none(), "refused: {cert:?}");
    }
    // The right certificate works, on a broker that handled all of the above.
    let good = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let mut tls = tls_connect(ssl, tls_client_config(&pki, good));
    let md = metadata(&mut tls, 2).expect("mTLS metadata");
    assert_eq!(md.brokers[0].port, i32::from(ssl.port()));
    let log = broker.log_text();
    assert!(log.contains("TLS handshake timed out"), "audit: {log}");
    assert!(log.contains("TLS handshake failed"), "audit: {log}");
}

#[test]
fn sasl_plain_and_scram_authenticate_and_bad_credentials_are_refused() {
    let (_dir, pki) = pki();
    let broker = secure_broker(&pki, "none", "");
    create_user(&broker, "alice", "alice-pw", Mechanism::Sha512);
    create_user(&broker, "bob", "bob-pw", Mechanism::Sha256);
    let sasl_ssl = listener(&broker, "SASL_SSL");
    let sasl_plain = listener(&broker, "SASL_PLAINTEXT");
    let tls = || tls_connect(sasl_ssl, tls_client_config(&pki, None));

    // SCRAM-SHA-512 over TLS, then a normal request.
    let mut s = tls();
    assert_eq!(
        scram_login(&mut s, Mechanism::Sha512, "alice", "alice-pw").error_code,
        0
    );
    let md = metadata(&mut s, 9).expect("metadata after SCRAM");
    assert_eq!(md.brokers[0].port, i32::from(sasl_ssl.port()));
    // SCRAM-SHA-256 over plaintext TCP.
    let mut s = wire::connect(sasl_plain);
    s.set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    assert_eq!(
        scram_login(&mut s, Mechanism::Sha256, "bob", "bob-pw").error_code,
        0
    );
    assert!(metadata(&mut s, 9).is_some());
    // PLAIN checks the password against the SCRAM credential.
    let mut s = tls();
    assert_eq!(handshake(&mut s, "PLAIN", 1), 0);
    let ok = authenticate(&mut s, b"\0alice\0alice-pw", 2).expect("plain");
    assert_eq!(ok.error_code, 0);
    assert!(metadata(&mut s, 3).is_some());

    // Wrong passwords: SASL_AUTHENTICATION_FAILED after the delay, then closed.
    for (mechanism, token) in [("PLAIN", &b"\0alice\0wrong"[..]), ("PLAIN", b"\0nobody\0x")] {
        let mut s = tls();
        assert_eq!(handshake(&mut s, mechanism, 1), 0);
        let started = Instant::now();
        let resp = authenticate(&mut s, token, 2).expect("failure answered");
        assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
        let message = resp
            .error_message
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(
            !message.contains("nobody") && !message.contains("wrong"),
            "{message}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(90),
            "answered after the delay"
        );
        assert!(closed(&mut s), "closed after a failed authentication");
    }
    let mut s = tls();
    let wrong = scram_login(&mut s, Mechanism::Sha512, "alice", "not-it");
    assert_eq!(wrong.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(closed(&mut s));
    let mut s = tls();
    assert_eq!(
        scram_login(&mut s, Mechanism::Sha512, "mallory", "x").error_code,
        SASL_AUTHENTICATION_FAILED
    );
    // A mechanism that is not enabled: UNSUPPORTED_SASL_MECHANISM, the client may try another.
    let mut s = tls();
    assert_eq!(handshake(&mut s, "GSSAPI", 1), UNSUPPORTED_SASL_MECHANISM);
    assert_eq!(
        scram_login(&mut s, Mechanism::Sha512, "alice", "alice-pw").error_code,
        0
    );
    assert!(broker
        .log_text()
        .contains("sluice::audit: authentication failed"));
}

#[test]
fn sasl_v0_raw_token_framing() {
    let (_dir, pki) = pki();
    let broker = secure_broker(&pki, "none", "");
    create_user(&broker, "carol", "carol-pw", Mechanism::Sha256);
    let mut s = wire::connect(listener(&broker, "SASL_PLAINTEXT"));
    s.set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    assert_eq!(handshake(&mut s, "PLAIN", 0), 0);
    s.write_all(&wire::frame(b"\0carol\0carol-pw"))
        .expect("raw token");
    assert_eq!(read_frame(&mut s).expect("raw response"), Vec::<u8>::new());
    assert!(
        metadata(&mut s, 4).is_some(),
        "authenticated after a v0 exchange"
    );
    // A wrong raw token: v0 cannot carry an error, the connection is closed.
    let mut s = wire::connect(listener(&broker, "SASL_PLAINTEXT"));
    s.set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    assert_eq!(handshake(&mut s, "PLAIN", 0), 0);
    s.write_all(&wire::frame(b"\0carol\0nope"))
        .expect("raw token");
    assert!(closed(&mut s));
}

#[test]
fn sasl_bad_input_closes_the_connection_and_the_broker_keeps_serving() {
    let (_dir, pki) = pki();
    let broker = secure_broker(&pki, "none", "\"sasl.server.max.receive.size\" = 1024\n");
    create_user(&broker, "dave", "dave-pw", Mechanism::Sha512);
    let addr = listener(&broker, "SASL_PLAINTEXT");
    let connect = || {
        let s = wire::connect(addr);
        s.set_read_timeout(Some(wire::REPLY_TIMEOUT))
            .expect("timeout");
        s
    };
    // A SASL frame before the handshake: ILLEGAL_SASL_STATE, then closed.
    let mut s = connect();
    let resp = authenticate(&mut s, b"\0dave\0dave-pw", 1).expect("answered");
    assert_eq!(resp.error_code, ILLEGAL_SASL_STATE);
    assert!(closed(&mut s));
    // Any other request before authentication: closed, no answer.
    let mut s = connect();
    assert!(metadata(&mut s, 1).is_none());
    // An oversized token (above sasl.server.max.receive.size): closed.
    let mut s = connect();
    assert_eq!(handshake(&mut s, "SCRAM-SHA-512", 1), 0);
    assert!(authenticate(&mut s, &vec![b'n'; 4096], 2).is_none());
    // Garbage SCRAM: failure, closed.
    let mut s = connect();
    assert_eq!(handshake(&mut s, "SCRAM-SHA-512", 1), 0);
    let resp = authenticate(&mut s, &[0xff, 0, 1, 2], 2).expect("answered");
    assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(closed(&mut s));
    // Still serving.
    let mut s = connect();
    assert_eq!(
        scram_login(&mut s, Mechanism::Sha512, "dave", "dave-pw").error_code,
        0
    );
    assert!(metadata(&mut s, 9).is_some());
}

#[test]
fn scram_credential_admin_errors_and_persistence() {
    let mut broker = Broker::start(BrokerOpts::default());
    create_user(&broker, "erin", "erin-pw", Mechanism::Sha256);
    let up = |name: &str, mechanism: i8, iterations: i32| {
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(name.to_owned()))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(Bytes::from_static(b"salt"))
            .with_salted_password(Bytes::from_static(b"0123456789abcdef0123456789abcdef"))
    };
    let del = |name: &str, mechanism: i8| {
        ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(name.to_owned()))
            .with_mechanism(mechanism)
    };
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![del("nobody", 1), del("dup", 1)])
        .with_upsertions(vec![
            up("low", 1, 100),
            up("badmech", 9, 4096),
            up("dup", 1, 4096),
            up("", 1, 4096),
            up("frank", 2, 8192),
        ]);
    let resp: AlterUserScramCredentialsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::AlterUserScramCredentials,
        0,
        &req,
    );
    let code = |user: &str| {
        resp.results
            .iter()
            .find(|r| r.user.as_str() == user)
            .unwrap_or_else(|| panic!("no result for {user:?}: {resp:?}"))
            .error_code
    };
    assert_eq!(code("nobody"), 91, "RESOURCE_NOT_FOUND");
    assert_eq!(code("dup"), 92, "DUPLICATE_RESOURCE");
    assert_eq!(code("low"), 93, "UNACCEPTABLE_CREDENTIAL");
    assert_eq!(code(""), 93, "UNACCEPTABLE_CREDENTIAL");
    assert_eq!(code("badmech"), 33, "UNSUPPORTED_SASL_MECHANISM");
    assert_eq!(code("frank"), 0);

    broker.restart();
    let describe = |users: Option<Vec<&str>>| -> DescribeUserScramCredentialsResponse {
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.into_iter()
                .map(|n| UserName::default().with_name(StrBytes::from_string(n.to_owned())))
                .collect()
        }));
        wire::call(
            broker.socket_addr(),
            ApiKey::DescribeUserScramCredentials,
            0,
            &req,
        )
    };
    let all = describe(None);
    let users: Vec<&str> = all.results.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, ["erin", "frank"], "persisted across a restart");
    let frank = all
        .results
        .iter()
        .find(|r| r.user.as_str() == "frank")
        .expect("frank");
    assert_eq!(frank.credential_infos.len(), 1);
    assert_eq!(frank.credential_infos[0].mechanism, 2);
    assert_eq!(frank.credential_infos[0].iterations, 8192);
    let some = describe(Some(vec!["erin", "ghost", "x", "x"]));
    let codes: Vec<(String, i16)> = some
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        [("erin".into(), 0), ("ghost".into(), 91), ("x".into(), 92)]
    );
    // The credentials are metadata records, persisted with the image's security part.
    let file = std::fs::read_to_string(broker.data_dir().join("__cluster/security.json"))
        .expect("store file");
    assert!(file.contains("UserScramCredential"), "{file}");
    assert!(!file.contains("erin-pw"), "no password stored");
}

/// One HTTP/1.1 request to the admin endpoint; returns the status line.
fn admin_status(addr: SocketAddr, auth: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect admin");
    stream
        .set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .expect("timeout");
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn admin_endpoint_requires_the_token_when_configured() {
    let broker = Broker::start(BrokerOpts::default().config("\"admin.auth.token\" = \"t0ken\"\n"));
    let admin = broker.admin_addr();
    assert!(admin.ip().is_loopback());
    assert!(admin_status(admin, None).contains("401"), "no token");
    assert!(
        admin_status(admin, Some("wrong")).contains("401"),
        "wrong token"
    );
    assert!(
        admin_status(admin, Some("t0ken")).contains("200"),
        "right token"
    );
    assert!(broker.log_text().contains("admin request denied"));
}

#[test]
fn kip368_sessions_expire_unless_the_client_reauthenticates() {
    let (_dir, pki) = pki();
    let broker = secure_broker(&pki, "none", "\"connections.max.reauth.ms\" = 3000\n");
    create_user(&broker, "gina", "gina-pw", Mechanism::Sha512);
    create_user(&broker, "hank", "hank-pw", Mechanism::Sha512);
    let addr = listener(&broker, "SASL_PLAINTEXT");
    let connect = || {
        let s = wire::connect(addr);
        s.set_read_timeout(Some(wire::REPLY_TIMEOUT))
            .expect("timeout");
        s
    };
    // The lifetime is announced; past it, the next request closes the connection.
    let mut lazy = connect();
    let done = scram_login(&mut lazy, Mechanism::Sha512, "gina", "gina-pw");
    assert_eq!(done.error_code, 0);
    assert_eq!(done.session_lifetime_ms, 3000);
    // Re-authenticating in-band (same user and mechanism) extends the session.
    let mut diligent = connect();
    assert_eq!(
        scram_login(&mut diligent, Mechanism::Sha512, "gina", "gina-pw").error_code,
        0
    );
    std::thread::sleep(Duration::from_millis(1800));
    assert_eq!(
        scram_login(&mut diligent, Mechanism::Sha512, "gina", "gina-pw").error_code,
        0
    );
    assert!(metadata(&mut diligent, 10).is_some());
    std::thread::sleep(Duration::from_millis(1800));
    assert!(metadata(&mut lazy, 11).is_none(), "expired session closed");
    assert!(
        metadata(&mut diligent, 12).is_some(),
        "re-authenticated session still open"
    );
    // Re-authentication as someone else fails and closes.
    let resp = scram_login(&mut diligent, Mechanism::Sha512, "hank", "hank-pw");
    assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(closed(&mut diligent));
}

/// Record count of a fetch response's record bytes, from the v2 batch headers (base offset i64,
/// batch length i32, ..., record count i32 at byte 57), checking offsets are contiguous.
fn count_records(mut bytes: &[u8], mut next_offset: i64) -> i64 {
    let mut count = 0;
    while bytes.len() >= 61 {
        let base = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let records = i32::from_be_bytes(bytes[57..61].try_into().expect("4 bytes"));
        let total = 12 + usize::try_from(len).expect("length");
        if bytes.len() < total {
            break; // a partial batch at the end of a fetch is allowed
        }
        assert_eq!(base, next_offset, "contiguous batches");
        next_offset += i64::from(records);
        count += i64::from(records);
        bytes = &bytes[total..];
    }
    count
}

#[test]
fn large_fetch_over_tls_takes_the_copy_path_intact() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    let (_dir, pki) = pki();
    let broker = secure_broker(&pki, "none", "");
    let topic = common::unique_name("tls-fetch");
    common::kafka::create_topic(&broker, &topic, 1);
    let records = common::kafka::keyed_records(2_000, 10, 2_000);
    let producer = common::kafka::producer(&broker, &[]);
    common::kafka::assert_all_acked(&common::kafka::produce(
        &producer,
        &topic,
        &records,
        Some(0),
    ));
    drop(producer);

    let mut tls = tls_connect(listener(&broker, "SSL"), tls_client_config(&pki, None));
    let fetch = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.clone())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(16 << 20)])]);
    let resp: FetchResponse =
        request(&mut tls, ApiKey::Fetch, 12, 21, &fetch).expect("fetch over TLS");
    let partition = &resp.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 2_000);
    let bytes = partition.records.clone().expect("records");
    assert!(bytes.len() > 4_000_000, "{} bytes", bytes.len());
    assert_eq!(count_records(&bytes, 0), 2_000, "every record, in order");
    // The connection is still usable after a multi-megabyte encrypted response.
    assert!(metadata(&mut tls, 22).is_some());
}

/// An unsecured JWS (`alg: none`) for OAUTHBEARER, as librdkafka's
/// `enable.sasl.oauthbearer.unsecure.jwt` builds them.
fn unsecured_jws(sub: &str, exp_s: u64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine;
    let claims = format!(r#"{{"sub":"{sub}","exp":{exp_s}}}"#);
    format!(
        "{}.{}.",
        B64URL.encode(r#"{"alg":"none"}"#),
        B64URL.encode(claims)
    )
}

fn oauth_response(token: &str) -> Vec<u8> {
    format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
}

#[test]
fn oauthbearer_unsecured_tokens_where_the_listener_enables_it() {
    let broker = Broker::start(BrokerOpts::default().config(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"\n\
         \"listener.name.sasl_plaintext.sasl.enabled.mechanisms\" = \"SCRAM-SHA-256,OAUTHBEARER\"\n\
         \"connections.max.reauth.ms\" = 600000\n",
    ));
    let addr = listener(&broker, "SASL_PLAINTEXT");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();

    // A valid token: authenticated as its subject; the session ends with the token (~60 s).
    let mut ok = wire::connect(addr);
    assert_eq!(handshake(&mut ok, "OAUTHBEARER", 1), 0);
    let done = authenticate(
        &mut ok,
        &oauth_response(&unsecured_jws("carol", now_s + 60)),
        2,
    )
    .expect("answered");
    assert_eq!(done.error_code, 0, "{done:?}");
    assert!(
        (1..=60_000).contains(&done.session_lifetime_ms),
        "session lifetime {} ms",
        done.session_lifetime_ms
    );
    assert!(metadata(&mut ok, 3).is_some());

    // An expired token: Kafka's JSON challenge, then failure on the client's 0x01.
    let mut expired = wire::connect(addr);
    assert_eq!(handshake(&mut expired, "OAUTHBEARER", 1), 0);
    let challenge = authenticate(
        &mut expired,
        &oauth_response(&unsecured_jws("carol", now_s - 10)),
        2,
    )
    .expect("answered");
    assert_eq!(challenge.error_code, 0);
    assert_eq!(&challenge.auth_bytes[..], br#"{"status":"invalid_token"}"#);
    let failed = authenticate(&mut expired, &[1u8], 3).expect("answered");
    assert_eq!(failed.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(closed(&mut expired));

    // A malformed initial response fails at once.
    let mut garbage = wire::connect(addr);
    assert_eq!(handshake(&mut garbage, "OAUTHBEARER", 1), 0);
    let failed = authenticate(&mut garbage, b"n,,auth=Bearer x", 2).expect("answered");
    assert_eq!(failed.error_code, SASL_AUTHENTICATION_FAILED);

    assert!(broker
        .log_text()
        .contains("invalid OAUTHBEARER token: the token expired"));
}

/// KIP-768: with `sasl.oauthbearer.jwks.endpoint.url` set, OAUTHBEARER accepts only JWTs signed
/// by a key of that set (generated here), with the expected audience and issuer; an unsecured
/// token or another key's signature gets Kafka's JSON challenge, then the failure.
#[test]
fn oauthbearer_signed_tokens_are_validated_against_the_jwks() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let dir = tempfile::tempdir().expect("tempdir");
    let signing = rcgen::KeyPair::generate().expect("key");
    let other = rcgen::KeyPair::generate().expect("key");
    let raw = signing.public_key_raw();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "test-key", "alg": "ES256", "use": "sig",
        "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..65]),
    }]});
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).expect("write jwks");
    let broker = Broker::start(BrokerOpts::default().config(&format!(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"\n\
         \"listener.name.sasl_plaintext.sasl.enabled.mechanisms\" = \"OAUTHBEARER\"\n\
         \"sasl.oauthbearer.jwks.endpoint.url\" = \"file://{}\"\n\
         \"sasl.oauthbearer.expected.audience\" = \"kafka-broker\"\n\
         \"sasl.oauthbearer.expected.issuer\" = \"https://idp.test\"\n",
        jwks_path.display()
    )));
    let addr = listener(&broker, "SASL_PLAINTEXT");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let sign = |key: &rcgen::KeyPair, audience: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("test-key".into());
        let claims = serde_json::json!({
            "sub": "dave", "aud": audience, "iss": "https://idp.test",
            "iat": now_s, "exp": now_s + 300,
        });
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_der(&key.serialize_der()),
        )
        .expect("sign")
    };

    let mut ok = wire::connect(addr);
    assert_eq!(handshake(&mut ok, "OAUTHBEARER", 1), 0);
    let done = authenticate(&mut ok, &oauth_response(&sign(&signing, "kafka-broker")), 2)
        .expect("answered");
    assert_eq!(done.error_code, 0, "{done:?}");
    assert!(metadata(&mut ok, 3).is_some());

    for token in [
        sign(&other, "kafka-broker"),
        sign(&signing, "someone-else"),
        unsecured_jws("dave", now_s + 60),
    ] {
        let mut refused = wire::connect(addr);
        assert_eq!(handshake(&mut refused, "OAUTHBEARER", 1), 0);
        let challenge = authenticate(&mut refused, &oauth_response(&token), 2).expect("answered");
        assert_eq!(&challenge.auth_bytes[..], br#"{"status":"invalid_token"}"#);
        let failed = authenticate(&mut refused, &[1u8], 3).expect("answered");
        assert_eq!(failed.error_code, SASL_AUTHENTICATION_FAILED);
        assert!(closed(&mut refused));
    }
    assert!(broker.log_text().contains("JWT rejected"));
}
