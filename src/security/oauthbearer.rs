//! SASL/OAUTHBEARER (RFC 7628, KIP-255) with Kafka's default server-side validation: unsecured
//! JWS tokens (`alg: none`, no signature), as `OAuthBearerUnsecuredValidatorCallbackHandler`
//! checks them with its default options (principal claim `sub`, no required scope, no clock
//! skew). Pure: no I/O. Meant for tests and trusted networks, as in Kafka. With
//! `sasl.oauthbearer.jwks.endpoint.url` set, signed tokens are validated instead
//! (`oauth_jwks`, docs/decisions/0019); the initial response is parsed here for both.
//!
//! Invariants: every parse is checked (no indexing on client bytes); a token that parses but
//! does not validate gets Kafka's JSON error challenge, and the exchange fails on the client's
//! one-byte (0x01) answer, as in Kafka's `OAuthBearerSaslServer`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;

/// RFC 7628's key/value separator (Control-A).
pub const KVSEP: u8 = 0x01;

/// Kafka's default principal claim.
const PRINCIPAL_CLAIM: &str = "sub";

/// What is wrong with a client's initial response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// Not an OAUTHBEARER client initial response: the exchange fails at once.
    Malformed(String),
    /// A token that does not validate: answered with this JSON challenge first.
    InvalidToken { challenge: String, reason: String },
}

/// A validated token: the principal name and when the token expires (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub principal: String,
    pub expires_at_ms: u64,
}

fn malformed(why: &str) -> OAuthError {
    OAuthError::Malformed(format!("Invalid OAUTHBEARER client first message: {why}"))
}

/// A token that does not validate: Kafka's JSON challenge, with the reason for the audit log.
pub fn invalid_token(reason: impl Into<String>) -> OAuthError {
    OAuthError::InvalidToken {
        challenge: r#"{"status":"invalid_token"}"#.to_owned(),
        reason: reason.into(),
    }
}

/// Parses `n,[a=authzid],^Aauth=Bearer <token>^A[key=value^A]*^A` and validates the token at
/// `now_ms` as an unsecured JWS.
pub fn validate_initial_response(response: &[u8], now_ms: u64) -> Result<Validated, OAuthError> {
    let parsed = parse_initial_response(response)?;
    check_authzid(
        parsed.authzid,
        validate_unsecured_jws(parsed.token, now_ms)?,
    )
}

/// A client initial response: the optional authorization id and the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialResponse<'a> {
    pub authzid: Option<&'a str>,
    pub token: &'a str,
}

/// Parses `n,[a=authzid],^Aauth=Bearer <token>^A[key=value^A]*^A` (RFC 7628).
pub fn parse_initial_response(response: &[u8]) -> Result<InitialResponse<'_>, OAuthError> {
    let text = std::str::from_utf8(response).map_err(|_| malformed("not UTF-8"))?;
    let rest = text
        .strip_prefix("n,")
        .ok_or_else(|| malformed("no gs2 header"))?;
    let (authzid, rest) = rest
        .split_once(',')
        .ok_or_else(|| malformed("no gs2 header end"))?;
    let authzid = match authzid {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .filter(|a| !a.is_empty())
                .ok_or_else(|| malformed("bad authzid"))?,
        ),
    };
    let kvpairs = rest
        .strip_prefix('\u{1}')
        .and_then(|r| r.strip_suffix("\u{1}\u{1}"))
        .ok_or_else(|| malformed("bad separators"))?;
    let mut auth = None;
    for pair in kvpairs.split('\u{1}') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| malformed("bad key/value"))?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphabetic()) || value.is_empty() {
            return Err(malformed("bad key/value"));
        }
        if key == "auth" {
            auth = Some(value);
        }
    }
    let auth = auth.ok_or_else(|| malformed("no auth"))?;
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or_else(|| malformed("bad auth value"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("the auth scheme is not Bearer"));
    }
    Ok(InitialResponse {
        authzid,
        token: token.trim_start_matches(' '),
    })
}

/// Kafka: an authorization id must be the token's principal.
pub fn check_authzid(authzid: Option<&str>, validated: Validated) -> Result<Validated, OAuthError> {
    if authzid.is_some_and(|a| a != validated.principal) {
        return Err(OAuthError::Malformed(
            "Authentication failed: Client requested an authorization id that is different from the token's principal name"
                .to_owned(),
        ));
    }
    Ok(validated)
}

fn decode_json(
    part: &str,
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
    let bytes = B64URL
        .decode(part.trim_end_matches('='))
        .map_err(|_| invalid_token(format!("the {what} is not Base64URL")))?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(invalid_token(format!("the {what} is not a JSON object"))),
    }
}

