//! Broker configuration: the TOML file (Kafka setting names as quoted keys), command-line
//! overrides, and the defaults that make a bare `sluice` serve 127.0.0.1:9092 from `./data`.
//!
//! Invariants: every setting has a default (`#[serde(default)]`), unknown keys are rejected so a
//! typo never silently falls back to a default, and `validate` bounds every limit before any
//! shard starts. `configs/sluice.toml` documents every key with its default.
//!
//! The file is parsed as the flat `ConfigFile`; `BrokerConfig` holds it split into one section
//! per module (`config/sections.rs`). A new setting is a field of `ConfigFile` (its Kafka key
//! and default) plus the same name in its module's section; the build fails until both exist.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod sections;
pub use sections::*;

/// Errors loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid address {value:?} for {key}: {reason}")]
    Address {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid value for {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The config file as parsed: one flat table whose keys are Kafka's setting names (serde renames),
/// so parsing, defaults and error messages stay those of one struct. `BrokerConfig` moves its
/// fields into per-module sections (`config::sections`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Address the shards listen on (all bind it with SO_REUSEPORT). Port 0 picks a free port.
    pub listen: String,
    /// Address given to clients in Metadata; defaults to the resolved listen address.
    pub advertise: Option<String>,
    /// Address of the admin HTTP endpoint (`GET /metrics`), served by shard 0. Port 0 picks a
    /// free port; the bound address is logged as `admin listening=ADDR`.
    #[serde(rename = "admin.listen")]
    pub admin_listen: String,
    /// Directory holding partition logs and the topic registry.
    pub data_dir: PathBuf,
    /// Number of shards (threads); 0 = one per available core.
    pub cores: usize,
    /// Pin shard i to core i.
    #[serde(rename = "pin.threads")]
    pub pin_threads: bool,
    /// Bound of each shard's cross-shard mailbox.
    #[serde(rename = "shard.mailbox.capacity")]
    pub mailbox_capacity: usize,
    #[serde(rename = "node.id")]
    pub node_id: i32,
    #[serde(rename = "cluster.id")]
    pub cluster_id: String,
    /// Kafka's `broker.rack`: the rack this broker registers with (Metadata, DescribeCluster).
    #[serde(rename = "broker.rack")]
    pub broker_rack: Option<String>,
    #[serde(rename = "socket.request.max.bytes")]
    pub socket_request_max_bytes: u32,
    /// Requests in flight per connection (responses are still written in request order).
    #[serde(rename = "queued.max.requests")]
    pub queued_max_requests: usize,
    /// Connections accepted per shard; further connections are closed at once.
    #[serde(rename = "max.connections.per.shard")]
    pub max_connections_per_shard: usize,
    #[serde(rename = "auto.create.topics.enable")]
    pub auto_create_topics_enable: bool,
    #[serde(rename = "num.partitions")]
    pub num_partitions: i32,
    /// Upper bound on partitions of one topic (CreateTopics beyond it: INVALID_PARTITIONS).
    #[serde(rename = "max.partitions.per.topic")]
    pub max_partitions_per_topic: i32,
    /// Kafka's `default.replication.factor`: replicas of a topic created with
    /// replication factor -1 (auto-created topics included).
    #[serde(rename = "default.replication.factor")]
    pub default_replication_factor: i16,
    /// Kafka's `offsets.topic.replication.factor`: replicas of each `__consumer_offsets`
    /// partition (capped at the registered brokers while the cluster is smaller).
    #[serde(rename = "offsets.topic.replication.factor")]
    pub offsets_topic_replication_factor: i16,
    /// Broker-side cap of a fetch response's size (the client's max_bytes is also honoured).
    #[serde(rename = "fetch.max.bytes")]
    pub fetch_max_bytes: u32,
    /// Cap on a fetch's max_wait_ms, so a long poll never holds a request slot for long.
    #[serde(rename = "fetch.max.wait.ms")]
    pub fetch_max_wait_ms: u32,
    /// Splice record bytes from segment files to the socket (true) or read them into pooled
    /// buffers and write those (false). See perf/README.md "Zero-copy vs copy fetch".
    #[serde(rename = "fetch.zero.copy")]
    pub fetch_zero_copy: bool,
    /// Capacity requested for each connection's splice pipe (F_SETPIPE_SZ; the kernel caps it
    /// at /proc/sys/fs/pipe-max-size). Larger pipes move more bytes per splice.
    #[serde(rename = "fetch.splice.pipe.bytes")]
    pub fetch_splice_pipe_bytes: usize,
    /// Bytes of read buffers each shard keeps for reuse on the copy path.
    #[serde(rename = "fetch.copy.pool.bytes")]
    pub fetch_copy_pool_bytes: usize,
    /// KIP-227 incremental fetch sessions cached per shard.
    #[serde(rename = "max.incremental.fetch.session.cache.slots")]
    pub fetch_session_cache_slots: usize,
    /// Partitions one fetch session may track.
    #[serde(rename = "fetch.session.max.partitions")]
    pub fetch_session_partitions_max: usize,
    /// Long-poll waiters one partition may hold; beyond it a fetch waits on its timer only.
    #[serde(rename = "fetch.max.waiters.per.partition")]
    pub fetch_waiters_per_partition_max: usize,
    /// How long shutdown waits for in-flight requests before closing the logs anyway.
    #[serde(rename = "shutdown.timeout.ms")]
    pub shutdown_timeout_ms: u64,
    /// How often each shard applies retention to its partitions.
    #[serde(rename = "log.retention.check.interval.ms")]
    pub retention_check_interval_ms: u64,
    #[serde(rename = "message.max.bytes")]
    pub message_max_bytes: u32,
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: u64,
    #[serde(rename = "log.roll.ms")]
    pub log_roll_ms: u64,
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: i64,
    #[serde(rename = "log.retention.bytes")]
    pub log_retention_bytes: i64,
    #[serde(rename = "log.index.interval.bytes")]
    pub log_index_interval_bytes: u32,
    #[serde(rename = "log.index.size.max.bytes")]
    pub log_index_size_max_bytes: u32,
    /// Appends up to this size are a `pwrite` on the shard thread instead of an io_uring
    /// write (ext4 punts every buffered io_uring write to a kernel worker); 0 = never.
    #[serde(rename = "log.write.inline.max.bytes")]
    pub log_write_inline_max_bytes: u32,
    /// The most a produced compressed batch may inflate to while its records are validated
    /// (a decompression bomb is refused with CORRUPT_MESSAGE once it gets there).
    #[serde(rename = "log.batch.inflated.max.bytes")]
    pub log_batch_inflated_max_bytes: u64,
    /// Sealed segment `.log` files each shard keeps open (least recently used closed first;
    /// active segments' files are always open and not counted).
    #[serde(rename = "log.sealed.segment.files.open.max")]
    pub log_sealed_segment_files_open_max: usize,
    /// Active segment `.log` files (one per partition) each shard keeps open; the least
    /// recently used is closed and reopened on its next append, fsync or read. Sluice's own
    /// setting: Kafka keeps every segment open and needs `nofile` above the partition count.
    #[serde(rename = "log.active.segment.files.open.max")]
    pub log_active_segment_files_open_max: usize,
    /// fsync after this many messages; i64::MAX (Kafka's default) = never by count.
    #[serde(rename = "log.flush.interval.messages")]
    pub log_flush_interval_messages: i64,
    /// fsync when the oldest unflushed append is this old; i64::MAX = never by time.
    #[serde(rename = "log.flush.interval.ms")]
    pub log_flush_interval_ms: i64,
    /// "CreateTime" or "LogAppendTime".
    #[serde(rename = "log.message.timestamp.type")]
    pub log_message_timestamp_type: String,
    /// Start writeback (`sync_file_range` WRITE, not awaited) of a partition's appended bytes
    /// once this many are dirty since the last start, so the fdatasync of an acks=all answer
    /// or of the flush policy finds less to write; 0 = never (`storage::writeback`).
    #[serde(rename = "log.writeback.start.bytes")]
    pub log_writeback_start_bytes: u64,
    /// Keep the blocks up to this many bytes past a partition's active segment end written
    /// with zeros, so appends overwrite allocated blocks and an acks=all fdatasync writes no
    /// extent block or file size (ext4); 0 = off (`storage::prealloc`, decision 0034).
    #[serde(rename = "log.zero.ahead.bytes")]
    pub log_zero_ahead_bytes: u64,
    /// Partitions of the internal `__consumer_offsets` topic (fixed once the topic exists).
    #[serde(rename = "offsets.topic.num.partitions")]
    pub offsets_topic_num_partitions: u32,
    /// segment.bytes of `__consumer_offsets` (a compacted topic, cleaned by the log cleaner).
    #[serde(rename = "offsets.topic.segment.bytes")]
    pub offsets_topic_segment_bytes: u64,
    /// Committed offsets of an empty group expire this long after it became empty.
    #[serde(rename = "offsets.retention.minutes")]
    pub offsets_retention_minutes: u64,
    /// How often expired offsets, offsets of deleted topics and dead groups are removed.
    #[serde(rename = "offsets.retention.check.interval.ms")]
    pub offsets_retention_check_interval_ms: u64,
    /// Longest commit metadata string (longer: OFFSET_METADATA_TOO_LARGE).
    #[serde(rename = "offset.metadata.max.bytes")]
    pub offset_metadata_max_bytes: usize,
    /// How long the first rebalance of an empty group waits for more members.
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: u64,
    #[serde(rename = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: i32,
    #[serde(rename = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: i32,
    /// Members one group may have (GROUP_MAX_SIZE_REACHED beyond).
    #[serde(rename = "group.max.size")]
    pub group_max_size: usize,
    /// Groups one shard coordinates (new groups beyond: COORDINATOR_NOT_AVAILABLE).
    #[serde(rename = "group.max.count.per.shard")]
    pub group_max_count_per_shard: usize,
    /// Granularity of session, rebalance and initial-delay timeouts.
    #[serde(rename = "group.timer.interval.ms")]
    pub group_timer_interval_ms: u64,
    /// Idempotent producers tracked per partition; beyond it the least recently used is
    /// forgotten (it is then treated as unknown: accepted at any sequence, no duplicate check).
    #[serde(rename = "producer.state.max.producers.per.partition")]
    pub producer_state_producers_per_partition_max: usize,
    /// A producer idle this long is forgotten by a partition (Kafka's default: 1 day).
    #[serde(rename = "producer.id.expiration.ms")]
    pub producer_id_expiration_ms: i64,
    /// At open the producer state is the newest `.snapshot` plus the log past it. With no
    /// snapshot after a clean shutdown (a log from before snapshots), the active segment's
    /// batch headers are read, and the previous segment's too when it is at most this size.
    #[serde(rename = "producer.state.rebuild.previous.segment.bytes.max")]
    pub producer_state_rebuild_previous_segment_bytes_max: u64,
    /// Runs the log cleaner (compaction of `cleanup.policy=compact` topics) on every shard.
    #[serde(rename = "log.cleaner.enable")]
    pub log_cleaner_enable: bool,
    /// Memory of the cleaners' offset maps, all shards together (each gets its share).
    #[serde(rename = "log.cleaner.dedupe.buffer.size")]
    pub log_cleaner_dedupe_buffer_size: u64,
    /// Bytes the cleaner reads or writes per I/O.
    #[serde(rename = "log.cleaner.io.buffer.size")]
    pub log_cleaner_io_buffer_size: u64,
    /// Cleaner I/O (read + written) per second, all shards together (each gets its share).
    #[serde(rename = "log.cleaner.io.max.bytes.per.second")]
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// Sleep between two cleaner passes when no log is due.
    #[serde(rename = "log.cleaner.backoff.ms")]
    pub log_cleaner_backoff_ms: u64,
    /// Default min.cleanable.dirty.ratio.
    #[serde(rename = "log.cleaner.min.cleanable.ratio")]
    pub log_cleaner_min_cleanable_ratio: f64,
    /// Default delete.retention.ms.
    #[serde(rename = "log.cleaner.delete.retention.ms")]
    pub log_cleaner_delete_retention_ms: i64,
    /// Default min.compaction.lag.ms.
    #[serde(rename = "log.cleaner.min.compaction.lag.ms")]
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// Default max.compaction.lag.ms.
    #[serde(rename = "log.cleaner.max.compaction.lag.ms")]
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// Listeners, `NAME://HOST:PORT` comma-separated (Kafka's `listeners`); when unset, one
    /// PLAINTEXT listener on `listen`. See `security::listener`.
    pub listeners: Option<String>,
    /// What clients are told per listener, `NAME://HOST:PORT`; defaults to each listener.
    #[serde(rename = "advertised.listeners")]
    pub advertised_listeners: Option<String>,
    /// Listener name -> security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    #[serde(rename = "listener.security.protocol.map")]
    pub listener_security_protocol_map: String,
    /// Only "PEM" (rustls reads PEM; JKS/PKCS12 are Java formats).
    #[serde(rename = "ssl.keystore.type")]
    pub ssl_keystore_type: String,
    /// A PEM file holding the broker's certificate chain and its private key.
    #[serde(rename = "ssl.keystore.location")]
    pub ssl_keystore_location: Option<PathBuf>,
    /// The certificate chain as inline PEM (instead of `ssl.keystore.location`).
    #[serde(rename = "ssl.keystore.certificate.chain")]
    pub ssl_keystore_certificate_chain: Option<String>,
    /// The private key as inline PEM (unencrypted PKCS#8, PKCS#1 or SEC1).
    #[serde(rename = "ssl.keystore.key")]
    pub ssl_keystore_key: Option<String>,
    /// Encrypted private keys are not supported; setting this is an error.
    #[serde(rename = "ssl.key.password")]
    pub ssl_key_password: Option<String>,
    #[serde(rename = "ssl.truststore.type")]
    pub ssl_truststore_type: String,
    /// A PEM file of the CA certificates client certificates must chain to.
    #[serde(rename = "ssl.truststore.location")]
    pub ssl_truststore_location: Option<PathBuf>,
    /// The CA certificates as inline PEM (instead of `ssl.truststore.location`).
    #[serde(rename = "ssl.truststore.certificates")]
    pub ssl_truststore_certificates: Option<String>,
    /// "none", "requested" or "required".
    #[serde(rename = "ssl.client.auth")]
    pub ssl_client_auth: String,
    /// Subset of "TLSv1.2,TLSv1.3".
    #[serde(rename = "ssl.enabled.protocols")]
    pub ssl_enabled_protocols: String,
    /// Kafka's rules mapping a certificate's subject DN to a principal name.
    #[serde(rename = "ssl.principal.mapping.rules")]
    pub ssl_principal_mapping_rules: String,
    /// SASL mechanisms offered on SASL listeners (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    #[serde(rename = "sasl.enabled.mechanisms")]
    pub sasl_enabled_mechanisms: String,
    /// Delay before a failed authentication is answered and the connection closed.
    #[serde(rename = "connection.failed.authentication.delay.ms")]
    pub connection_failed_authentication_delay_ms: u64,
    /// Longest time from accept to the end of the TLS handshake and SASL exchange.
    #[serde(rename = "authentication.timeout.ms")]
    pub authentication_timeout_ms: u64,
    /// Largest request frame before and during SASL authentication (Kafka's name and default).
    #[serde(rename = "sasl.server.max.receive.size")]
    pub sasl_server_max_receive_size: usize,
    /// KIP-368: SASL sessions expire after this (clients re-authenticate; others are closed).
    /// 0 = never, Kafka's default.
    #[serde(rename = "connections.max.reauth.ms")]
    pub connections_max_reauth_ms: u64,
    /// Turns ACL authorization on: Kafka's StandardAuthorizer or AclAuthorizer class name.
    /// Empty (the default) = no authorizer, everything allowed. See `security::acl`.
    #[serde(rename = "authorizer.class.name")]
    pub authorizer_class_name: String,
    /// Principals allowed everything, `;`-separated (`User:admin;User:ops`).
    #[serde(rename = "super.users")]
    pub super_users: String,
    /// With an authorizer: whether a resource without any ACL is open to all (Kafka: false).
    #[serde(rename = "allow.everyone.if.no.acl.found")]
    pub allow_everyone_if_no_acl_found: bool,
    /// When set, the admin HTTP endpoint requires `Authorization: Bearer <token>`.
    #[serde(rename = "admin.auth.token")]
    pub admin_auth_token: Option<String>,
    /// Whether an acks=all produce is answered only after its data is fsynced (true, the
    /// default; one shard-wide group commit per loop turn, `storage::sync`). false = Kafka's
    /// semantics: answered once written (durability from the flush policy and replication).
    #[serde(rename = "log.flush.on.acks.all")]
    pub log_flush_on_acks_all: bool,
    /// io_uring setup flags of every shard's ring, comma-separated: SINGLE_ISSUER,
    /// DEFER_TASKRUN (needs SINGLE_ISSUER), COOP_TASKRUN; "" = none (`shards::RingSetup`).
    #[serde(rename = "shard.io_uring.setup")]
    pub shard_io_uring_setup: String,
    /// Client quotas: samples kept per rate (Kafka's name and default; `quotas::rate`).
    #[serde(rename = "quota.window.num")]
    pub quota_window_num: usize,
    /// Client quotas: the span of one sample, in seconds (Kafka's name and default).
    #[serde(rename = "quota.window.size.seconds")]
    pub quota_window_size_seconds: u64,
    /// Client quotas: most rates kept per quota type (one per user / client id measured);
    /// past it the least recently used is dropped. Sluice's own bound.
    #[serde(rename = "quota.sensors.max")]
    pub quota_sensors_max: usize,
    /// KIP-612: new connections per second the broker accepts on all its listeners; past it
    /// new connections wait (Kafka's name and default: 2147483647, no limit).
    #[serde(rename = "max.connection.creation.rate")]
    pub max_connection_creation_rate: i32,
    /// OAUTHBEARER: the JSON Web Key Set signed tokens are checked against (a `file:` or
    /// `https:` URL);
    /// unset = unsecured tokens, Kafka's default validator (`security::oauth_jwks`).
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.url")]
    pub sasl_oauthbearer_jwks_endpoint_url: Option<String>,
    /// OAUTHBEARER: accepted `aud` values (comma-separated; empty = not checked).
    #[serde(rename = "sasl.oauthbearer.expected.audience")]
    pub sasl_oauthbearer_expected_audience: String,
    /// OAUTHBEARER: the required `iss` (unset = not checked).
    #[serde(rename = "sasl.oauthbearer.expected.issuer")]
    pub sasl_oauthbearer_expected_issuer: Option<String>,
    /// OAUTHBEARER: leeway for `exp`, `iat` and `nbf` (Kafka's default 30).
    #[serde(rename = "sasl.oauthbearer.clock.skew.seconds")]
    pub sasl_oauthbearer_clock_skew_seconds: u64,
    /// OAUTHBEARER: the claim naming the principal (Kafka's default `sub`).
    #[serde(rename = "sasl.oauthbearer.sub.claim.name")]
    pub sasl_oauthbearer_sub_claim_name: String,
    /// OAUTHBEARER: how often the key set is read again (Kafka's default one hour).
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.refresh.ms")]
    pub sasl_oauthbearer_jwks_endpoint_refresh_ms: u64,
    /// OAUTHBEARER: least time between two reads for an unknown `kid` (Kafka's default 100).
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms")]
    pub sasl_oauthbearer_jwks_endpoint_retry_backoff_ms: u64,
    /// OAUTHBEARER: PEM file of the CAs trusted for an `https:` key set URL (Sluice's key:
    /// Kafka takes `ssl.truststore.*` from the validator's JAAS options); unset = the Mozilla
    /// roots (webpki-roots).
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.ssl.truststore.location")]
    pub sasl_oauthbearer_jwks_endpoint_ssl_truststore_location: Option<String>,
    /// The listener other brokers' replica fetchers connect to (Kafka's
    /// `inter.broker.listener.name`); unset = the listener named by
    /// `security.inter.broker.protocol` (`cluster::inter_broker`).
    #[serde(rename = "inter.broker.listener.name")]
    pub inter_broker_listener_name: Option<String>,
    /// Kafka's `security.inter.broker.protocol` (default PLAINTEXT); not with
    /// `inter.broker.listener.name`.
    #[serde(rename = "security.inter.broker.protocol")]
    pub security_inter_broker_protocol: Option<String>,
    /// Kafka's `sasl.mechanism.inter.broker.protocol`: how this broker authenticates to others
    /// on a SASL inter-broker listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; Kafka's default,
    /// GSSAPI, is not implemented and refused when used).
    #[serde(rename = "sasl.mechanism.inter.broker.protocol")]
    pub sasl_mechanism_inter_broker_protocol: String,
    /// Kafka's `sasl.mechanism.controller.protocol` (a SASL controller listener is refused).
    #[serde(rename = "sasl.mechanism.controller.protocol")]
    pub sasl_mechanism_controller_protocol: String,
    /// Kafka's `sasl.jaas.config` (the broker's own login, `username=".." password=".."`), used
    /// when no `listener.name.<l>.<mechanism>.sasl.jaas.config` is set (`security::jaas`).
    #[serde(rename = "sasl.jaas.config")]
    pub sasl_jaas_config: Option<String>,
    /// Kafka's `listener.name.<listener>.<config>` overrides of ssl.* / sasl.* settings for
    /// one listener (full key -> value), as written in the file.
    #[serde(skip)]
    pub listener_overrides: std::collections::BTreeMap<String, String>,
    /// Certificate reload: whether the new certificate may name another subject DN (Kafka's).
    #[serde(rename = "ssl.allow.dn.changes")]
    pub ssl_allow_dn_changes: bool,
    /// Certificate reload: whether its subject alternative names may change (Kafka's).
    #[serde(rename = "ssl.allow.san.changes")]
    pub ssl_allow_san_changes: bool,
    // ---- KRaft (issue 10; `cluster::kraft` validates them) ----
    /// Kafka's `process.roles`: `broker`, `controller` or `broker,controller`. Unset: the
    /// single-node broker of old (its own controller, no quorum).
    #[serde(rename = "process.roles")]
    pub process_roles: Option<String>,
    /// Kafka's `controller.quorum.voters`: `id@host:port,...` (static voters).
    #[serde(rename = "controller.quorum.voters")]
    pub controller_quorum_voters: Option<String>,
    /// Kafka's `controller.quorum.bootstrap.servers`: `host:port,...` of controllers a
    /// broker-only node first asks.
    #[serde(rename = "controller.quorum.bootstrap.servers")]
    pub controller_quorum_bootstrap_servers: Option<String>,
    /// Kafka's `controller.listener.names`: listeners (in `listeners`) that are the controller's,
    /// never served to clients.
    #[serde(rename = "controller.listener.names")]
    pub controller_listener_names: Option<String>,
    #[serde(rename = "broker.session.timeout.ms")]
    pub broker_session_timeout_ms: u64,
    #[serde(rename = "broker.heartbeat.interval.ms")]
    pub broker_heartbeat_interval_ms: u64,
    /// Kafka's `metadata.log.dir`; default `<data_dir>/__cluster_metadata-0`.
    #[serde(rename = "metadata.log.dir")]
    pub metadata_log_dir: Option<PathBuf>,
    #[serde(rename = "controller.quorum.election.timeout.ms")]
    pub controller_quorum_election_timeout_ms: u64,
    #[serde(rename = "controller.quorum.fetch.timeout.ms")]
    pub controller_quorum_fetch_timeout_ms: u64,
    #[serde(rename = "controller.quorum.request.timeout.ms")]
    pub controller_quorum_request_timeout_ms: u64,
    /// Sluice's: metadata-log entries between snapshots (Kafka counts bytes).
    #[serde(rename = "metadata.log.max.entries.between.snapshots")]
    pub metadata_log_max_entries_between_snapshots: u64,
    /// Sluice's: connections the controller listener serves at once (Kafka has no per-listener
    /// limit by default); a connection whose first frame does not start within
    /// `controller.quorum.request.timeout.ms` is closed.
    #[serde(rename = "controller.max.connections")]
    pub controller_max_connections: usize,
    /// Replication (issue 11, `src/replication/`), Kafka's names and defaults.
    #[serde(rename = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: u64,
    #[serde(rename = "num.replica.fetchers")]
    pub num_replica_fetchers: u32,
    #[serde(rename = "replica.fetch.max.bytes")]
    pub replica_fetch_max_bytes: u32,
    #[serde(rename = "replica.fetch.response.max.bytes")]
    pub replica_fetch_response_max_bytes: u32,
    #[serde(rename = "replica.fetch.wait.max.ms")]
    pub replica_fetch_wait_max_ms: u32,
    #[serde(rename = "replica.fetch.min.bytes")]
    pub replica_fetch_min_bytes: u32,
    #[serde(rename = "replica.fetch.backoff.ms")]
    pub replica_fetch_backoff_ms: u64,
    /// Sluice's: acks=all produces waiting for replication per partition (the purgatory).
    #[serde(rename = "produce.purgatory.waiters.max")]
    pub produce_purgatory_waiters_max: u32,
    /// Sluice's: DeleteRecords waiting per partition for the followers' log start offsets
    /// (Kafka's delete-records purgatory, bounded only by `queued.max.requests` there).
    #[serde(rename = "delete.records.purgatory.waiters.max")]
    pub delete_records_purgatory_waiters_max: u32,
    /// Leader balance (issue 11 control, `cluster::leader_election`), Kafka's names/defaults.
    #[serde(rename = "auto.leader.rebalance.enable")]
    pub auto_leader_rebalance_enable: bool,
    #[serde(rename = "leader.imbalance.check.interval.seconds")]
    pub leader_imbalance_check_interval_seconds: u64,
    #[serde(rename = "leader.imbalance.per.broker.percentage")]
    pub leader_imbalance_per_broker_percentage: u32,
    /// Sluice's: how long a stopping broker waits for its controlled shutdown (leadership
    /// moved and applied) before it stops anyway (Kafka's broker waits up to 5 minutes).
    #[serde(rename = "controlled.shutdown.timeout.ms")]
    pub controlled_shutdown_timeout_ms: u64,
    /// Partitions of the internal `__transaction_state` topic (fixed once the topic exists).
    #[serde(rename = "transaction.state.log.num.partitions")]
    pub transaction_state_log_num_partitions: u32,
    /// Replication factor of `__transaction_state` at creation (capped at the registered
    /// brokers, so a single node can run transactions with Kafka's default of 3).
    #[serde(rename = "transaction.state.log.replication.factor")]
    pub transaction_state_log_replication_factor: i16,
    /// segment.bytes of `__transaction_state` (a compacted topic).
    #[serde(rename = "transaction.state.log.segment.bytes")]
    pub transaction_state_log_segment_bytes: u64,
    /// Longest `transaction.timeout.ms` a producer may ask (longer: INVALID_TRANSACTION_TIMEOUT).
    #[serde(rename = "transaction.max.timeout.ms")]
    pub transaction_max_timeout_ms: i32,
    /// A transactional id idle this long (no transaction in flight) is removed.
    #[serde(rename = "transactional.id.expiration.ms")]
    pub transactional_id_expiration_ms: i64,
    /// How often the coordinator aborts transactions older than their timeout.
    #[serde(rename = "transaction.abort.timed.out.transaction.cleanup.interval.ms")]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// How often the coordinator removes expired transactional ids.
    #[serde(rename = "transaction.remove.expired.transaction.cleanup.interval.ms")]
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// Transactional ids one shard coordinates (new ids beyond: COORDINATOR_NOT_AVAILABLE).
    /// Sluice's own bound, like `group.max.count.per.shard`.
    #[serde(rename = "transaction.max.count.per.shard")]
    pub transaction_max_count_per_shard: usize,
    /// Transactions whose markers may wait in one shard's queue to one other broker (a full
    /// queue delays the completion, retried). Sluice's own bound: Kafka's queue is unbounded.
    #[serde(rename = "transaction.marker.queue.max.entries")]
    pub transaction_marker_queue_max_entries: usize,
    /// How long one attempt of a forwarded admin request waits for the active controller's
    /// answer (Kafka's broker-to-controller channel timeout); `request.timeout.ms` bounds all.
    #[serde(rename = "controller.socket.timeout.ms")]
    pub controller_socket_timeout_ms: u64,
    /// Sluice's: admin requests a node forwards to the active controller at once (beyond, the
    /// broker answers NOT_CONTROLLER itself), and Envelopes the active controller queues.
    #[serde(rename = "forwarded.requests.max.in.flight")]
    pub forwarded_requests_max_in_flight: usize,
    /// How long a broker keeps a forwarded admin request queued, retrying it against the new
    /// active controller across a controller change, before it answers the client
    /// REQUEST_TIMED_OUT (`cluster::forwarding`). Kafka's name and default (its ZooKeeper-mode
    /// forwarding used it; KRaft's `BrokerServer` fixes the forwarding channel's at 60 s).
    #[serde(rename = "request.timeout.ms")]
    pub request_timeout_ms: u64,
    /// How often the high watermarks are written to `replication-offset-checkpoint`
    /// (`replication::checkpoint`); Kafka's name and default.
    #[serde(rename = "replica.high.watermark.checkpoint.interval.ms")]
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// Kafka's: before a partition leader appends the first transactional batch of a
    /// producer's transaction it checks with the transaction coordinator that the partition is
    /// in the transaction (KIP-890 part 1); else INVALID_TXN_STATE.
    #[serde(rename = "transaction.partition.verification.enable")]
    pub transaction_partition_verification_enable: bool,
    /// The finalized level of Kafka's `transaction.version` feature this broker advertises in
    /// ApiVersions (Kafka sets it with `kafka-features`/`kafka-storage format`): 2 is KIP-890's
    /// transaction version 2 (epoch bump per transaction, implicit AddPartitionsToTxn), which
    /// the Java client 4.x then uses; 0 or 1 keeps every client on TV1.
    #[serde(rename = "transaction.version")]
    pub transaction_version: i16,
    /// Kafka's replication quota window (`ReplicationQuotaManager`): samples kept and their
    /// length; the throttled replication rate is measured over them.
    #[serde(rename = "replication.quota.window.num")]
    pub replication_quota_window_num: u32,
    #[serde(rename = "replication.quota.window.size.seconds")]
    pub replication_quota_window_size_seconds: u32,
    /// Kafka's `connections.max.idle.ms`: a client connection with no bytes read or written
    /// for this long, and no request being handled, is closed (`net::conn`); negative = never.
    #[serde(rename = "connections.max.idle.ms")]
    pub connections_max_idle_ms: i64,
    /// Most io-wq workers (the kernel threads that run a shard's blocking file ops: large
    /// writes, fsyncs, early writeback) per shard; 0 = the kernel's limit (`shards::iowq`).
    /// 2 made acks=all with an fsync per answer 1.0-1.8x faster, acks=1 mixed (decision 0032).
    #[serde(rename = "shard.io_wq.bounded.workers.max")]
    pub shard_io_wq_bounded_workers_max: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        ConfigFile::default().into()
    }
}

