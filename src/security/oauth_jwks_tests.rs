//! Tests of `oauth_jwks` with keys generated here (ECDSA P-256 by rcgen) and tokens signed by
//! `jsonwebtoken`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};

use std::io::Read;

use super::*;

/// A signing key and its public JWK.
struct Key {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: serde_json::Value,
}

fn key(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate().unwrap();
    let raw = pair.public_key_raw();
    assert_eq!(raw.len(), 65, "uncompressed P-256 point");
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
        "x": B64URL.encode(&raw[1..33]),
        "y": B64URL.encode(&raw[33..65]),
    });
    Key {
        kid: kid.to_owned(),
        pkcs8: pair.serialize_der(),
        jwk,
    }
}

fn write_jwks(path: &std::path::Path, keys: &[&Key]) {
    let set = serde_json::json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    std::fs::write(path, set.to_string()).unwrap();
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(key: &Key, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

fn config(path: &std::path::Path) -> JwksConfig {
    JwksConfig {
        source: JwksSource::File(path.to_owned()),
        expected_audience: vec!["kafka".into()],
        expected_issuer: Some("https://issuer.test".into()),
        clock_skew_seconds: 30,
        sub_claim_name: "sub".into(),
        refresh: Duration::from_secs(3600),
        retry_backoff: Duration::ZERO,
    }
}

fn claims(sub: &str, exp_from_now: i64) -> serde_json::Value {
    let now = now_s() as i64;
    serde_json::json!({
        "sub": sub,
        "aud": "kafka",
        "iss": "https://issuer.test",
        "iat": now,
        "exp": now + exp_from_now,
    })
}

fn validate(validator: &JwksValidator, token: &str) -> Result<Validated, OAuthError> {
    let now_ms = now_s() * 1000;
    compio::runtime::Runtime::new()
        .unwrap()
        .block_on(validator.validate(token, now_ms))
}

fn rejected(result: Result<Validated, OAuthError>) -> bool {
    matches!(result, Err(OAuthError::InvalidToken { challenge, .. }) if challenge == r#"{"status":"invalid_token"}"#)
}

#[test]
fn a_signed_token_with_the_expected_claims_names_its_principal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let k1 = key("k1");
    write_jwks(&path, &[&k1]);
    let validator = JwksValidator::load(config(&path)).unwrap();
    let token = sign(&k1, Some("k1"), claims("alice", 600));
    let valid = validate(&validator, &token).unwrap();
    assert_eq!(valid.principal, "alice");
    assert!(valid.expires_at_ms > now_s() * 1000);
    // Without a kid, the set's only key is used.
    assert!(validate(&validator, &sign(&k1, None, claims("alice", 600))).is_ok());
    // Expired, but within the clock skew: accepted; beyond it: refused.
    assert!(validate(&validator, &sign(&k1, Some("k1"), claims("alice", -10))).is_ok());
    assert!(rejected(validate(
        &validator,
        &sign(&k1, Some("k1"), claims("alice", -120))
    )));
}

#[test]
fn wrong_claims_keys_and_algorithms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let k1 = key("k1");
    let stranger = key("k1");
    write_jwks(&path, &[&k1]);
    let validator = JwksValidator::load(config(&path)).unwrap();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims("alice", 600);
        change(&mut c);
        sign(&k1, Some("k1"), c)
    };
    for token in [
        with(&|c| c["aud"] = "other".into()),
        with(&|c| c["iss"] = "https://evil.test".into()),
        with(&|c| {
            c.as_object_mut().unwrap().remove("iat");
        }),
        with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        with(&|c| {
            c.as_object_mut().unwrap().remove("sub");
        }),
        with(&|c| c["sub"] = "  ".into()),
        with(&|c| c["nbf"] = (now_s() + 3600).into()),
        with(&|c| c["iat"] = (now_s() + 3600).into()),
        // Signed by another key under the same kid.
        sign(&stranger, Some("k1"), claims("alice", 600)),
        // A kid the set does not have (even after a re-read).
        sign(&k1, Some("k9"), claims("alice", 600)),
        "not.a.jwt".to_owned(),
        String::new(),
    ] {
        assert!(rejected(validate(&validator, &token)), "{token}");
    }
    // HS256 "signed" with the public key as the shared secret: refused.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("alice", 600),
        &EncodingKey::from_secret(k1.jwk.to_string().as_bytes()),
    )
    .unwrap();
    assert!(rejected(validate(&validator, &hs)));
    // alg none (an unsecured JWS) is not a signed token.
    let none = format!(
        "{}.{}.",
        B64URL.encode(r#"{"alg":"none"}"#),
        B64URL.encode(claims("alice", 600).to_string())
    );
    assert!(rejected(validate(&validator, &none)));
}

