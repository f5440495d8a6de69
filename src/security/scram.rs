//! SCRAM credentials (RFC 5802 / RFC 7677, Kafka's ScramCredential): the math, and the store
//! of every user's salted credentials, persisted in `__cluster/scram_credentials.toml`.
//!
//! Invariants: no password is ever stored or logged, only (salt, StoredKey, ServerKey,
//! iterations); a change is persisted atomically (temp file, fsync, rename) before any shard
//! sees it, and changes are serialised by one async lock, so the file and the memory agree.
//! The store is shared by every shard behind an `RwLock`: it is read once per authentication,
//! never on the request path, and a read never waits on disk.

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
    #[error("cannot persist SCRAM credentials: {0}")]
    Write(std::io::Error),
}

/// Every user's SCRAM credentials, shared by all shards.
#[derive(Debug)]
pub struct CredentialStore {
    users: crate::atomic_file::Persisted<Users>,
}

impl CredentialStore {
    /// Loads `<data_dir>/__cluster/scram_credentials.toml` (absent = no users).
    pub fn load(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("__cluster").join(STORE_FILE);
        let users = match std::fs::read_to_string(&path) {
            Ok(text) => parse_users(&text).map_err(|reason| StoreError::Parse {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Users::new(),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Self {
            users: crate::atomic_file::Persisted::new(path, users),
        })
    }

    pub fn get(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        self.users
            .read(|users| users.get(user).and_then(|m| m.get(&mechanism)).cloned())
    }

    /// A snapshot of every user's mechanisms and iterations.
    pub fn snapshot(&self) -> Users {
        self.users.snapshot()
    }

    /// Applies `change` to a copy, persists it, then publishes it. `change` returns what the
    /// caller reports; nothing is written when it reports no change (`false`).
    pub async fn modify<R>(
        &self,
        change: impl FnOnce(&mut Users) -> (R, bool),
    ) -> Result<R, StoreError> {
        self.users
            .modify(change, render_users)
            .await
            .map_err(StoreError::Write)
    }
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
    fn store_round_trips_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::load(dir.path()).unwrap();
        assert!(store.get("alice", Mechanism::Sha512).is_none());
        let c = Credential::from_password(Mechanism::Sha512, "secret", b"salty", 4096);
        let stored = c.clone();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            store
                .modify(move |users| {
                    users
                        .entry("alice".into())
                        .or_default()
                        .insert(Mechanism::Sha512, stored);
                    ((), true)
                })
                .await
                .unwrap();
        });
        assert_eq!(store.get("alice", Mechanism::Sha512), Some(c.clone()));
        let text = std::fs::read_to_string(dir.path().join("__cluster").join(STORE_FILE)).unwrap();
        assert!(!text.contains("secret"), "no password on disk");
        let reloaded = CredentialStore::load(dir.path()).unwrap();
        assert_eq!(reloaded.get("alice", Mechanism::Sha512), Some(c));
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