impl Default for ConfigFile {
    fn default() -> Self {
        let log = storage::LogConfig::default();
        Self {
            listen: "127.0.0.1:9092".to_owned(),
            advertise: None,
            admin_listen: "127.0.0.1:9644".to_owned(),
            data_dir: PathBuf::from("./data"),
            cores: 0,
            pin_threads: true,
            mailbox_capacity: 1024,
            node_id: 0,
            cluster_id: "sluice-cluster-00000001".to_owned(),
            broker_rack: None,
            socket_request_max_bytes: 104_857_600,
            queued_max_requests: 64,
            max_connections_per_shard: 10_000,
            auto_create_topics_enable: true,
            num_partitions: 1,
            max_partitions_per_topic: 10_000,
            default_replication_factor: 1,
            offsets_topic_replication_factor: 3,
            fetch_max_bytes: 57_671_680,
            fetch_max_wait_ms: 30_000,
            fetch_zero_copy: true,
            fetch_splice_pipe_bytes: 1_048_576,
            fetch_copy_pool_bytes: 67_108_864,
            fetch_session_cache_slots: 1000,
            fetch_session_partitions_max: 10_000,
            fetch_waiters_per_partition_max: 10_000,
            shutdown_timeout_ms: 10_000,
            retention_check_interval_ms: 300_000,
            message_max_bytes: log.max_message_bytes,
            log_segment_bytes: log.segment_bytes_max,
            log_roll_ms: log.segment_ms,
            log_retention_ms: log.retention_ms,
            log_retention_bytes: log.retention_bytes,
            log_index_interval_bytes: log.index_interval_bytes,
            log_index_size_max_bytes: log.segment_index_bytes_max,
            log_write_inline_max_bytes: log.write_inline_max_bytes,
            log_batch_inflated_max_bytes: log.inflated_batch_bytes_max,
            log_sealed_segment_files_open_max: storage::SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT,
            log_active_segment_files_open_max: storage::ACTIVE_SEGMENT_FILES_OPEN_MAX_DEFAULT,
            log_flush_interval_messages: i64::MAX,
            log_flush_interval_ms: i64::MAX,
            log_message_timestamp_type: "CreateTime".to_owned(),
            log_writeback_start_bytes: log.writeback_start_bytes,
            log_zero_ahead_bytes: log.zero_ahead_bytes,
            offsets_topic_num_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 1000,
            group_max_count_per_shard: 100_000,
            group_timer_interval_ms: 100,
            producer_state_producers_per_partition_max: 10_000,
            producer_id_expiration_ms: 86_400_000,
            producer_state_rebuild_previous_segment_bytes_max: 67_108_864,
            log_cleaner_enable: true,
            log_cleaner_dedupe_buffer_size: 134_217_728,
            log_cleaner_io_buffer_size: 524_288,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_delete_retention_ms: 86_400_000,
            log_cleaner_min_compaction_lag_ms: 0,
            log_cleaner_max_compaction_lag_ms: i64::MAX,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map:
                "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
                    .to_owned(),
            ssl_keystore_type: "PEM".to_owned(),
            ssl_keystore_location: None,
            ssl_keystore_certificate_chain: None,
            ssl_keystore_key: None,
            ssl_key_password: None,
            ssl_truststore_type: "PEM".to_owned(),
            ssl_truststore_location: None,
            ssl_truststore_certificates: None,
            ssl_client_auth: "none".to_owned(),
            ssl_enabled_protocols: "TLSv1.2,TLSv1.3".to_owned(),
            ssl_principal_mapping_rules: "DEFAULT".to_owned(),
            sasl_enabled_mechanisms: "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_owned(),
            connection_failed_authentication_delay_ms: 100,
            authentication_timeout_ms: 10_000,
            sasl_server_max_receive_size: 524_288,
            connections_max_reauth_ms: 0,
            authorizer_class_name: String::new(),
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            admin_auth_token: None,
            log_flush_on_acks_all: true,
            shard_io_uring_setup: String::new(),
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            quota_sensors_max: 100_000,
            max_connection_creation_rate: i32::MAX,
            sasl_oauthbearer_jwks_endpoint_url: None,
            sasl_oauthbearer_expected_audience: String::new(),
            sasl_oauthbearer_expected_issuer: None,
            sasl_oauthbearer_clock_skew_seconds: 30,
            sasl_oauthbearer_sub_claim_name: "sub".to_owned(),
            sasl_oauthbearer_jwks_endpoint_refresh_ms: 3_600_000,
            sasl_oauthbearer_jwks_endpoint_retry_backoff_ms: 100,
            sasl_oauthbearer_jwks_endpoint_ssl_truststore_location: None,
            inter_broker_listener_name: None,
            security_inter_broker_protocol: None,
            sasl_mechanism_inter_broker_protocol: "GSSAPI".to_owned(),
            sasl_mechanism_controller_protocol: "GSSAPI".to_owned(),
            sasl_jaas_config: None,
            listener_overrides: std::collections::BTreeMap::new(),
            ssl_allow_dn_changes: false,
            ssl_allow_san_changes: false,
            process_roles: None,
            controller_quorum_voters: None,
            controller_quorum_bootstrap_servers: None,
            controller_listener_names: None,
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            metadata_log_dir: None,
            controller_quorum_election_timeout_ms: 1000,
            controller_quorum_fetch_timeout_ms: 2000,
            controller_quorum_request_timeout_ms: 2000,
            metadata_log_max_entries_between_snapshots: 10_000,
            controller_max_connections: 64,
            replica_lag_time_max_ms: 30_000,
            num_replica_fetchers: 1,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_backoff_ms: 1000,
            produce_purgatory_waiters_max: 4096,
            delete_records_purgatory_waiters_max: 1024,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            controlled_shutdown_timeout_ms: 30_000,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_segment_bytes: 104_857_600,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            transaction_max_count_per_shard: 100_000,
            transaction_marker_queue_max_entries: 1024,
            controller_socket_timeout_ms: 30_000,
            forwarded_requests_max_in_flight: 100,
            request_timeout_ms: 30_000,
            replica_high_watermark_checkpoint_interval_ms: 5_000,
            transaction_partition_verification_enable: true,
            transaction_version: 2,
            replication_quota_window_num: 11,
            replication_quota_window_size_seconds: 1,
            connections_max_idle_ms: 600_000,
            shard_io_wq_bounded_workers_max: shards::IOWQ_BOUNDED_WORKERS_MAX_DEFAULT,
        }
    }
}

