//! One connection's security context: the listener it came in on, the principal it acts as,
//! and where it stands in the SASL exchange (Kafka's SaslServerAuthenticator states).
//!
//! Invariants: on a SASL listener a connection is authenticated only after a successful
//! SaslAuthenticate (or v0 raw token) exchange; a failed exchange is terminal (the connection
//! is closed after `connection.failed.authentication.delay.ms`); the principal never changes
//! after authentication; every authentication failure is logged on the audit target.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::listener::SecurityProtocol;
use super::sasl::{self, AuthFailure, SaslMechanism, ScramPending};
use super::scram::CredentialLookup;

/// Log target of authentication failures and denied operations.
pub const AUDIT_TARGET: &str = "sluice::audit";

/// A bound listener as connections see it.
#[derive(Debug)]
pub struct ListenerContext {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Set for SSL and SASL_SSL listeners (replaced by a certificate reload).
    pub tls: Option<Arc<super::tls::TlsSlot>>,
    /// `ssl.principal.mapping.rules` (of this listener), for client certificates.
    pub principal_mapper: Arc<super::principal::PrincipalMapper>,
    /// `sasl.enabled.mechanisms` of this listener.
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// OAUTHBEARER's JWKS validation (`sasl.oauthbearer.jwks.endpoint.url`); None: unsecured
    /// tokens, Kafka's default validator.
    pub oauth_jwks: Option<Arc<super::oauth_jwks::JwksValidator>>,
    /// KIP-612: new connections per second on this listener
    /// (`listener.name.<l>.max.connection.creation.rate`, else the broker's).
    pub max_connection_creation_rate: i32,
    /// Kafka's protected listener (`ConnectionQuotas.protectedListener`): the inter-broker
    /// listener of a broker with more than one listener. Its connections are not counted
    /// against the broker-wide `max.connection.creation.rate` nor refused by
    /// `max.connections.per.shard` (Kafka: `max.connections`), so clients cannot lock
    /// replication out; its own listener rate and IP quotas still apply.
    pub protected: bool,
}

#[derive(Debug)]
enum SaslState {
    /// PLAINTEXT / SSL listener: nothing to do.
    NotRequired,
    AwaitingHandshake,
    AwaitingToken {
        mechanism: SaslMechanism,
        raw_frames: bool,
    },
    AwaitingScramFinal {
        pending: Box<ScramPending>,
        raw_frames: bool,
    },
    /// OAUTHBEARER sent its JSON error challenge; the client's 0x01 ends the exchange.
    AwaitingOAuthErrorAck {
        message: String,
    },
    Authenticated,
    Failed,
}

/// What SaslHandshake answers.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Ok,
    UnsupportedMechanism,
    IllegalState,
}

/// What one SaslAuthenticate step answers.
#[derive(Debug)]
pub enum AuthStep {
    /// More to exchange: send these bytes, wait for the next token.
    Challenge(Vec<u8>),
    /// Authenticated: send these (final) bytes.
    Done(Vec<u8>),
    Failed(AuthFailure),
    /// SaslAuthenticate out of order (before the handshake, or after authentication).
    IllegalState(&'static str),
}

/// Per-connection security state (lives on the connection's shard, never shared).
#[derive(Debug)]
pub struct Session {
    pub listener: Arc<ListenerContext>,
    pub peer: SocketAddr,
    principal: RefCell<String>,
    state: RefCell<SaslState>,
    /// `connections.max.reauth.ms` (KIP-368); 0 = sessions never expire.
    reauth_ms: u64,
    /// When the SASL session expires (set on each successful authentication when reauth_ms > 0).
    expires_at: Cell<Option<Instant>>,
    /// The mechanism of the first authentication (re-authentication must keep it).
    mechanism: Cell<Option<SaslMechanism>>,
    reauthenticating: Cell<bool>,
    /// A quota's throttle time for the last request (KIP-219): the connection stops reading
    /// for that long once the response is queued.
    throttle_ms: Cell<u64>,
    /// How long the last authentication's credential stays valid (an OAUTHBEARER token).
    credential_lifetime_ms: Cell<Option<u64>>,
    /// Whether another broker forwarded this request in an Envelope (KIP-590).
    forwarded: Cell<bool>,
}

impl Session {
    /// `tls_principal`: the mapped subject of a verified client certificate, if any.
    pub fn new(
        listener: Arc<ListenerContext>,
        peer: SocketAddr,
        tls_principal: Option<String>,
        reauth_ms: u64,
    ) -> Self {
        let state = if listener.protocol.uses_sasl() {
            SaslState::AwaitingHandshake
        } else {
            SaslState::NotRequired
        };
        let name = tls_principal.unwrap_or_else(|| super::ANONYMOUS.to_owned());
        Self {
            listener,
            peer,
            principal: RefCell::new(format!("{}:{name}", super::USER_TYPE)),
            state: RefCell::new(state),
            reauth_ms,
            expires_at: Cell::new(None),
            mechanism: Cell::new(None),
            reauthenticating: Cell::new(false),
            throttle_ms: Cell::new(0),
            credential_lifetime_ms: Cell::new(None),
            forwarded: Cell::new(false),
        }
    }