fn seconds_claim(
    claims: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<f64>, OAuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite())
            .map(Some)
            .ok_or_else(|| invalid_token(format!("the {name} claim is not a number"))),
    }
}

/// `OAuthBearerUnsecuredJws` plus `OAuthBearerValidationUtils` with Kafka's defaults.
pub fn validate_unsecured_jws(token: &str, now_ms: u64) -> Result<Validated, OAuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid_token(
            "Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values",
        ));
    };
    if !signature.is_empty() {
        return Err(invalid_token(
            "Unsecured JWS must not contain a digital signature",
        ));
    }
    let header = decode_json(header, "header")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("none") {
        return Err(invalid_token("Unsecured JWS must have alg=none"));
    }
    let claims = decode_json(claims, "claims")?;
    let principal = match claims.get(PRINCIPAL_CLAIM) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(invalid_token("the sub claim is missing or not a string")),
    };
    let exp =
        seconds_claim(&claims, "exp")?.ok_or_else(|| invalid_token("the exp claim is missing"))?;
    let exp_ms = (exp * 1000.0).max(0.0) as u64;
    if now_ms >= exp_ms {
        return Err(invalid_token("the token expired"));
    }
    if let Some(iat) = seconds_claim(&claims, "iat")? {
        let iat_ms = (iat * 1000.0).max(0.0) as u64;
        if iat_ms > now_ms {
            return Err(invalid_token("the token was issued in the future"));
        }
        if iat_ms >= exp_ms {
            return Err(invalid_token("the token expires before it was issued"));
        }
    }
    Ok(Validated {
        principal,
        expires_at_ms: exp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jws(header: &str, claims: &str) -> String {
        format!("{}.{}.", B64URL.encode(header), B64URL.encode(claims))
    }

    fn response(token: &str) -> Vec<u8> {
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }

    const NOW_MS: u64 = 1_700_000_000_000;

    #[test]
    fn a_valid_unsecured_token_names_the_principal() {
        let token = jws(
            r#"{"alg":"none"}"#,
            r#"{"sub":"alice","iat":1699999999,"exp":1700003600}"#,
        );
        let ok = validate_initial_response(&response(&token), NOW_MS).unwrap();
        assert_eq!(ok.principal, "alice");
        assert_eq!(ok.expires_at_ms, 1_700_003_600_000);
        // With an authzid equal to the principal, and an extension.
        let with = format!("n,a=alice,\u{1}auth=Bearer {token}\u{1}ext=1\u{1}\u{1}");
        assert!(validate_initial_response(with.as_bytes(), NOW_MS).is_ok());
        let other = format!("n,a=bob,\u{1}auth=Bearer {token}\u{1}\u{1}");
        assert!(matches!(
            validate_initial_response(other.as_bytes(), NOW_MS),
            Err(OAuthError::Malformed(_))
        ));
    }

    #[test]
    fn bad_tokens_get_the_json_challenge() {
        for (header, claims) in [
            (r#"{"alg":"none"}"#, r#"{"sub":"alice","exp":1600000000}"#),
            (r#"{"alg":"none"}"#, r#"{"sub":"alice"}"#),
            (r#"{"alg":"none"}"#, r#"{"exp":1800000000}"#),
            (r#"{"alg":"RS256"}"#, r#"{"sub":"alice","exp":1800000000}"#),
            (
                r#"{"alg":"none"}"#,
                r#"{"sub":"alice","exp":1800000000,"iat":1800000001}"#,
            ),
            (r#"{"alg":"none"}"#, r#"{"sub":"alice","exp":"soon"}"#),
            (r#"not json"#, r#"{"sub":"alice","exp":1800000000}"#),
        ] {
            let err =
                validate_initial_response(&response(&jws(header, claims)), NOW_MS).unwrap_err();
            assert!(
                matches!(&err, OAuthError::InvalidToken { challenge, .. } if challenge == r#"{"status":"invalid_token"}"#),
                "{header} {claims}: {err:?}"
            );
        }
        let signed = format!(
            "{}sig",
            jws(r#"{"alg":"none"}"#, r#"{"sub":"a","exp":1800000000}"#)
        );
        assert!(matches!(
            validate_initial_response(&response(&signed), NOW_MS),
            Err(OAuthError::InvalidToken { .. })
        ));
    }

    #[test]
    fn malformed_responses_fail_at_once() {
        for bad in [
            &b""[..],
            b"y,,\x01auth=Bearer x\x01\x01",
            b"n,,auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer x\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01noauth=1\x01\x01",
            b"n,,\x01=x\x01\x01",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    validate_initial_response(bad, NOW_MS),
                    Err(OAuthError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