/// Command-line overrides (`None` = keep the file's value).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub admin_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub cores: Option<usize>,
}

impl BrokerConfig {
    /// Reads `path` (if given), applies the overrides and validates.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
            }
            None => Self::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        // Kafka's per-listener overrides (`listener.name.<l>.<config>`) are open-ended keys:
        // taken out before the strict parse (`security::config::listener_config` checks them).
        let mut table: toml::Table = toml::from_str(text)?;
        let overrides = take_listener_overrides(&mut table);
        let mut file: ConfigFile = toml::Value::Table(table).try_into()?;
        file.listener_overrides = overrides;
        Ok(file.into())
    }

    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(listen) = overrides.listen {
            self.server.listen = listen;
        }
        if let Some(advertise) = overrides.advertise {
            self.server.advertise = Some(advertise);
        }
        if let Some(admin_listen) = overrides.admin_listen {
            self.server.admin_listen = admin_listen;
        }
        if let Some(dir) = overrides.data_dir {
            self.server.data_dir = dir;
        }
        if let Some(cores) = overrides.cores {
            self.server.cores = cores;
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("listen", &self.server.listen)
    }

    pub fn admin_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("admin.listen", &self.server.admin_listen)
    }

    /// Checks every bound; the broker never starts with a limit of zero or a negative size.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_replication()?;
        self.listen_addr()?;
        self.admin_listen_addr()?;
        if let Some(advertise) = &self.server.advertise {
            parse_host_port("advertise", advertise)?;
        }
        positive(
            "socket.request.max.bytes",
            u64::from(self.socket.socket_request_max_bytes),
        )?;
        positive(
            "queued.max.requests",
            self.socket.queued_max_requests as u64,
        )?;
        positive(
            "max.connections.per.shard",
            self.socket.max_connections_per_shard as u64,
        )?;
        positive(
            "shard.mailbox.capacity",
            self.server.mailbox_capacity as u64,
        )?;
        positive("fetch.max.bytes", u64::from(self.fetch.fetch_max_bytes))?;
        positive(
            "fetch.splice.pipe.bytes",
            self.fetch.fetch_splice_pipe_bytes as u64,
        )?;
        positive(
            "max.incremental.fetch.session.cache.slots",
            self.fetch.fetch_session_cache_slots as u64,
        )?;
        positive(
            "fetch.session.max.partitions",
            self.fetch.fetch_session_partitions_max as u64,
        )?;
        positive(
            "log.retention.check.interval.ms",
            self.log.retention_check_interval_ms,
        )?;
        if self.topics.num_partitions < 1
            || self.topics.num_partitions > self.topics.max_partitions_per_topic
        {
            return Err(ConfigError::Invalid {
                key: "num.partitions",
                reason: format!("must be in 1..={}", self.topics.max_partitions_per_topic),
            });
        }
        if self.server.cores > usize::from(u16::MAX) {
            return Err(ConfigError::Invalid {
                key: "cores",
                reason: "too many shards".into(),
            });
        }
        self.validate_groups()?;
        self.validate_transactions()?;
        self.validate_producers()?;
        self.validate_cleaner()?;
        self.ring_setup()?;
        self.default_log_config().map(|_| ())
    }

    /// `shard.io_uring.setup` parsed.
    pub fn ring_setup(&self) -> Result<shards::RingSetup, ConfigError> {
        self.server
            .shard_io_uring_setup
            .parse()
            .map_err(|e: shards::RingSetupError| ConfigError::Invalid {
                key: "shard.io_uring.setup",
                reason: e.to_string(),
            })
    }

    fn validate_cleaner(&self) -> Result<(), ConfigError> {
        positive(
            "log.cleaner.dedupe.buffer.size",
            self.log_cleaner.log_cleaner_dedupe_buffer_size,
        )?;
        positive(
            "log.cleaner.io.buffer.size",
            self.log_cleaner.log_cleaner_io_buffer_size,
        )?;
        positive(
            "log.cleaner.backoff.ms",
            self.log_cleaner.log_cleaner_backoff_ms,
        )?;
        let invalid = |key: &'static str, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.into(),
        };
        if self
            .log_cleaner
            .log_cleaner_io_max_bytes_per_second
            .is_nan()
            || self.log_cleaner.log_cleaner_io_max_bytes_per_second <= 0.0
        {
            return Err(invalid(
                "log.cleaner.io.max.bytes.per.second",
                "must be > 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.log_cleaner.log_cleaner_min_cleanable_ratio) {
            return Err(invalid(
                "log.cleaner.min.cleanable.ratio",
                "must be in [0, 1]",
            ));
        }
        if self.log_cleaner.log_cleaner_delete_retention_ms < 0
            || self.log_cleaner.log_cleaner_min_compaction_lag_ms < 0
        {
            return Err(invalid("log.cleaner.*.ms", "must be >= 0"));
        }
        if self.log_cleaner.log_cleaner_max_compaction_lag_ms < 1 {
            return Err(invalid("log.cleaner.max.compaction.lag.ms", "must be >= 1"));
        }
        Ok(())
    }

    fn validate_replication(&self) -> Result<(), ConfigError> {
        positive(
            "controlled.shutdown.timeout.ms",
            self.controller.controlled_shutdown_timeout_ms,
        )?;
        positive(
            "leader.imbalance.check.interval.seconds",
            self.controller.leader_imbalance_check_interval_seconds,
        )?;
        if self.controller.leader_imbalance_per_broker_percentage > 100 {
            return Err(ConfigError::Invalid {
                key: "leader.imbalance.per.broker.percentage",
                reason: "must be in [0, 100]".into(),
            });
        }
        positive(
            "replica.lag.time.max.ms",
            self.replication.replica_lag_time_max_ms,
        )?;
        positive(
            "replica.high.watermark.checkpoint.interval.ms",
            self.replication
                .replica_high_watermark_checkpoint_interval_ms,
        )?;
        positive(
            "controller.socket.timeout.ms",
            self.controller.controller_socket_timeout_ms,
        )?;
        positive(
            "forwarded.requests.max.in.flight",
            self.controller.forwarded_requests_max_in_flight as u64,
        )?;
        positive("request.timeout.ms", self.controller.request_timeout_ms)?;
        positive(
            "num.replica.fetchers",
            u64::from(self.replication.num_replica_fetchers),
        )?;
        positive(
            "replica.fetch.max.bytes",
            u64::from(self.replication.replica_fetch_max_bytes),
        )?;
        positive(
            "replica.fetch.response.max.bytes",
            u64::from(self.replication.replica_fetch_response_max_bytes),
        )?;
        positive(
            "replica.fetch.min.bytes",
            u64::from(self.replication.replica_fetch_min_bytes),
        )?;
        positive(
            "replication.quota.window.num",
            u64::from(self.replication.replication_quota_window_num),
        )?;
        positive(
            "replication.quota.window.size.seconds",
            u64::from(self.replication.replication_quota_window_size_seconds),
        )?;
        positive(
            "produce.purgatory.waiters.max",
            u64::from(self.replication.produce_purgatory_waiters_max),
        )?;
        positive(
            "delete.records.purgatory.waiters.max",
            u64::from(self.replication.delete_records_purgatory_waiters_max),
        )
    }

    fn validate_producers(&self) -> Result<(), ConfigError> {
        positive(
            "producer.state.max.producers.per.partition",
            self.producer_state
                .producer_state_producers_per_partition_max as u64,
        )?;
        if self.producer_state.producer_id_expiration_ms < 1 {
            return Err(ConfigError::Invalid {
                key: "producer.id.expiration.ms",
                reason: "must be >= 1".into(),
            });
        }
        Ok(())
    }

    /// Bounds of each partition's idempotent-producer state.
    pub fn producer_rebuild_limits(&self) -> crate::producers::rebuild::RebuildLimits {
        crate::producers::rebuild::RebuildLimits {
            state: crate::producers::state::StateLimits {
                max_producers: self
                    .producer_state
                    .producer_state_producers_per_partition_max,
                expiration_ms: self.producer_state.producer_id_expiration_ms,
            },
            previous_segment_bytes_max: self
                .producer_state
                .producer_state_rebuild_previous_segment_bytes_max,
        }
    }

    fn validate_groups(&self) -> Result<(), ConfigError> {
        positive(
            "default.replication.factor",
            u64::try_from(self.topics.default_replication_factor).unwrap_or(0),
        )?;
        positive(
            "offsets.topic.replication.factor",
            u64::try_from(self.group.offsets_topic_replication_factor).unwrap_or(0),
        )?;
        positive(
            "offsets.topic.num.partitions",
            u64::from(self.group.offsets_topic_num_partitions),
        )?;
        positive(
            "offsets.topic.segment.bytes",
            self.group.offsets_topic_segment_bytes,
        )?;
        positive(
            "offsets.retention.minutes",
            self.group.offsets_retention_minutes,
        )?;
        positive(
            "offsets.retention.check.interval.ms",
            self.group.offsets_retention_check_interval_ms,
        )?;
        positive("group.max.size", self.group.group_max_size as u64)?;
        positive(
            "group.max.count.per.shard",
            self.group.group_max_count_per_shard as u64,
        )?;
        positive(
            "group.timer.interval.ms",
            self.group.group_timer_interval_ms,
        )?;
        if self.group.group_min_session_timeout_ms < 1
            || self.group.group_min_session_timeout_ms > self.group.group_max_session_timeout_ms
        {
            return Err(ConfigError::Invalid {
                key: "group.min.session.timeout.ms",
                reason: "must be in 1..=group.max.session.timeout.ms".into(),
            });
        }
        Ok(())
    }

    /// The broker-wide topic defaults as a storage `LogConfig`.
    pub fn default_log_config(&self) -> Result<storage::LogConfig, ConfigError> {
        let timestamp_type =
            crate::topics::config::parse_timestamp_type(&self.log.log_message_timestamp_type)
                .ok_or(ConfigError::Invalid {
                    key: "log.message.timestamp.type",
                    reason: "must be CreateTime or LogAppendTime".into(),
                })?;
        positive("log.segment.bytes", self.log.log_segment_bytes)?;
        positive(
            "log.batch.inflated.max.bytes",
            self.log.log_batch_inflated_max_bytes,
        )?;
        positive(
            "log.sealed.segment.files.open.max",
            self.log.log_sealed_segment_files_open_max as u64,
        )?;
        positive(
            "log.active.segment.files.open.max",
            self.log.log_active_segment_files_open_max as u64,
        )?;
        positive("message.max.bytes", u64::from(self.log.message_max_bytes))?;
        Ok(storage::LogConfig {
            segment_bytes_max: self.log.log_segment_bytes,
            segment_ms: self.log.log_roll_ms,
            index_interval_bytes: self.log.log_index_interval_bytes,
            segment_index_bytes_max: self.log.log_index_size_max_bytes,
            retention_ms: self.log.log_retention_ms,
            retention_bytes: self.log.log_retention_bytes,
            flush_messages: never_if_max(
                "log.flush.interval.messages",
                self.log.log_flush_interval_messages,
            )?,
            flush_ms: never_if_max("log.flush.interval.ms", self.log.log_flush_interval_ms)?,
            max_message_bytes: self.log.message_max_bytes,
            timestamp_type,
            write_inline_max_bytes: self.log.log_write_inline_max_bytes,
            inflated_batch_bytes_max: self.log.log_batch_inflated_max_bytes,
            writeback_start_bytes: self.log.log_writeback_start_bytes,
            zero_ahead_bytes: self.log.log_zero_ahead_bytes,
        })
    }
}

