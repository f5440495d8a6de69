//! OAUTHBEARER tokens validated as Kafka's `OAuthBearerValidatorCallbackHandler` /
//! `BrokerJwtValidator` do (KIP-768): a signed JWT (JWS) whose key is found by its `kid` in the
//! JSON Web Key Set of `sasl.oauthbearer.jwks.endpoint.url`, with `exp` and `iat` required, `nbf`
//! honoured, `sasl.oauthbearer.expected.audience` / `sasl.oauthbearer.expected.issuer` checked
//! when set, `sasl.oauthbearer.clock.skew.seconds` of leeway, and the principal taken from
//! `sasl.oauthbearer.sub.claim.name`. Signatures are checked by `jsonwebtoken` (ring).
//!
//! The key set is read from a `file:` URL (Sluice's brokers reach no identity provider over the
//! network yet): at start (a missing or invalid set stops the broker, as Kafka's refresh at
//! configure does), again every `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and when a token
//! names a `kid` the set lacks (a rotated key), at most once per
//! `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`. Reads run on a blocking thread.
//!
//! Invariants: `alg: none` and symmetric (HMAC) algorithms are refused (no shared secret is ever
//! configured, and accepting HS256 with a public key as the secret is the classic JWT forgery);
//! a JWK that names its own `alg` only verifies that algorithm; every failure is an invalid
//! token (Kafka's JSON challenge), never a panic; the key set in memory is replaced whole.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::oauthbearer::{invalid_token, OAuthError, Validated};

/// Kafka's OAUTHBEARER validation settings (`SaslConfigs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// The key set file (from `sasl.oauthbearer.jwks.endpoint.url`, a `file:` URL).
    pub path: PathBuf,
    pub expected_audience: Vec<String>,
    pub expected_issuer: Option<String>,
    pub clock_skew_seconds: u64,
    pub sub_claim_name: String,
    pub refresh: Duration,
    pub retry_backoff: Duration,
}

/// Parses `sasl.oauthbearer.jwks.endpoint.url`: a `file:` URL (`file:/p`, `file:///p`).
pub fn jwks_path(url: &str) -> Result<PathBuf, String> {
    let Some(rest) = url.strip_prefix("file:") else {
        return Err(format!(
            "{url:?}: only file: URLs are supported (the broker fetches no key set over the network)"
        ));
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(format!("{url:?}: a file: URL needs an absolute path"));
    }
    Ok(PathBuf::from(path))
}

#[derive(Debug)]
struct Loaded {
    keys: JwkSet,
    at: Instant,
}

/// The validator of one broker (shared by every shard and listener).
#[derive(Debug)]
pub struct JwksValidator {
    config: JwksConfig,
    loaded: RwLock<Arc<Loaded>>,
    /// When a read was last started (successful or not), for the retry backoff.
    last_attempt: RwLock<Instant>,
}

fn read_key_set(path: &PathBuf) -> Result<JwkSet, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let keys: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a JWKS: {e}", path.display()))?;
    if keys.keys.is_empty() {
        return Err(format!("{}: the key set has no keys", path.display()));
    }
    Ok(keys)
}

