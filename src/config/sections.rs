//! The broker configuration split into one section per module (`BrokerConfig::log`,
//! `BrokerConfig::group`, ...): each module takes its own section, not the whole config.
//!
//! Invariants: the file is still parsed as one flat table of Kafka keys (`ConfigFile`, so
//! parsing, defaults and error messages are those of the flat struct), then moved field by
//! field into the sections; the conversion destructures `ConfigFile` without `..`, so a key
//! added to the file but to no section (or to two) does not compile. Field names inside a
//! section are the flat names (`config.log.log_segment_bytes`): the split is a pure move.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ConfigFile;

/// Declares the sections, `BrokerConfig` (one field per section) and the two conversions
/// from and to the flat `ConfigFile`.
macro_rules! sections {
    ($(
        $(#[$doc:meta])*
        $section:ident: $Section:ident { $($field:ident: $ty:ty),* $(,)? }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $Section { $(pub $field: $ty,)* }

            impl Default for $Section {
                fn default() -> Self {
                    BrokerConfig::default().$section
                }
            }
        )*

        /// The whole broker configuration, one section per module. Parsed as the flat
        /// `ConfigFile` (Kafka setting names as keys, see `config`) and moved into sections.
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(from = "ConfigFile")]
        pub struct BrokerConfig { $(pub $section: $Section,)* }

        impl From<ConfigFile> for BrokerConfig {
            fn from(file: ConfigFile) -> Self {
                let ConfigFile { $($($field,)*)* } = file;
                Self { $($section: $Section { $($field,)* },)* }
            }
        }

        impl From<BrokerConfig> for ConfigFile {
            fn from(config: BrokerConfig) -> Self {
                let BrokerConfig { $($section: $Section { $($field,)* },)* } = config;
                Self { $($($field,)*)* }
            }
        }

        #[cfg(test)]
        impl BrokerConfig {
            /// Each section's name and `Debug` text (tests compare sections).
            pub(crate) fn sections_debug(&self) -> Vec<(&'static str, String)> {
                vec![$((stringify!($section), format!("{:?}", self.$section)),)*]
            }
        }

        /// Each section's name and its fields (the flat `ConfigFile` names), for tests and docs.
        pub const SECTION_FIELDS: &[(&str, &[&str])] =
            &[$((stringify!($section), &[$(stringify!($field),)*]),)*];
    };
}