impl BrokerConfig {
    fn validate_transactions(&self) -> Result<(), ConfigError> {
        let positives: [(&'static str, u64); 7] = [
            (
                "transaction.state.log.num.partitions",
                u64::from(self.transaction.transaction_state_log_num_partitions),
            ),
            (
                "transaction.state.log.replication.factor",
                u64::try_from(self.transaction.transaction_state_log_replication_factor)
                    .unwrap_or(0),
            ),
            (
                "transaction.state.log.segment.bytes",
                self.transaction.transaction_state_log_segment_bytes,
            ),
            (
                "transaction.max.timeout.ms",
                u64::try_from(self.transaction.transaction_max_timeout_ms).unwrap_or(0),
            ),
            (
                "transactional.id.expiration.ms",
                u64::try_from(self.transaction.transactional_id_expiration_ms).unwrap_or(0),
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                self.transaction
                    .transaction_abort_timed_out_transaction_cleanup_interval_ms,
            ),
            (
                "transaction.max.count.per.shard",
                self.transaction.transaction_max_count_per_shard as u64,
            ),
        ];
        for (key, value) in positives {
            positive(key, value)?;
        }
        if !(0..=2).contains(&self.transaction.transaction_version) {
            return Err(ConfigError::Invalid {
                key: "transaction.version",
                reason: "must be 0, 1 or 2".into(),
            });
        }
        positive(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            self.transaction
                .transaction_remove_expired_transaction_cleanup_interval_ms,
        )
    }
}

fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::Invalid {
            key,
            reason: "must be > 0".into(),
        });
    }
    Ok(())
}

