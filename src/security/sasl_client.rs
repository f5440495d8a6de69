//! The client side of SASL, for connections this broker opens to other brokers (Kafka's
//! `sasl.mechanism.inter.broker.protocol`): the broker's own login from a JAAS config as Kafka
//! parses it (`PlainLoginModule` / `ScramLoginModule` with `username` and `password`), and the
//! PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, Kafka's `ScramSaslClient`) client
//! mechanisms as pure state machines (no I/O; `cluster::inter_broker` runs the exchange).
//!
//! Invariants: the password is never logged (`Debug` hides it); the server's first message
//! must extend our nonce and ask for Kafka's iteration bounds (4096..=16384), and the server's
//! signature is verified before the exchange counts as done; every parse is checked.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::sasl::SaslMechanism;
use super::scram::{constant_time_eq, Mechanism, ITERATIONS_MAX, ITERATIONS_MIN};

/// Kafka's login modules whose `username` / `password` options are the client's credentials.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
pub const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// One login module of a JAAS config (`Class flag key=value ...;`).
#[derive(Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub module: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for JaasEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JaasEntry")
            .field("module", &self.module)
            .field("flag", &self.flag)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

/// Splits a JAAS config as Kafka's `JaasConfig` (a `StreamTokenizer`) does: words, `"quoted"`
/// strings (backslash escapes the next character), `=`, `;`, and `//` / `/* */` comments.
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '=' => tokens.push(Token::Equals),
            ';' => tokens.push(Token::Semicolon),
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(other) => value.push(other),
                            None => return Err("unterminated quoted string".into()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        None => return Err("unterminated comment".into()),
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                    }
                }
            }
            c => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || matches!(next, '=' | ';' | '"') {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses a `sasl.jaas.config` value; Kafka requires exactly one login module.
pub fn parse_jaas(text: &str) -> Result<JaasEntry, String> {
    let tokens = tokenize(text)?;
    let mut entries = Vec::new();
    let mut rest = tokens.into_iter().peekable();
    while rest.peek().is_some() {
        let Some(Token::Word(module)) = rest.next() else {
            return Err("expected a login module class name".into());
        };
        let Some(Token::Word(flag)) = rest.next() else {
            return Err(format!("expected a control flag after {module}"));
        };
        if !matches!(
            flag.to_ascii_lowercase().as_str(),
            "required" | "requisite" | "sufficient" | "optional"
        ) {
            return Err(format!("invalid control flag {flag}"));
        }
        let mut options = BTreeMap::new();
        loop {
            match rest.next() {
                Some(Token::Semicolon) => break,
                Some(Token::Word(key)) => {
                    if rest.next() != Some(Token::Equals) {
                        return Err(format!("expected = after option {key}"));
                    }
                    let value = match rest.next() {
                        Some(Token::Word(v) | Token::Quoted(v)) => v,
                        _ => return Err(format!("expected a value for option {key}")),
                    };
                    options.insert(key, value);
                }
                _ => return Err("expected option=value or ; to end the login module".into()),
            }
        }
        entries.push(JaasEntry {
            module,
            flag,
            options,
        });
    }
    let count = entries.len();
    match (entries.pop(), count) {
        (Some(entry), 1) => Ok(entry),
        _ => Err(format!(
            "JAAS config property contains {count} login modules, should be 1 module"
        )),
    }
}

/// How this broker logs in to other brokers: a mechanism and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ClientLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLogin")
            .field("mechanism", &self.mechanism.name())
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .finish()
    }
}

impl ClientLogin {
    /// The login of `mechanism` from a JAAS config: a PLAIN or SCRAM login module (either
    /// serves either mechanism, as in Kafka: both put the username and password in the
    /// subject) with both options.
    pub fn from_jaas(mechanism: SaslMechanism, jaas: &str) -> Result<Self, String> {
        if matches!(mechanism, SaslMechanism::OAuthBearer) {
            return Err("OAUTHBEARER is not supported between brokers".into());
        }
        let entry = parse_jaas(jaas)?;
        if entry.module != PLAIN_LOGIN_MODULE && entry.module != SCRAM_LOGIN_MODULE {
            return Err(format!(
                "login module {} is not supported ({PLAIN_LOGIN_MODULE} or {SCRAM_LOGIN_MODULE})",
                entry.module
            ));
        }
        let option = |key: &str| {
            entry
                .options
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("{} needs the option {key}", entry.module))
        };
        Ok(Self {
            mechanism,
            username: option("username")?,
            password: option("password")?,
        })
    }
}