sections! {
    /// The process: addresses, data directory, shards, node identity, shutdown.
    server: ServerSection {
        listen: String,
        advertise: Option<String>,
        admin_listen: String,
        admin_auth_token: Option<String>,
        data_dir: PathBuf,
        cores: usize,
        pin_threads: bool,
        mailbox_capacity: usize,
        shard_io_uring_setup: String,
        shard_io_wq_bounded_workers_max: u32,
        node_id: i32,
        cluster_id: String,
        broker_rack: Option<String>,
        shutdown_timeout_ms: u64,
    }
    /// Connections and request frames (`net`).
    socket: SocketSection {
        socket_request_max_bytes: u32,
        queued_max_requests: usize,
        max_connections_per_shard: usize,
        max_connection_creation_rate: i32,
        connections_max_idle_ms: i64,
    }
    /// Topic creation defaults (CreateTopics, auto-creation).
    topics: TopicsSection {
        auto_create_topics_enable: bool,
        num_partitions: i32,
        max_partitions_per_topic: i32,
        default_replication_factor: i16,
    }
    /// Fetch serving (`handlers::fetch`): sizes, long polls, sessions, zero-copy.
    fetch: FetchSection {
        fetch_max_bytes: u32,
        fetch_max_wait_ms: u32,
        fetch_zero_copy: bool,
        fetch_splice_pipe_bytes: usize,
        fetch_copy_pool_bytes: usize,
        fetch_session_cache_slots: usize,
        fetch_session_partitions_max: usize,
        fetch_waiters_per_partition_max: usize,
    }
    /// The broker-wide topic-config defaults and the logs' limits (`storage`, `partition`).
    log: LogSection {
        retention_check_interval_ms: u64,
        message_max_bytes: u32,
        log_segment_bytes: u64,
        log_roll_ms: u64,
        log_retention_ms: i64,
        log_retention_bytes: i64,
        log_index_interval_bytes: u32,
        log_index_size_max_bytes: u32,
        log_write_inline_max_bytes: u32,
        log_batch_inflated_max_bytes: u64,
        log_writeback_start_bytes: u64,
        log_zero_ahead_bytes: u64,
        log_sealed_segment_files_open_max: usize,
        log_active_segment_files_open_max: usize,
        log_flush_interval_messages: i64,
        log_flush_interval_ms: i64,
        log_message_timestamp_type: String,
        log_flush_on_acks_all: bool,
    }
    /// The group coordinator and its `__consumer_offsets` topic (`groups`).
    group: GroupSection {
        offsets_topic_replication_factor: i16,
        offsets_topic_num_partitions: u32,
        offsets_topic_segment_bytes: u64,
        offsets_retention_minutes: u64,
        offsets_retention_check_interval_ms: u64,
        offset_metadata_max_bytes: usize,
        group_initial_rebalance_delay_ms: u64,
        group_min_session_timeout_ms: i32,
        group_max_session_timeout_ms: i32,
        group_max_size: usize,
        group_max_count_per_shard: usize,
        group_timer_interval_ms: u64,
    }
    /// Each partition's idempotent-producer state (`producers`).
    producer_state: ProducerStateSection {
        producer_state_producers_per_partition_max: usize,
        producer_id_expiration_ms: i64,
        producer_state_rebuild_previous_segment_bytes_max: u64,
    }
    /// The log cleaner (`log_cleaner`, compaction defaults).
    log_cleaner: LogCleanerSection {
        log_cleaner_enable: bool,
        log_cleaner_dedupe_buffer_size: u64,
        log_cleaner_io_buffer_size: u64,
        log_cleaner_io_max_bytes_per_second: f64,
        log_cleaner_backoff_ms: u64,
        log_cleaner_min_cleanable_ratio: f64,
        log_cleaner_delete_retention_ms: i64,
        log_cleaner_min_compaction_lag_ms: i64,
        log_cleaner_max_compaction_lag_ms: i64,
    }
    /// Listeners, their security protocols and per-listener overrides (`security::listener`,
    /// `cluster::inter_broker`).
    listener: ListenerSection {
        listeners: Option<String>,
        advertised_listeners: Option<String>,
        listener_security_protocol_map: String,
        inter_broker_listener_name: Option<String>,
        security_inter_broker_protocol: Option<String>,
        listener_overrides: BTreeMap<String, String>,
    }
    /// TLS (`security::tls`).
    ssl: SslSection {
        ssl_keystore_type: String,
        ssl_keystore_location: Option<PathBuf>,
        ssl_keystore_certificate_chain: Option<String>,
        ssl_keystore_key: Option<String>,
        ssl_key_password: Option<String>,
        ssl_truststore_type: String,
        ssl_truststore_location: Option<PathBuf>,
        ssl_truststore_certificates: Option<String>,
        ssl_client_auth: String,
        ssl_enabled_protocols: String,
        ssl_principal_mapping_rules: String,
        ssl_allow_dn_changes: bool,
        ssl_allow_san_changes: bool,
    }
    /// SASL and authentication (`security::sasl`, `security::oauth*`).
    sasl: SaslSection {
        sasl_enabled_mechanisms: String,
        connection_failed_authentication_delay_ms: u64,
        authentication_timeout_ms: u64,
        sasl_server_max_receive_size: usize,
        connections_max_reauth_ms: u64,
        sasl_oauthbearer_jwks_endpoint_url: Option<String>,
        sasl_oauthbearer_expected_audience: String,
        sasl_oauthbearer_expected_issuer: Option<String>,
        sasl_oauthbearer_clock_skew_seconds: u64,
        sasl_oauthbearer_sub_claim_name: String,
        sasl_oauthbearer_jwks_endpoint_refresh_ms: u64,
        sasl_oauthbearer_jwks_endpoint_retry_backoff_ms: u64,
        sasl_oauthbearer_jwks_endpoint_ssl_truststore_location: Option<String>,
        sasl_mechanism_inter_broker_protocol: String,
        sasl_mechanism_controller_protocol: String,
        sasl_jaas_config: Option<String>,
    }
    /// ACL authorization (`security::acl_store`).
    authorizer: AuthorizerSection {
        authorizer_class_name: String,
        super_users: String,
        allow_everyone_if_no_acl_found: bool,
    }
    /// Client quotas (`quotas`).
    quota: QuotaSection {
        quota_window_num: usize,
        quota_window_size_seconds: u64,
        quota_sensors_max: usize,
    }
    /// KRaft: roles, the quorum, broker registration, forwarding, leader balance (`cluster`).
    controller: ControllerSection {
        process_roles: Option<String>,
        controller_quorum_voters: Option<String>,
        controller_quorum_bootstrap_servers: Option<String>,
        controller_listener_names: Option<String>,
        broker_session_timeout_ms: u64,
        broker_heartbeat_interval_ms: u64,
        metadata_log_dir: Option<PathBuf>,
        controller_quorum_election_timeout_ms: u64,
        controller_quorum_fetch_timeout_ms: u64,
        controller_quorum_request_timeout_ms: u64,
        metadata_log_max_entries_between_snapshots: u64,
        controller_max_connections: usize,
        controller_socket_timeout_ms: u64,
        forwarded_requests_max_in_flight: usize,
        request_timeout_ms: u64,
        auto_leader_rebalance_enable: bool,
        leader_imbalance_check_interval_seconds: u64,
        leader_imbalance_per_broker_percentage: u32,
        controlled_shutdown_timeout_ms: u64,
    }
    /// Replication: replica fetchers, the ISR, the produce purgatory, replication quotas
    /// (`replication`, `cluster::replicas`).
    replication: ReplicationSection {
        replica_lag_time_max_ms: u64,
        num_replica_fetchers: u32,
        replica_fetch_max_bytes: u32,
        replica_fetch_response_max_bytes: u32,
        replica_fetch_wait_max_ms: u32,
        replica_fetch_min_bytes: u32,
        replica_fetch_backoff_ms: u64,
        produce_purgatory_waiters_max: u32,
        delete_records_purgatory_waiters_max: u32,
        replica_high_watermark_checkpoint_interval_ms: u64,
        replication_quota_window_num: u32,
        replication_quota_window_size_seconds: u32,
    }
    /// The transaction coordinator and its `__transaction_state` topic (`txn`).
    transaction: TransactionSection {
        transaction_state_log_num_partitions: u32,
        transaction_state_log_replication_factor: i16,
        transaction_state_log_segment_bytes: u64,
        transaction_max_timeout_ms: i32,
        transactional_id_expiration_ms: i64,
        transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
        transaction_remove_expired_transaction_cleanup_interval_ms: u64,
        transaction_max_count_per_shard: usize,
        transaction_marker_queue_max_entries: usize,
        transaction_partition_verification_enable: bool,
        transaction_version: i16,
    }
}