    /// The session of a request forwarded by another broker in an Envelope (KIP-590): already
    /// authenticated there as `principal` (`User:alice`), from `peer` (the client's address).
    pub fn forwarded(listener: Arc<ListenerContext>, peer: SocketAddr, principal: String) -> Self {
        let session = Self::new(listener, peer, None, 0);
        *session.principal.borrow_mut() = principal;
        *session.state.borrow_mut() = SaslState::NotRequired;
        session.forwarded.set(true);
        session
    }

    /// Whether another broker forwarded the request in an Envelope: that broker already made
    /// the checks Kafka makes before forwarding (e.g. a BROKER config resource names it).
    pub fn is_forwarded(&self) -> bool {
        self.forwarded.get()
    }

    /// KIP-368: whether the SASL session expired without re-authentication (the connection
    /// must then be closed before serving anything but SASL).
    pub fn expired(&self) -> bool {
        self.expires_at.get().is_some_and(|at| Instant::now() >= at)
    }

    /// What SaslAuthenticate v1+ answers as `session_lifetime_ms` (0 = no expiry): Kafka's
    /// min(credential lifetime, `connections.max.reauth.ms`) when sessions expire.
    pub fn session_lifetime_ms(&self) -> i64 {
        if let (true, Some(credential)) = (self.reauth_ms > 0, self.credential_lifetime_ms.get()) {
            return i64::try_from(credential.min(self.reauth_ms)).unwrap_or(i64::MAX);
        }
        i64::try_from(self.reauth_ms).unwrap_or(i64::MAX)
    }

    /// Mutes the connection for `ms` after the current response (the longest throttle wins).
    pub fn throttle(&self, ms: u64) {
        self.throttle_ms.set(self.throttle_ms.get().max(ms));
    }

    /// The mute owed by the last request, cleared.
    pub fn take_throttle(&self) -> Option<Duration> {
        let ms = self.throttle_ms.replace(0);
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// The principal's name without its type (`alice` for `User:alice`): Kafka's quota user.
    pub fn principal_name(&self) -> String {
        let principal = self.principal.borrow();
        match principal.split_once(':') {
            Some((_, name)) => name.to_owned(),
            None => principal.clone(),
        }
    }

    /// `User:<name>`.
    pub fn principal(&self) -> String {
        self.principal.borrow().clone()
    }

    /// Whether requests other than ApiVersions and SASL may be served.
    pub fn is_authenticated(&self) -> bool {
        matches!(
            *self.state.borrow(),
            SaslState::NotRequired | SaslState::Authenticated
        )
    }

    /// Whether the next frame is a raw SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            *self.state.borrow(),
            SaslState::AwaitingToken {
                raw_frames: true,
                ..
            } | SaslState::AwaitingScramFinal {
                raw_frames: true,
                ..
            }
        )
    }

    pub fn failed(&self) -> bool {
        matches!(*self.state.borrow(), SaslState::Failed)
    }