/// PLAIN's single token: `authzid NUL authcid NUL passwd` with an empty authzid (Kafka's).
pub fn plain_token(login: &ClientLogin) -> Vec<u8> {
    let mut token = Vec::with_capacity(login.username.len() + login.password.len() + 2);
    token.push(0);
    token.extend_from_slice(login.username.as_bytes());
    token.push(0);
    token.extend_from_slice(login.password.as_bytes());
    token
}

/// The server-first message's parts, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    raw: String,
}

/// One SCRAM exchange, client side.
pub struct ScramClient {
    mechanism: Mechanism,
    client_nonce: String,
    client_first_bare: String,
    /// Set by `client_final`: the signature the server must answer.
    expected_server_signature: Option<Vec<u8>>,
}

/// RFC 5802 saslname: `=` and `,` escaped.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    /// `client_nonce`: fresh random printable text without commas.
    pub fn new(mechanism: Mechanism, username: &str, client_nonce: String) -> Self {
        let client_first_bare = format!("n={},r={client_nonce}", encode_saslname(username));
        Self {
            mechanism,
            client_nonce,
            client_first_bare,
            expected_server_signature: None,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// client-first: no channel binding, no authzid.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Checks server-first (`r=..,s=..,i=..`): the nonce extends ours, the iterations are
    /// within Kafka's bounds (a server asking for more would make us burn CPU).
    pub fn server_first(&self, token: &[u8]) -> Result<ServerFirst, String> {
        let text = std::str::from_utf8(token).map_err(|_| "server-first is not UTF-8")?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v.to_owned()),
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                Some(("m", _)) => return Err("mandatory SCRAM extension not supported".into()),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err("invalid SCRAM server-first message".into());
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err("the server nonce does not extend the client nonce".into());
        }
        let (min, max) = (ITERATIONS_MIN.unsigned_abs(), ITERATIONS_MAX.unsigned_abs());
        if !(min..=max).contains(&iterations) {
            return Err(format!(
                "the server asked for {iterations} iterations (Kafka's bounds: {min}..={max})"
            ));
        }
        Ok(ServerFirst {
            nonce,
            salt,
            iterations,
            raw: text.to_owned(),
        })
    }

    /// client-final with the proof, from SaltedPassword = Hi(password, salt, i) (computed by
    /// the caller, off the shard thread).
    pub fn client_final(&mut self, first: &ServerFirst, salted_password: &[u8]) -> Vec<u8> {
        let m = self.mechanism;
        let without_proof = format!("c={},r={}", B64.encode("n,,"), first.nonce);
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, first.raw);
        let client_key = m.hmac(salted_password, b"Client Key");
        let stored_key = m.hash(&client_key);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(salted_password, b"Server Key");
        self.expected_server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        format!("{without_proof},p={}", B64.encode(proof)).into_bytes()
    }

    /// Checks server-final (`v=signature`, or `e=error`).
    pub fn server_final(&self, token: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(token).map_err(|_| "server-final is not UTF-8")?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        let signature = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or("invalid SCRAM server-final message")?;
        match &self.expected_server_signature {
            Some(expected) if constant_time_eq(expected, &signature) => Ok(()),
            _ => Err("the server's signature is wrong (not the broker we know)".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sasl;
    use crate::security::scram::{Credential, Users};

    const SCRAM_JAAS: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required \
                              username=\"broker\" password=\"broker-secret\";";

    #[test]
    fn jaas_configs_parse_as_kafka_writes_them() {
        let entry = parse_jaas(SCRAM_JAAS).unwrap();
        assert_eq!(entry.module, SCRAM_LOGIN_MODULE);
        assert_eq!(entry.options["username"], "broker");
        assert_eq!(entry.options["password"], "broker-secret");
        // Unquoted values, escapes, comments, extra options (PLAIN's server-side user_*).
        let plain = "org.apache.kafka.common.security.plain.PlainLoginModule required\n \
                     username=admin /* the broker */ password=\"a\\\"b;c\" user_admin=\"x\";";
        let entry = parse_jaas(plain).unwrap();
        assert_eq!(entry.options["username"], "admin");
        assert_eq!(entry.options["password"], "a\"b;c");
        let login = ClientLogin::from_jaas(SaslMechanism::Plain, plain).unwrap();
        assert_eq!(login.password, "a\"b;c");
        assert!(!format!("{login:?}").contains("a\"b"), "Debug hides it");
        for bad in [
            "",
            "X required username=\"a\" password=\"b\"", // no ;
            "X bogus username=\"a\";",                  // bad flag
            "X required username;",                     // no value
            "X required a=\"b\"; Y required c=\"d\";",  // two modules
            "X required username=\"unterminated;",      // open quote
        ] {
            assert!(parse_jaas(bad).is_err(), "{bad:?}");
        }
        let scram = SaslMechanism::Scram(Mechanism::Sha512);
        let wrong_module =
            "com.sun.security.auth.module.Krb5LoginModule required username=\"a\" password=\"b\";";
        assert!(ClientLogin::from_jaas(scram, wrong_module).is_err());
        let no_password =
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"a\";";
        assert!(ClientLogin::from_jaas(scram, no_password)
            .unwrap_err()
            .contains("password"));
    }

    fn users(user: &str, password: &str, m: Mechanism) -> Users {
        let mut users = Users::new();
        users.entry(user.into()).or_default().insert(
            m,
            Credential::from_password(m, password, b"0123456789salt", 4096),
        );
        users
    }

    /// The client against the server's own state machine (`security::sasl`).
    fn exchange(m: Mechanism, password: &str) -> Result<(), String> {
        let store = users("broker", "broker-secret", m);
        let lookup = |u: &str, m: Mechanism| store.get(u).and_then(|c| c.get(&m)).cloned();
        let mut client = ScramClient::new(m, "broker", "clientnonce123".into());
        let (server_first, pending) =
            sasl::scram_first(m, &client.client_first(), "servernonce456", &lookup)
                .map_err(|e| e.message)?;
        let first = client.server_first(&server_first)?;
        let salted = m.salted_password(password.as_bytes(), &first.salt, first.iterations);
        let client_final = client.client_final(&first, &salted);
        let (server_final, user) =
            sasl::scram_final(&pending, &client_final).map_err(|e| e.message)?;
        assert_eq!(user, "broker");
        client.server_final(&server_final)
    }

    #[test]
    fn scram_client_authenticates_against_the_server_with_the_right_password_only() {
        for m in Mechanism::ALL {
            exchange(m, "broker-secret").unwrap();
            assert!(exchange(m, "wrong").is_err(), "{m:?}");
        }
    }

    #[test]
    fn scram_client_refuses_a_bad_server() {
        let mut client = ScramClient::new(Mechanism::Sha256, "u,=x", "abc".into());
        assert_eq!(client.client_first(), b"n,,n=u=2C=3Dx,r=abc");
        let salt = B64.encode("salt");
        for bad in [
            format!("r=zzz,s={salt},i=4096"),    // does not extend our nonce
            format!("r=abc,s={salt},i=4096"),    // adds nothing
            format!("r=abcd,s={salt},i=100"),    // too few iterations
            format!("r=abcd,s={salt},i=999999"), // too many
            "r=abcd,i=4096".to_owned(),
            "e=unknown-user".to_owned(),
        ] {
            assert!(client.server_first(bad.as_bytes()).is_err(), "{bad}");
        }
        let first = client
            .server_first(format!("r=abcd,s={salt},i=4096").as_bytes())
            .unwrap();
        let _ = client.client_final(&first, &[7u8; 32]);
        assert!(client.server_final(b"v=AAAA").is_err(), "wrong signature");
        assert!(client.server_final(b"e=invalid-proof").is_err());
    }

    #[test]
    fn plain_token_is_what_the_server_parses() {
        let login = ClientLogin {
            mechanism: SaslMechanism::Plain,
            username: "broker".into(),
            password: "pw".into(),
        };
        assert_eq!(
            sasl::parse_plain(&plain_token(&login)).unwrap(),
            ("broker".to_owned(), "pw".to_owned())
        );
    }
}
