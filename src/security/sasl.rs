//! SASL server mechanisms, as pure state machines (no I/O): PLAIN (RFC 4616) and SCRAM-SHA-256
//! / SCRAM-SHA-512 (RFC 5802, Kafka's ScramSaslServer); OAUTHBEARER is in `oauthbearer`. The caller feeds client tokens and
//! sends back what each step returns.
//!
//! Invariants: a failed step never says why beyond Kafka's generic message (no hint whether
//! the user exists); channel binding and delegation-token extensions are refused; every parse
//! is checked (no indexing on client bytes).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::scram::{constant_time_eq, Credential, CredentialLookup, Mechanism};

/// A mechanism of `sasl.enabled.mechanisms` that Sluice implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(Mechanism),
    /// Unsecured JWS tokens (`security::oauthbearer`).
    OAuthBearer,
}

impl SaslMechanism {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            "OAUTHBEARER" => Some(Self::OAuthBearer),
            other => Mechanism::from_name(other).map(Self::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// Parses `sasl.enabled.mechanisms`; unknown names are an error.
pub fn parse_enabled(text: &str) -> Result<Vec<SaslMechanism>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| SaslMechanism::parse(n).ok_or_else(|| format!("unsupported mechanism {n}")))
        .collect()
}

/// Why an exchange failed: the message the client gets (Kafka's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub message: String,
    /// For the audit log only (never sent): the user the client claimed, if any.
    pub user: Option<String>,
}

impl AuthFailure {
    fn invalid_credentials(mechanism: SaslMechanism, user: Option<String>) -> Self {
        Self {
            message: format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                mechanism.name()
            ),
            user,
        }
    }

    fn malformed(message: &str) -> Self {
        Self {
            message: format!("Authentication failed: {message}"),
            user: None,
        }
    }
}

/// PLAIN's one token: `[authzid] NUL authcid NUL passwd`; returns (user, password).
pub fn parse_plain(token: &[u8]) -> Result<(String, String), AuthFailure> {
    let text = std::str::from_utf8(token)
        .map_err(|_| AuthFailure::malformed("Invalid SASL/PLAIN response"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthFailure::malformed(
            "Invalid SASL/PLAIN response: expected 3 tokens",
        ));
    };
    if user.is_empty() {
        return Err(AuthFailure::malformed("username not specified"));
    }
    if password.is_empty() {
        return Err(AuthFailure::malformed("password not specified"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthFailure::malformed(
            "Client requested an authorization id that is different from username",
        ));
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// The user's stored SCRAM credentials PLAIN checks a password against (SHA-512 first).
pub fn plain_candidates(lookup: CredentialLookup<'_>, user: &str) -> Vec<(Mechanism, Credential)> {
    [Mechanism::Sha512, Mechanism::Sha256]
        .into_iter()
        .filter_map(|m| lookup(user, m).map(|c| (m, c)))
        .collect()
}

/// PLAIN's check against the user's stored SCRAM credentials (`plain_candidates`): runs
/// PBKDF2, so call it off the shard thread.
pub fn check_plain(candidates: &[(Mechanism, Credential)], password: &str) -> bool {
    candidates
        .iter()
        .any(|(m, c)| c.matches_password(*m, password))
}

/// A SCRAM exchange between its first and its final client message.
#[derive(Debug, Clone)]
pub struct ScramPending {
    mechanism: Mechanism,
    user: String,
    credential: Credential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    client_nonce: String,
    nonce: String,
}

impl ScramPending {
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }
}

/// The outcome of SCRAM's first step.
pub type FirstStep = Result<(Vec<u8>, ScramPending), AuthFailure>;

/// RFC 5802 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is invalid.
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i)?);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = rest.get(i + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// Handles client-first (`gs2-header client-first-bare`); `server_nonce` must be fresh random
/// printable text without commas.
pub fn scram_first(
    mechanism: Mechanism,
    token: &[u8],
    server_nonce: &str,
    lookup: CredentialLookup<'_>,
) -> FirstStep {
    let scram = SaslMechanism::Scram(mechanism);
    let bad = || AuthFailure::malformed("Invalid SCRAM client first message");
    let text = std::str::from_utf8(token).map_err(|_| bad())?;
    // gs2-header: cbind-flag "," [authzid] ","
    let mut split = text.splitn(3, ',');
    let (Some(cbind), Some(authzid), Some(bare)) = (split.next(), split.next(), split.next())
    else {
        return Err(bad());
    };
    if cbind != "n" && cbind != "y" {
        return Err(AuthFailure::malformed("channel binding is not supported"));
    }
    let mut user = None;
    let mut client_nonce = None;
    for (i, attr) in bare.split(',').enumerate() {
        match (i, attr.split_once('=')) {
            (0, Some(("n", name))) => user = decode_saslname(name),
            (1, Some(("r", nonce))) if !nonce.is_empty() => client_nonce = Some(nonce),
            (_, Some(("tokenauth", _))) => {
                return Err(AuthFailure::malformed(
                    "delegation tokens are not supported",
                ))
            }
            (i, _) if i >= 2 => {} // other extensions are ignored, as Kafka does
            _ => return Err(bad()),
        }
    }
    let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
        return Err(bad());
    };
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if decode_saslname(authzid).as_deref() != Some(user.as_str()) {
            return Err(AuthFailure::malformed(
                "Client requested an authorization id that is different from username",
            ));
        }
    } else if !authzid.is_empty() {
        return Err(bad());
    }
    let Some(credential) = lookup(&user, mechanism) else {
        return Err(AuthFailure::invalid_credentials(scram, Some(user)));
    };
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credential.salt),
        credential.iterations
    );
    let pending = ScramPending {
        mechanism,
        user,
        credential,
        gs2_header: format!("{cbind},{authzid},"),
        client_first_bare: bare.to_owned(),
        server_first: server_first.clone(),
        client_nonce: client_nonce.to_owned(),
        nonce,
    };
    Ok((server_first.into_bytes(), pending))
}