#[test]
fn a_rotated_key_is_found_by_reading_the_set_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let k1 = key("k1");
    let k2 = key("k2");
    write_jwks(&path, &[&k1]);
    let validator = JwksValidator::load(config(&path)).unwrap();
    let token = sign(&k2, Some(&k2.kid), claims("bob", 600));
    assert!(rejected(validate(&validator, &token)));
    write_jwks(&path, &[&k1, &k2]);
    assert_eq!(validate(&validator, &token).unwrap().principal, "bob");
    // A broken file later keeps the keys in memory.
    std::fs::write(&path, "garbage").unwrap();
    assert!(validate(&validator, &sign(&k1, Some("k1"), claims("al", 600))).is_ok());
}

#[test]
fn the_principal_claim_is_configurable_and_bad_sets_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let k1 = key("k1");
    write_jwks(&path, &[&k1]);
    let mut cfg = config(&path);
    cfg.sub_claim_name = "client_id".into();
    cfg.expected_audience.clear();
    cfg.expected_issuer = None;
    let validator = JwksValidator::load(cfg).unwrap();
    let mut c = claims("ignored", 600);
    c["client_id"] = "svc-1".into();
    c["aud"] = "anything".into();
    let valid = validate(&validator, &sign(&k1, Some("k1"), c)).unwrap();
    assert_eq!(valid.principal, "svc-1");
    std::fs::write(&path, r#"{"keys":[]}"#).unwrap();
    assert!(JwksValidator::load(config(&path)).is_err());
    assert!(JwksValidator::load(config(&dir.path().join("missing.json"))).is_err());
    assert_eq!(
        jwks_path("file:///etc/k.json").unwrap(),
        PathBuf::from("/etc/k.json")
    );
    assert_eq!(
        jwks_path("file:/etc/k.json").unwrap(),
        PathBuf::from("/etc/k.json")
    );
    assert!(jwks_path("https://idp.example/jwks").is_err());
    assert!(jwks_path("file:relative.json").is_err());
    assert!(jwks_source("http://idp.example/jwks", None).is_err());
    assert!(jwks_source("ftp://idp.example/jwks", None).is_err());
}

/// A CA and a server certificate for 127.0.0.1 signed by it (PEM of the CA; DER chain and key).
fn test_pki(
    ca_cn: &str,
) -> (
    String,
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_cn);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    (ca.pem(), leaf.der().clone(), key)
}

/// An HTTPS server on loopback answering every GET with `body` (shared, so a test can rotate
/// it); counts the requests it answered. Serves at most 16 connections, then its thread ends.
fn serve_https(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    body: Arc<RwLock<String>>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/jwks.json", listener.local_addr().unwrap());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap(),
    );
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(16) {
            let Ok(tcp) = tcp else { continue };
            let Ok(session) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(session, tcp);
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && request.len() < 8192 {
                match tls.read(&mut byte) {
                    Ok(1) => request.push(byte[0]),
                    _ => break,
                }
            }
            if !request.starts_with(b"GET /jwks.json ") {
                continue; // a failed handshake or another request: nothing served
            }
            let text = body.read().unwrap().clone();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{text}",
                text.len()
            );
            if tls.write_all(response.as_bytes()).is_ok() {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    (url, served)
}

#[test]
fn the_key_set_is_fetched_over_https_from_a_trusted_server_only() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert, server_key) = test_pki("jwks-test-ca");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let (rogue_pem, _, _) = test_pki("rogue-ca");
    let rogue_path = dir.path().join("rogue.pem");
    std::fs::write(&rogue_path, rogue_pem).unwrap();
    let k1 = key("k1");
    let k2 = key("k2");
    let set = |keys: &[&Key]| {
        serde_json::json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
            .to_string()
    };
    let body = Arc::new(RwLock::new(set(&[&k1])));
    let (url, served) = serve_https(cert, server_key, body.clone());
    let https = |truststore: Option<&std::path::Path>| {
        let mut c = config(std::path::Path::new("/unused"));
        c.source = jwks_source(&url, truststore.and_then(|p| p.to_str())).unwrap();
        c
    };

    // Trusting the server's CA: the set is fetched and a token signed by its key is valid.
    let validator = JwksValidator::load(https(Some(&ca_path))).unwrap();
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
    let token = sign(&k1, Some("k1"), claims("alice", 600));
    assert_eq!(validate(&validator, &token).unwrap().principal, "alice");
    // A rotated key: the unknown kid makes the broker fetch the set again.
    *body.write().unwrap() = set(&[&k1, &k2]);
    let rotated = sign(&k2, Some("k2"), claims("bob", 600));
    assert_eq!(validate(&validator, &rotated).unwrap().principal, "bob");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);

    // A server whose certificate chains to no trusted CA gets no request: the default roots
    // (webpki-roots) and another CA both refuse the handshake, and the start fails.
    let untrusted = JwksValidator::load(https(None)).unwrap_err();
    assert!(untrusted.contains(&url), "{untrusted}");
    assert!(JwksValidator::load(https(Some(&rogue_path))).is_err());
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A truststore without a certificate stops the start too.
    std::fs::write(&rogue_path, "no pem here").unwrap();
    assert!(JwksValidator::load(https(Some(&rogue_path))).is_err());
}
