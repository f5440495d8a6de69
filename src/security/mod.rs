//! Security: listeners and their security protocols, TLS (rustls), SASL (PLAIN, SCRAM) and the
//! principal a connection acts as. Kafka's settings and wire behaviour are the spec.
//!
//! Layering: `net` uses `tls` (server config, principal of a certificate) and `session` (the
//! per-connection authentication state); the SASL handlers use `sasl` (pure state machines,
//! no I/O) and `scram` (the credential math; the salted credentials themselves are records of
//! the metadata image, `cluster::security_image`). `acl` decides authorization (Kafka's ACL
//! model, pure) and `acl_store::Authorizer` applies the authorizer's settings to the ACLs of
//! the shard's image for the handlers' checks (`handlers::authz`).
//! `sasl_client` is the broker's own login to other brokers (JAAS config, PLAIN and SCRAM
//! client state machines), run by `cluster::inter_broker`.
//! Nothing here knows about partitions or storage.

pub mod acl;
pub mod acl_store;
pub mod config;
pub mod listener;
pub mod listener_configs;
pub mod oauth_jwks;
pub mod oauthbearer;
pub mod principal;
pub mod sasl;
pub mod sasl_client;
pub mod scram;
pub mod session;
pub mod tls;

/// Kafka's principal type for users.
pub const USER_TYPE: &str = "User";

/// The principal of a connection that did not authenticate (PLAINTEXT, or SSL without a client
/// certificate), as Kafka names it.
pub const ANONYMOUS: &str = "ANONYMOUS";