/// Handles client-final (`c=...,r=...[,ext],p=proof`); returns server-final and the user.
pub fn scram_final(pending: &ScramPending, token: &[u8]) -> Result<(Vec<u8>, String), AuthFailure> {
    let scram = SaslMechanism::Scram(pending.mechanism);
    let fail = || AuthFailure::invalid_credentials(scram, Some(pending.user.clone()));
    let bad = || AuthFailure::malformed("Invalid SCRAM client final message");
    let text = std::str::from_utf8(token).map_err(|_| bad())?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(bad)?;
    let mut attrs = without_proof.split(',');
    let channel = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(bad)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(bad)?;
    if B64.decode(channel).ok().as_deref() != Some(pending.gs2_header.as_bytes()) {
        return Err(bad());
    }
    // librdkafka before 2.6.1 sends the client nonce twice (client + client + server;
    // librdkafka#4895). Kafka 3.8.1-3.9 accept it (nonce.endsWith), 4.x does not. Accepting
    // exactly that form still requires this exchange's fresh server nonce, so a replay fails.
    let doubled = nonce
        .strip_prefix(pending.client_nonce.as_str())
        .is_some_and(|rest| rest == pending.nonce);
    if nonce != pending.nonce && !doubled {
        return Err(AuthFailure::malformed(
            "Invalid client nonce in the final client message.",
        ));
    }
    let proof = B64.decode(proof).map_err(|_| bad())?;
    let auth_message = format!(
        "{},{},{}",
        pending.client_first_bare, pending.server_first, without_proof
    );
    let m = pending.mechanism;
    let c = &pending.credential;
    let client_signature = m.hmac(&c.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(fail());
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !constant_time_eq(&m.hash(&client_key), &c.stored_key) {
        return Err(fail());
    }
    let server_signature = m.hmac(&c.server_key, auth_message.as_bytes());
    let server_final = format!("v={}", B64.encode(server_signature));
    Ok((server_final.into_bytes(), pending.user.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(user: &str, password: &str, m: Mechanism) -> ((), crate::security::scram::Users) {
        let c = Credential::from_password(m, password, b"0123456789abcdef", 4096);
        let mut users = crate::security::scram::Users::new();
        users.entry(user.to_owned()).or_default().insert(m, c);
        ((), users)
    }

    fn lookup(
        users: &crate::security::scram::Users,
    ) -> impl Fn(&str, Mechanism) -> Option<Credential> + '_ {
        move |user, m| users.get(user).and_then(|ms| ms.get(&m)).cloned()
    }

    /// A client computing its proof per RFC 5802.
    fn client_final(
        m: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        client_final_with(m, password, client_first_bare, server_first, "")
    }

    /// `nonce_prefix`: prepended to the nonce echoed back (librdkafka < 2.6.1 repeats its own).
    fn client_final_with(
        m: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce_prefix: &str,
    ) -> String {
        let mut salt = None;
        let mut iterations = 0;
        let mut nonce = "";
        for attr in server_first.split(',') {
            match attr.split_once('=').unwrap() {
                ("r", r) => nonce = r,
                ("s", s) => salt = Some(B64.decode(s).unwrap()),
                ("i", i) => iterations = i.parse().unwrap(),
                _ => {}
            }
        }
        let salted = m.salted_password(password.as_bytes(), &salt.unwrap(), iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce_prefix}{nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn scram_exchange_succeeds_with_the_right_password_only() {
        for m in Mechanism::ALL {
            let (_dir, store) = store_with("al,ice", "s3cret", m);
            let bare = "n=al=2Cice,r=clientnonce";
            let (server_first, pending) = scram_first(
                m,
                format!("n,,{bare}").as_bytes(),
                "servernonce",
                &lookup(&store),
            )
            .unwrap();
            let server_first = String::from_utf8(server_first).unwrap();
            assert!(server_first.starts_with("r=clientnonceservernonce,s="));
            let good = client_final(m, "s3cret", bare, &server_first);
            let (server_final, user) = scram_final(&pending, good.as_bytes()).unwrap();
            assert_eq!(user, "al,ice");
            assert!(server_final.starts_with(b"v="));
            // librdkafka < 2.6.1 repeats the client nonce: accepted, as Kafka 3.8.1-3.9 do.
            let doubled = client_final_with(m, "s3cret", bare, &server_first, "clientnonce");
            assert!(scram_final(&pending, doubled.as_bytes()).is_ok());
            let wrong = client_final(m, "wrong", bare, &server_first);
            let failure = scram_final(&pending, wrong.as_bytes()).unwrap_err();
            assert!(failure.message.contains("invalid credentials"));
        }
    }

    #[test]
    fn scram_refuses_unknown_users_and_malformed_messages() {
        let m = Mechanism::Sha512;
        let (_dir, store) = store_with("bob", "pw", m);
        let unknown = scram_first(m, b"n,,n=eve,r=abc", "s", &lookup(&store)).unwrap_err();
        assert_eq!(unknown.user.as_deref(), Some("eve"));
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=bob,r=abc",
            b"n,,r=abc,n=bob",
            b"n,,n=bob,r=abc,tokenauth=true",
            b"n,a=other,n=bob,r=abc",
            b"n,,n=b=ZZob,r=abc",
            &[0xff, 0xfe],
        ] {
            assert!(
                scram_first(m, bad, "s", &lookup(&store)).is_err(),
                "{bad:?}"
            );
        }
        let (_, pending) = scram_first(m, b"n,,n=bob,r=abc", "s", &lookup(&store)).unwrap();
        for bad in [
            &b"garbage"[..],
            b"c=biws,r=abcX,p=AAAA",
            b"c=biws,r=abcabcX,p=AAAA",
            b"c=biws,r=abc,p=AAAA",
            b"c=xx,r=abcs,p=AAAA",
            b"c=biws,r=abcs,p=!!",
        ] {
            assert!(scram_final(&pending, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plain_token_parsing_and_check() {
        assert_eq!(
            parse_plain(b"\0alice\0pw").unwrap(),
            ("alice".to_owned(), "pw".to_owned())
        );
        assert!(parse_plain(b"alice\0alice\0pw").is_ok());
        assert!(parse_plain(b"bob\0alice\0pw").is_err());
        assert!(parse_plain(b"\0\0pw").is_err());
        assert!(parse_plain(b"\0alice\0").is_err());
        assert!(parse_plain(b"\0alice\0pw\0x").is_err());
        assert!(parse_plain(&[0xff]).is_err());
        let (_dir, store) = store_with("alice", "pw", Mechanism::Sha256);
        let candidates = |user| plain_candidates(&lookup(&store), user);
        assert!(check_plain(&candidates("alice"), "pw"));
        assert!(!check_plain(&candidates("alice"), "nope"));
        assert!(!check_plain(&candidates("nobody"), "pw"));
    }

    #[test]
    fn enabled_mechanisms_parse() {
        assert_eq!(
            parse_enabled("PLAIN, SCRAM-SHA-512").unwrap(),
            vec![
                SaslMechanism::Plain,
                SaslMechanism::Scram(Mechanism::Sha512)
            ]
        );
        assert!(parse_enabled("GSSAPI").is_err());
    }
}
