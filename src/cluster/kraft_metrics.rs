//! The KRaft gauges of a node on `/metrics` (`metrics::http::Scrape::more_text`): its role,
//! whether it is the active controller, the committed and applied metadata offsets and their
//! lag, registered and fenced brokers, offline partitions, and its own fencing.

/// What the cluster's `/metrics` gauges (`render` here and in `replication_metrics`) read of
/// a shard (built by the shard, `shard::contexts`).
pub struct MetricsContext<'a> {
    /// This process as a KRaft node; None for the single node of old.
    pub cluster: Option<&'a super::node::ClusterNode>,
    pub image: &'a std::cell::RefCell<super::MetadataImage>,
    /// The metadata offset every shard's image reflects (kept by `follow`).
    pub cluster_synced: u64,
    pub dynamic_configs: &'a std::cell::RefCell<crate::topics::dynamic::DynamicConfigs>,
    pub default_log: &'a storage::LogConfig,
    pub node_id: i32,
}

/// The KRaft gauges of this node (Prometheus text; empty for the single node of old).
pub fn render(shard: &MetricsContext<'_>) -> String {
    use std::fmt::Write;
    let Some(node) = shard.cluster else {
        return String::new();
    };
    let image = shard.image.borrow();
    // The newest committed offset this node knows: its own committed image, or what the
    // active controller last answered a heartbeat with (a broker-only node lags behind it).
    let committed = node.image.offset().max(
        node.controller_offset
            .load(std::sync::atomic::Ordering::Acquire),
    );
    let applied = shard.cluster_synced;
    let alive = |id: i32| image.broker(id).is_some_and(|b| !b.fenced);
    let offline = image
        .iter()
        .flat_map(|meta| meta.registrations.iter())
        .filter(|r| !alive(r.leader))
        .count();
    let gauges: [(&str, &str, u64); 8] = [
        (
            "sluice_kraft_controller_role",
            "1 when process.roles has the controller role.",
            u64::from(node.settings.roles.controller),
        ),
        (
            "sluice_kraft_active_controller",
            "1 while this node is the active controller (the quorum's leader).",
            u64::from(node.is_active_controller()),
        ),
        (
            "sluice_kraft_metadata_committed_offset",
            "The metadata offset (log index) of the committed image this node knows.",
            committed,
        ),
        (
            "sluice_kraft_metadata_applied_offset",
            "The metadata offset every shard's image reflects.",
            applied,
        ),
        (
            "sluice_kraft_metadata_lag",
            "Committed metadata offsets not yet applied by the shards.",
            committed.saturating_sub(applied),
        ),
        (
            "sluice_kraft_registered_brokers",
            "Brokers registered in the metadata image.",
            image.brokers().count() as u64,
        ),
        (
            "sluice_kraft_fenced_brokers",
            "Registered brokers that are fenced (no heartbeat within the session timeout).",
            image.brokers().filter(|b| b.fenced).count() as u64,
        ),
        (
            "sluice_kraft_offline_partitions",
            "Partitions without a live leader (leader -1 or a fenced broker).",
            offline as u64,
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let fenced = node
        .fenced
        .load(std::sync::atomic::Ordering::Acquire)
        .max(0);
    let _ = writeln!(
        out,
        "# HELP sluice_kraft_broker_fenced 1 while the controller reports this broker fenced.\n\
         # TYPE sluice_kraft_broker_fenced gauge\nsluice_kraft_broker_fenced {fenced}"
    );
    out
}
