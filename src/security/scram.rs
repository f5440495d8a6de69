//! SCRAM credentials (RFC 5802 / RFC 7677, Kafka's ScramCredential): the math, and the reader
//! of the pre-image file `__cluster/scram_credentials.toml`. The credentials themselves live in
//! the metadata image as `UserScramCredentialRecord`s (`cluster::security_image`), which is
//! what authentication reads, on the connection's own shard.
//!
//! Invariants: no password is ever stored or logged, only (salt, StoredKey, ServerKey,
//! iterations).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// File name of the store under `__cluster/`.
pub const STORE_FILE: &str = "scram_credentials.toml";
/// Kafka's bounds on iterations (ScramMechanism.minIterations / maxIterations).
pub const ITERATIONS_MIN: i32 = 4096;
pub const ITERATIONS_MAX: i32 = 16384;

/// The SCRAM mechanisms, with Kafka's wire ids (ScramMechanism.type()).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn from_id(id: i8) -> Option<Self> {
        match id {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn id(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    // An invariant, not client input: HMAC takes keys of any length (RFC 2104 hashes a long
    // key), so `new_from_slice` cannot fail for it.
    #[allow(clippy::expect_used)]
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Self::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// What the broker keeps per user and mechanism (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl Credential {
    /// From SaltedPassword = Hi(password, salt, i), which AlterUserScramCredentials carries.
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Self {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = mechanism.salted_password(password.as_bytes(), salt, iterations);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// Whether `password` is this credential's password (PLAIN's check). Runs PBKDF2: call it
    /// off the shard thread.
    pub fn matches_password(&self, mechanism: Mechanism, password: &str) -> bool {
        let other = Self::from_password(mechanism, password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

/// Finds a user's credential for a mechanism (the connection's shard reads its metadata image;
/// called without awaiting in between, so the image is never borrowed across a suspension).
pub type CredentialLookup<'a> = &'a dyn Fn(&str, Mechanism) -> Option<Credential>;

/// Compares without an early exit, so timing does not tell how much of a key matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// On-disk form of one credential.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCredential {
    user: String,
    mechanism: Mechanism,
    salt: String,
    stored_key: String,
    server_key: String,
    iterations: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default)]
    credential: Vec<StoredCredential>,
}

pub type Users = BTreeMap<String, BTreeMap<Mechanism, Credential>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// Reads the pre-image `<data_dir>/__cluster/scram_credentials.toml` (absent = no users):
/// what `cluster::security_store::migrate_legacy` turns into records once. The broker reads
/// credentials from its metadata image (`cluster::security_image`).
pub fn load_legacy(data_dir: &Path) -> Result<Users, StoreError> {
    let path = data_dir.join("__cluster").join(STORE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_users(&text).map_err(|reason| StoreError::Parse { path, reason }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::new()),
        Err(source) => Err(StoreError::Read { path, source }),
    }
}

/// The old file's text for one credential (tests of the migration).
#[cfg(test)]
pub fn render_legacy_for_tests(user: &str, mechanism: Mechanism, c: &Credential) -> String {
    let mut users = Users::new();
    users
        .entry(user.to_owned())
        .or_default()
        .insert(mechanism, c.clone());
    render_users(&users)
}

fn parse_users(text: &str) -> Result<Users, String> {
    let file: StoreFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut users = Users::new();
    for c in file.credential {
        let decode = |field: &str, value: &str| {
            B64.decode(value)
                .map_err(|e| format!("user {}: bad {field}: {e}", c.user))
        };
        let credential = Credential {
            salt: decode("salt", &c.salt)?,
            stored_key: decode("stored_key", &c.stored_key)?,
            server_key: decode("server_key", &c.server_key)?,
            iterations: c.iterations,
        };
        users
            .entry(c.user.clone())
            .or_default()
            .insert(c.mechanism, credential);
    }
    Ok(users)
}

#[cfg(test)]
fn render_users(users: &Users) -> String {
    let credential = users
        .iter()
        .flat_map(|(user, mechanisms)| {
            mechanisms
                .iter()
                .map(move |(mechanism, c)| StoredCredential {
                    user: user.clone(),
                    mechanism: *mechanism,
                    salt: B64.encode(&c.salt),
                    stored_key: B64.encode(&c.stored_key),
                    server_key: B64.encode(&c.server_key),
                    iterations: c.iterations,
                })
        })
        .collect();
    toml::to_string(&StoreFile { credential }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_sha256_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = Credential::from_password(Mechanism::Sha256, "pencil", &salt, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final_bare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{client_final_bare}");
        let server_signature = Mechanism::Sha256.hmac(&c.server_key, auth.as_bytes());
        assert_eq!(
            B64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(c.matches_password(Mechanism::Sha256, "pencil"));
        assert!(!c.matches_password(Mechanism::Sha256, "pencil2"));
    }

    #[test]
    fn the_old_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_legacy(dir.path()).unwrap().is_empty(), "absent = none");
        let c = Credential::from_password(Mechanism::Sha512, "secret", b"salty", 4096);
        let text = render_legacy_for_tests("alice", Mechanism::Sha512, &c);
        assert!(!text.contains("secret"), "no password on disk");
        let path = dir.path().join("__cluster").join(STORE_FILE);
        crate::atomic_file::write(&path, text.as_bytes()).unwrap();
        let users = load_legacy(dir.path()).unwrap();
        assert_eq!(
            users.get("alice").and_then(|m| m.get(&Mechanism::Sha512)),
            Some(&c)
        );
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