/// Kafka spells "never" as Long.MAX_VALUE; storage spells it u64::MAX.
pub(crate) fn never_if_max(key: &'static str, value: i64) -> Result<u64, ConfigError> {
    match value {
        i64::MAX => Ok(u64::MAX),
        v if v >= 1 => Ok(v as u64),
        _ => Err(ConfigError::Invalid {
            key,
            reason: "must be >= 1".into(),
        }),
    }
}

fn parse_addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|e: std::net::AddrParseError| ConfigError::Address {
            key,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

/// Splits "host:port" (host may be a name; IPv6 in brackets).
pub fn parse_host_port(key: &'static str, value: &str) -> Result<(String, u16), ConfigError> {
    let bad = |reason: &str| ConfigError::Address {
        key,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    Ok((host.to_owned(), port))
}

/// The prefix of Kafka's per-listener overrides (`listener.name.<listener>.<config>`).
pub const LISTENER_PREFIX: &str = "listener.name.";

impl BrokerConfig {
    /// `listeners` without those named in `controller.listener.names` (Kafka: the controller
    /// listener is in `listeners` but serves only the quorum, never clients).
    pub fn broker_listeners(&self) -> Option<String> {
        self.without_controller_listeners(self.listener.listeners.as_deref())
    }

    /// `advertised.listeners` without the controller listeners (see `broker_listeners`).
    pub fn broker_advertised_listeners(&self) -> Option<String> {
        self.without_controller_listeners(self.listener.advertised_listeners.as_deref())
    }

    fn without_controller_listeners(&self, listeners: Option<&str>) -> Option<String> {
        let listeners = listeners?;
        let controller: Vec<&str> = self
            .controller
            .controller_listener_names
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let kept: Vec<&str> = listeners
            .split(',')
            .map(str::trim)
            .filter(|l| {
                let name = l.split("://").next().unwrap_or("");
                !controller.iter().any(|c| c.eq_ignore_ascii_case(name))
            })
            .collect();
        Some(kept.join(","))
    }
}

/// Takes the `listener.name.*` keys (with scalar values) out of a parsed config file.
pub fn take_listener_overrides(
    table: &mut toml::Table,
) -> std::collections::BTreeMap<String, String> {
    let keys: Vec<String> = table
        .iter()
        .filter(|(k, v)| k.starts_with(LISTENER_PREFIX) && !(v.is_table() || v.is_array()))
        .map(|(k, _)| k.clone())
        .collect();
    keys.into_iter()
        .filter_map(|k| {
            let value = match table.remove(&k)? {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            Some((k, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let config = BrokerConfig::from_toml("").unwrap();
        assert_eq!(config, BrokerConfig::default());
        assert_eq!(config.server.listen, "127.0.0.1:9092");
        assert_eq!(config.socket.socket_request_max_bytes, 104_857_600);
        config.validate().unwrap();
    }

    #[test]
    fn kafka_names_parse_and_map_to_log_config() {
        let text = r#"
            listen = "0.0.0.0:9093"
            "num.partitions" = 3
            "log.segment.bytes" = 1048576
            "log.retention.ms" = -1
            "log.flush.interval.messages" = 1
            "log.message.timestamp.type" = "LogAppendTime"
        "#;
        let config = BrokerConfig::from_toml(text).unwrap();
        assert_eq!(config.topics.num_partitions, 3);
        let log = config.default_log_config().unwrap();
        assert_eq!(log.segment_bytes_max, 1_048_576);
        assert_eq!(log.retention_ms, -1);
        assert_eq!(log.flush_messages, 1);
        assert_eq!(log.flush_ms, u64::MAX);
        assert!(matches!(
            log.timestamp_type,
            storage::TimestampType::LogAppendTime
        ));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(BrokerConfig::from_toml("\"num.partitionz\" = 3").is_err());
        let mut config = BrokerConfig::from_toml("\"num.partitions\" = 0").unwrap();
        assert!(config.validate().is_err());
        config.topics.num_partitions = 1;
        config.server.listen = "nonsense".into();
        assert!(config.validate().is_err());
    }

    #[test]
    fn overrides_beat_the_file() {
        let mut config = BrokerConfig::from_toml("listen = \"127.0.0.1:1\"\ncores = 4").unwrap();
        config.apply(Overrides {
            listen: Some("127.0.0.1:0".into()),
            cores: Some(2),
            data_dir: Some("/tmp/x".into()),
            advertise: None,
            admin_listen: None,
        });
        assert_eq!(config.server.listen, "127.0.0.1:0");
        assert_eq!(config.server.cores, 2);
        assert_eq!(config.server.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn reference_config_file_is_the_defaults() {
        let text = include_str!("../configs/sluice.toml");
        assert_eq!(
            BrokerConfig::from_toml(text).unwrap(),
            BrokerConfig::default()
        );
    }

    /// Every key of the flat file (those with a non-optional value) set to another value lands
    /// in exactly one section and comes back unchanged through the sections.
    #[test]
    fn every_key_lands_in_one_section_and_round_trips() {
        let toml::Value::Table(defaults) = toml::Value::try_from(ConfigFile::default()).unwrap()
        else {
            panic!("the config file serializes to a table");
        };
        assert!(defaults.len() > 100, "{} keys", defaults.len());
        let default = BrokerConfig::default();
        for (key, value) in &defaults {
            let changed = match value {
                toml::Value::Integer(i) if *i == i64::MAX || *i == i64::from(i32::MAX) => {
                    toml::Value::Integer(i - 1)
                }
                toml::Value::Integer(i) => toml::Value::Integer(i + 1),
                toml::Value::Boolean(b) => toml::Value::Boolean(!b),
                toml::Value::String(s) => toml::Value::String(format!("{s}x")),
                toml::Value::Float(f) => toml::Value::Float(f / 2.0),
                other => panic!("{key}: unexpected {other:?}"),
            };
            let mut table = toml::Table::new();
            table.insert(key.clone(), changed.clone());
            let config = BrokerConfig::from_toml(&table.to_string()).unwrap();
            let differ = config
                .sections_debug()
                .iter()
                .zip(default.sections_debug())
                .filter(|(a, b)| *a != b)
                .count();
            assert_eq!(differ, 1, "{key} changes {differ} sections");
            let toml::Value::Table(back) = toml::Value::try_from(ConfigFile::from(config)).unwrap()
            else {
                panic!("a table");
            };
            assert_eq!(back.get(key), Some(&changed), "{key} round trip");
            let others = back
                .iter()
                .filter(|(k, v)| *k != key && defaults.get(*k) != Some(v));
            assert_eq!(others.count(), 0, "{key} changed another key");
        }
    }

    /// The defaults, through the sections, are those of the flat config before the split
    /// (`config/defaults.snapshot.toml`, written from it): a default changed by mistake fails
    /// here. Keys added later are not in the snapshot and not checked.
    #[test]
    fn defaults_match_the_snapshot_taken_before_the_split() {
        let snapshot: toml::Table = include_str!("config/defaults.snapshot.toml")
            .parse()
            .unwrap();
        assert!(snapshot.len() > 100, "{} keys", snapshot.len());
        let now = toml::Value::try_from(ConfigFile::from(BrokerConfig::default())).unwrap();
        for (key, value) in &snapshot {
            assert_eq!(now.get(key), Some(value), "default of {key}");
        }
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            parse_host_port("k", "localhost:9092").unwrap(),
            ("localhost".into(), 9092)
        );
        assert_eq!(parse_host_port("k", "[::1]:9").unwrap(), ("::1".into(), 9));
        assert!(parse_host_port("k", "nohost").is_err());
        assert!(parse_host_port("k", ":9").is_err());
    }
}