    /// SaslHandshake: chooses the mechanism; v0 switches to raw token frames.
    pub fn handshake(
        &self,
        mechanism: &str,
        version: i16,
        enabled: &[SaslMechanism],
    ) -> HandshakeOutcome {
        let mut state = self.state.borrow_mut();
        // KIP-368: an authenticated v1 client may re-authenticate when sessions expire.
        let reauth =
            matches!(*state, SaslState::Authenticated) && self.reauth_ms > 0 && version >= 1;
        if !matches!(*state, SaslState::AwaitingHandshake) && !reauth {
            return HandshakeOutcome::IllegalState;
        }
        match SaslMechanism::parse(mechanism).filter(|m| enabled.contains(m)) {
            Some(mechanism) => {
                *state = SaslState::AwaitingToken {
                    mechanism,
                    raw_frames: version == 0,
                };
                self.reauthenticating.set(reauth);
                HandshakeOutcome::Ok
            }
            None => {
                // Kafka lets the client try another mechanism; the state stays.
                HandshakeOutcome::UnsupportedMechanism
            }
        }
    }

    /// One SaslAuthenticate (or raw) token. PLAIN's password check runs off the shard thread.
    pub async fn authenticate(&self, token: &[u8], lookup: CredentialLookup<'_>) -> AuthStep {
        let state = std::mem::replace(&mut *self.state.borrow_mut(), SaslState::Failed);
        let step = match state {
            SaslState::AwaitingToken {
                mechanism: SaslMechanism::Plain,
                ..
            } => self.plain(token, lookup).await,
            SaslState::AwaitingToken {
                mechanism: SaslMechanism::Scram(m),
                raw_frames,
            } => match sasl::scram_first(m, token, &server_nonce(), lookup) {
                Ok((server_first, pending)) => {
                    *self.state.borrow_mut() = SaslState::AwaitingScramFinal {
                        pending: Box::new(pending),
                        raw_frames,
                    };
                    return AuthStep::Challenge(server_first);
                }
                Err(failure) => AuthStep::Failed(failure),
            },
            SaslState::AwaitingToken {
                mechanism: SaslMechanism::OAuthBearer,
                ..
            } => match self.oauthbearer(token).await {
                Ok(step) => step,
                Err(challenge) => return challenge,
            },
            SaslState::AwaitingOAuthErrorAck { message } => {
                let why = if token == [super::oauthbearer::KVSEP] {
                    message
                } else {
                    "Authentication failed: Invalid OAUTHBEARER response after an error".into()
                };
                AuthStep::Failed(AuthFailure {
                    message: why,
                    user: None,
                })
            }
            SaslState::AwaitingScramFinal { pending, .. } => {
                match sasl::scram_final(&pending, token) {
                    Ok((server_final, user)) => {
                        let mechanism = SaslMechanism::Scram(pending.mechanism());
                        self.authenticated(mechanism, &user, server_final)
                    }
                    Err(failure) => AuthStep::Failed(failure),
                }
            }
            other => {
                let why = match other {
                    SaslState::AwaitingHandshake => "SaslAuthenticate before SaslHandshake",
                    _ => "SaslAuthenticate request received after successful authentication",
                };
                if matches!(other, SaslState::AwaitingHandshake) {
                    // Before the handshake this ends the connection (state stays Failed).
                    tracing::warn!(target: AUDIT_TARGET, peer = %self.peer, listener = %self.listener.name, "authentication failed: {why}");
                } else {
                    // Not a SASL connection, or already authenticated: answered, kept open.
                    *self.state.borrow_mut() = other;
                }
                return AuthStep::IllegalState(why);
            }
        };
        if let AuthStep::Failed(failure) = &step {
            tracing::warn!(
                target: AUDIT_TARGET,
                peer = %self.peer,
                listener = %self.listener.name,
                user = failure.user.as_deref().unwrap_or("-"),
                "authentication failed: {}",
                failure.message
            );
        }
        step
    }

