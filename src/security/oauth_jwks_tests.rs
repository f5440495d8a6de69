//! Tests of `oauth_jwks` with keys generated here (ECDSA P-256 by rcgen) and tokens signed by
//! `jsonwebtoken`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};

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
        path: path.to_owned(),
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
}
