//! OAUTHBEARER tokens validated as Kafka's `OAuthBearerValidatorCallbackHandler` /
//! `BrokerJwtValidator` do (KIP-768): a signed JWT (JWS) whose key is found by its `kid` in the
//! JSON Web Key Set of `sasl.oauthbearer.jwks.endpoint.url`, with `exp` and `iat` required, `nbf`
//! honoured, `sasl.oauthbearer.expected.audience` / `sasl.oauthbearer.expected.issuer` checked
//! when set, `sasl.oauthbearer.clock.skew.seconds` of leeway, and the principal taken from
//! `sasl.oauthbearer.sub.claim.name`. Signatures are checked by `jsonwebtoken` (ring).
//!
//! The key set is read from a `file:` URL or fetched from an `https:` one (ureq over rustls with
//! the ring provider, trusting the PEM CAs of
//! `sasl.oauthbearer.jwks.endpoint.ssl.truststore.location`, else the Mozilla roots of
//! webpki-roots; connect and read bounded by `JWKS_HTTP_TIMEOUT`, the body by
//! `JWKS_BYTES_MAX`, https only, redirects included): at start (a missing or invalid set stops
//! the broker, as Kafka's refresh at configure does), again every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and when a token names a `kid` the set lacks (a
//! rotated key), at most once per `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`. Reads and
//! fetches run on a blocking thread.
//!
//! Invariants: `alg: none` and symmetric (HMAC) algorithms are refused (no shared secret is ever
//! configured, and accepting HS256 with a public key as the secret is the classic JWT forgery);
//! a JWK that names its own `alg` only verifies that algorithm; every failure is an invalid
//! token (Kafka's JSON challenge), never a panic; the key set in memory is replaced whole.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::oauthbearer::{invalid_token, OAuthError, Validated};

/// The most bytes of a key set accepted from a file or an endpoint (a JWKS is a few KiB).
pub const JWKS_BYTES_MAX: u64 = 1 << 20;
/// Connect and read timeout of a key set fetch over https.
pub const JWKS_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the key set comes from (`sasl.oauthbearer.jwks.endpoint.url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A `file:` URL's path.
    File(PathBuf),
    /// An `https:` URL, and the PEM file of the CAs to trust for it (None: webpki-roots).
    Https {
        url: String,
        truststore: Option<PathBuf>,
    },
}

/// Kafka's OAUTHBEARER validation settings (`SaslConfigs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// Where the key set is read from.
    pub source: JwksSource,
    pub expected_audience: Vec<String>,
    pub expected_issuer: Option<String>,
    pub clock_skew_seconds: u64,
    pub sub_claim_name: String,
    pub refresh: Duration,
    pub retry_backoff: Duration,
}

/// Parses `sasl.oauthbearer.jwks.endpoint.url`: a `file:` URL (`file:/p`, `file:///p`) or an
/// `https:` one (plain `http:` is refused: the keys that sign tokens must not be swappable on
/// the way).
pub fn jwks_source(url: &str, truststore: Option<&str>) -> Result<JwksSource, String> {
    if url.starts_with("https://") {
        return Ok(JwksSource::Https {
            url: url.to_owned(),
            truststore: truststore.map(PathBuf::from),
        });
    }
    jwks_path(url).map(JwksSource::File)
}

fn jwks_path(url: &str) -> Result<PathBuf, String> {
    let Some(rest) = url.strip_prefix("file:") else {
        return Err(format!("{url:?}: only file: and https: URLs are supported"));
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(format!("{url:?}: a file: URL needs an absolute path"));
    }
    Ok(PathBuf::from(path))
}

/// A key set source ready to read: the HTTPS agent is built once.
enum Reader {
    File(PathBuf),
    Https { url: String, agent: ureq::Agent },
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "File({})", path.display()),
            Self::Https { url, .. } => write!(f, "Https({url})"),
        }
    }
}

impl Reader {
    fn new(source: &JwksSource) -> Result<Self, String> {
        Ok(match source {
            JwksSource::File(path) => Self::File(path.clone()),
            JwksSource::Https { url, truststore } => {
                let mut builder = ureq::AgentBuilder::new()
                    .timeout_connect(JWKS_HTTP_TIMEOUT)
                    .timeout_read(JWKS_HTTP_TIMEOUT)
                    .https_only(true);
                if let Some(path) = truststore {
                    builder = builder.tls_config(Arc::new(client_tls(path)?));
                }
                Self::Https {
                    url: url.clone(),
                    agent: builder.build(),
                }
            }
        })
    }

    fn read(&self) -> Result<JwkSet, String> {
        let (text, what) = match self {
            Self::File(path) => {
                let file =
                    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                (
                    bounded(file, &path.display().to_string())?,
                    path.display().to_string(),
                )
            }
            Self::Https { url, agent } => {
                let response = agent
                    .get(url)
                    .set("Accept", "application/json")
                    .call()
                    .map_err(|e| format!("{url}: {e}"))?;
                (bounded(response.into_reader(), url)?, url.clone())
            }
        };
        let keys: JwkSet =
            serde_json::from_str(&text).map_err(|e| format!("{what}: not a JWKS: {e}"))?;
        if keys.keys.is_empty() {
            return Err(format!("{what}: the key set has no keys"));
        }
        Ok(keys)
    }
}

/// Reads at most `JWKS_BYTES_MAX` bytes of text; more is an error.
fn bounded(source: impl Read, what: &str) -> Result<String, String> {
    let mut text = String::new();
    source
        .take(JWKS_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{what}: {e}"))?;
    if text.len() as u64 > JWKS_BYTES_MAX {
        return Err(format!("{what}: key set over {JWKS_BYTES_MAX} bytes"));
    }
    Ok(text)
}

/// A rustls client config (ring) trusting the CA certificates of the PEM file `path`.
fn client_tls(path: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no CA certificate", path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
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
    reader: Arc<Reader>,
    loaded: RwLock<Arc<Loaded>>,
    /// When a read was last started (successful or not), for the retry backoff.
    last_attempt: RwLock<Instant>,
}

impl JwksValidator {
    /// Reads the key set once (blocking: call at start).
    pub fn load(config: JwksConfig) -> Result<Self, String> {
        let reader = Arc::new(Reader::new(&config.source)?);
        let keys = reader.read()?;
        let now = Instant::now();
        Ok(Self {
            config,
            reader,
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
        let reader = self.reader.clone();
        let read = compio::runtime::spawn_blocking(move || reader.read())
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