    /// OAUTHBEARER's initial response: authenticated, failed, or (`Err`) the JSON challenge of
    /// an invalid token (the state then waits for the client's acknowledgement).
    async fn oauthbearer(&self, token: &[u8]) -> Result<AuthStep, AuthStep> {
        use super::oauthbearer::{check_authzid, parse_initial_response};
        use super::oauthbearer::{validate_initial_response, OAuthError};
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let validated = match &self.listener.oauth_jwks {
            None => validate_initial_response(token, now_ms),
            Some(jwks) => match parse_initial_response(token) {
                Ok(parsed) => match jwks.validate(parsed.token, now_ms).await {
                    Ok(valid) => check_authzid(parsed.authzid, valid),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
        match validated {
            Ok(valid) => {
                let step =
                    self.authenticated(SaslMechanism::OAuthBearer, &valid.principal, Vec::new());
                // KIP-368: the session ends no later than the token (when sessions expire).
                let left_ms = valid.expires_at_ms.saturating_sub(now_ms);
                if let (AuthStep::Done(_), Some(at)) = (&step, self.expires_at.get()) {
                    let left = Duration::from_millis(left_ms);
                    self.expires_at.set(Some(at.min(Instant::now() + left)));
                    self.credential_lifetime_ms.set(Some(left_ms));
                }
                Ok(step)
            }
            Err(OAuthError::Malformed(message)) => Ok(AuthStep::Failed(AuthFailure {
                message,
                user: None,
            })),
            Err(OAuthError::InvalidToken { challenge, reason }) => {
                tracing::warn!(target: AUDIT_TARGET, peer = %self.peer, listener = %self.listener.name, "authentication failed: invalid OAUTHBEARER token: {reason}");
                *self.state.borrow_mut() = SaslState::AwaitingOAuthErrorAck {
                    message: format!("Authentication failed: {challenge}"),
                };
                Err(AuthStep::Challenge(challenge.into_bytes()))
            }
        }
    }

    async fn plain(&self, token: &[u8], lookup: CredentialLookup<'_>) -> AuthStep {
        let (user, password) = match sasl::parse_plain(token) {
            Ok(parsed) => parsed,
            Err(failure) => return AuthStep::Failed(failure),
        };
        let candidates = sasl::plain_candidates(lookup, &user);
        let ok = compio::runtime::spawn_blocking(move || sasl::check_plain(&candidates, &password))
            .await
            .unwrap_or(false);
        if ok {
            self.authenticated(SaslMechanism::Plain, &user, Vec::new())
        } else {
            AuthStep::Failed(AuthFailure {
                message: "Authentication failed: Invalid username or password".to_owned(),
                user: Some(user),
            })
        }
    }

    fn authenticated(&self, mechanism: SaslMechanism, user: &str, response: Vec<u8>) -> AuthStep {
        let principal = format!("{}:{user}", super::USER_TYPE);
        if self.reauthenticating.get() {
            // Kafka's SaslServerAuthenticator: re-authentication keeps principal and mechanism.
            let why = if *self.principal.borrow() != principal {
                Some("Cannot change principals during re-authentication")
            } else if self.mechanism.get() != Some(mechanism) {
                Some("Cannot change mechanisms during re-authentication")
            } else {
                None
            };
            if let Some(why) = why {
                return AuthStep::Failed(AuthFailure {
                    message: format!("Authentication failed: {why}"),
                    user: Some(user.to_owned()),
                });
            }
        }
        self.reauthenticating.set(false);
        self.mechanism.set(Some(mechanism));
        if self.reauth_ms > 0 {
            let lifetime = Duration::from_millis(self.reauth_ms);
            self.expires_at.set(Some(Instant::now() + lifetime));
        }
        *self.principal.borrow_mut() = principal;
        *self.state.borrow_mut() = SaslState::Authenticated;
        tracing::debug!(peer = %self.peer, principal = %self.principal(), "authenticated");
        AuthStep::Done(response)
    }

    /// Marks the exchange failed (a request other than SASL before authentication).
    pub fn fail(&self, why: &str) {
        *self.state.borrow_mut() = SaslState::Failed;
        tracing::warn!(
            target: AUDIT_TARGET,
            peer = %self.peer,
            listener = %self.listener.name,
            "authentication failed: {why}"
        );
    }
}

/// 24 random bytes as hex: alphanumeric like Kafka's nonces (older librdkafka mis-parses
/// nonces with base64's `+`, `/`).
fn server_nonce() -> String {
    let mut bytes = [0u8; 24];
    let random = rustls::crypto::ring::default_provider().secure_random;
    if random.fill(&mut bytes).is_err() {
        // The system RNG failing is not something a broker can run without.
        shards::fatal("system random number generator failed".to_owned());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