impl JwksValidator {
    /// Reads the key set once (blocking: call at start).
    pub fn load(config: JwksConfig) -> Result<Self, String> {
        let keys = read_key_set(&config.path)?;
        let now = Instant::now();
        Ok(Self {
            config,
            loaded: RwLock::new(Arc::new(Loaded { keys, at: now })),
            last_attempt: RwLock::new(now),
        })
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the key set off the shard thread, unless one was read within the backoff; a
    /// failed read keeps the keys in memory (logged).
    async fn reload(&self) {
        {
            let mut last = self.last_attempt.write().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < self.config.retry_backoff {
                return;
            }
            *last = Instant::now();
        }
        let path = self.config.path.clone();
        let read = compio::runtime::spawn_blocking(move || read_key_set(&path))
            .await
            .unwrap_or_else(|_| Err("key set reader thread failed".to_owned()));
        match read {
            Ok(keys) => {
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Loaded {
                    keys,
                    at: Instant::now(),
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh the OAUTHBEARER JWKS"),
        }
    }

    /// Validates a JWT at `now_ms` (ms since the epoch).
    pub async fn validate(&self, token: &str, now_ms: u64) -> Result<Validated, OAuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid_token(format!("malformed JWT header: {e}")))?;
        if self.current().at.elapsed() >= self.config.refresh {
            self.reload().await;
        }
        let mut loaded = self.current();
        if let Some(kid) = &header.kid {
            if loaded.keys.find(kid).is_none() {
                // Perhaps a rotated key the file now has.
                self.reload().await;
                loaded = self.current();
            }
        }
        let jwk = pick_key(&loaded.keys, header.kid.as_deref())?;
        verify(&self.config, jwk, header.alg, token, now_ms)
    }
}

/// The key a token names by `kid`, or the set's only key when the token names none.
fn pick_key<'a>(keys: &'a JwkSet, kid: Option<&str>) -> Result<&'a Jwk, OAuthError> {
    match kid {
        Some(kid) => keys
            .find(kid)
            .ok_or_else(|| invalid_token(format!("no key with kid {kid:?} in the JWKS"))),
        None => match keys.keys.as_slice() {
            [only] => Ok(only),
            _ => Err(invalid_token(
                "the token names no kid and the JWKS has several keys",
            )),
        },
    }
}

fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Checks the signature and claims with the chosen key (see the module documentation).
fn verify(
    config: &JwksConfig,
    jwk: &Jwk,
    alg: Algorithm,
    token: &str,
    now_ms: u64,
) -> Result<Validated, OAuthError> {
    if !is_asymmetric(alg) {
        return Err(invalid_token(format!("algorithm {alg:?} is not accepted")));
    }
    if let Some(key_alg) = jwk.common.key_algorithm {
        if format!("{key_alg:?}") != format!("{alg:?}") {
            return Err(invalid_token(format!(
                "the key is for {key_alg:?}, the token is signed with {alg:?}"
            )));
        }
    }
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| invalid_token(format!("unusable key in the JWKS: {e}")))?;
    let mut validation = Validation::new(alg);
    validation.leeway = config.clock_skew_seconds;
    validation.validate_nbf = true;
    validation.validate_exp = true;
    validation.set_required_spec_claims(&["exp", "iat"]);
    if config.expected_audience.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&config.expected_audience);
    }
    if let Some(issuer) = &config.expected_issuer {
        validation.set_issuer(&[issuer]);
    }
    let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
        token,
        &key,
        &validation,
    )
    .map_err(|e| invalid_token(format!("JWT rejected: {e}")))?;
    let claims = data.claims;
    // jsonwebtoken checks exp against the system clock; the session's lifetime uses `now_ms`.
    let seconds = |name: &str| claims.get(name).and_then(serde_json::Value::as_f64);
    let exp = seconds("exp").ok_or_else(|| invalid_token("the exp claim is not a number"))?;
    let iat = seconds("iat").ok_or_else(|| invalid_token("the iat claim is not a number"))?;
    let skew_ms = config.clock_skew_seconds.saturating_mul(1000);
    let exp_ms = (exp * 1000.0).max(0.0) as u64;
    if now_ms >= exp_ms.saturating_add(skew_ms) {
        return Err(invalid_token("the token expired"));
    }
    if (iat * 1000.0).max(0.0) as u64 > now_ms.saturating_add(skew_ms) {
        return Err(invalid_token("the token was issued in the future"));
    }
    let principal = match claims.get(&config.sub_claim_name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            return Err(invalid_token(format!(
                "the {} claim is missing or not a string",
                config.sub_claim_name
            )))
        }
    };
    Ok(Validated {
        principal,
        expires_at_ms: exp_ms,
    })
}

#[cfg(test)]
#[path = "oauth_jwks_tests.rs"]
mod tests;
