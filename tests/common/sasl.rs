//! SASL client helpers for the security and ACL tests: requests over any stream (plain or
//! TLS), SCRAM users created with AlterUserScramCredentials, and a full SCRAM login.

use std::io::{Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice::security::scram::Mechanism;

use super::wire;
use super::Broker;

/// Sends one request and reads its response on any stream; `None` if the stream closed.
pub fn request<S: Read + Write, Req: Encodable, Resp: Decodable>(
    stream: &mut S,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    req: &Req,
) -> Option<Resp> {
    let frame = wire::encode_request(key, version, correlation_id, "sasl-test", req);
    stream.write_all(&frame).ok()?;
    stream.flush().ok()?;
    let body = read_frame(stream)?;
    Some(wire::decode_response(key, version, correlation_id, body))
}

pub fn read_frame<S: Read>(stream: &mut S) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let len = usize::try_from(i32::from_be_bytes(size)).ok()?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Creates SCRAM users over PLAINTEXT with AlterUserScramCredentials (the client sends the
/// salted password, as Kafka's admin client does).
pub fn create_user(broker: &Broker, user: &str, password: &str, mechanism: Mechanism) {
    let salt = b"0123456789abcdef0123";
    let salted = mechanism.salted_password(password.as_bytes(), salt, 4096);
    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_owned()))
            .with_mechanism(mechanism.id())
            .with_iterations(4096)
            .with_salt(Bytes::copy_from_slice(salt))
            .with_salted_password(Bytes::from(salted)),
    ]);
    let resp: AlterUserScramCredentialsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::AlterUserScramCredentials,
        0,
        &req,
    );
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].error_code, 0, "{:?}", resp.results[0]);
}

pub fn handshake<S: Read + Write>(stream: &mut S, mechanism: &str, version: i16) -> i16 {
    let req =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.to_owned()));
    let resp: SaslHandshakeResponse =
        request(stream, ApiKey::SaslHandshake, version, 1, &req).expect("handshake answered");
    resp.error_code
}

pub fn authenticate<S: Read + Write>(
    stream: &mut S,
    token: &[u8],
    correlation_id: i32,
) -> Option<SaslAuthenticateResponse> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    request(stream, ApiKey::SaslAuthenticate, 2, correlation_id, &req)
}

/// A full SCRAM exchange as a client (RFC 5802); returns the final response.
pub fn scram_login<S: Read + Write>(
    stream: &mut S,
    m: Mechanism,
    user: &str,
    password: &str,
) -> SaslAuthenticateResponse {
    assert_eq!(handshake(stream, m.name(), 1), 0);
    let bare = format!("n={user},r=clientnonce123");
    let first = authenticate(stream, format!("n,,{bare}").as_bytes(), 2).expect("first");
    if first.error_code != 0 {
        return first;
    }
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).expect("utf8");
    let attr = |k: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {server_first}"))
            .to_owned()
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(attr("s=")).expect("salt");
    let iterations: u32 = attr("i=").parse().expect("iterations");
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = m.hmac(&salted, b"Client Key");
    let stored_key = m.hash(&client_key);
    let without_proof = format!("c=biws,r={}", attr("r="));
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let signature = m.hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let fin = format!("{without_proof},p={}", b64.encode(proof));
    let last = authenticate(stream, fin.as_bytes(), 3).expect("final answered");
    if last.error_code == 0 {
        let server_key = m.hmac(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            b64.encode(m.hmac(&server_key, auth_message.as_bytes()))
        );
        assert_eq!(last.auth_bytes, expected.as_bytes(), "server signature");
    }
    last
}

/// A listener's bound address, from its `listener name=... listening=...` line.
pub fn listener(broker: &Broker, name: &str) -> SocketAddr {
    let log = broker.log_text();
    let needle = format!("listener name={name} ");
    // The latest start's line: a restarted broker logs its new ports after the old ones.
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no listener {name} in log:\n{log}"));
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listening="))
        .unwrap_or_else(|| panic!("no address in {line}"));
    addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"))
}
