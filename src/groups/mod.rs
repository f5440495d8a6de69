//! Consumer groups: the group coordinator and committed offsets.
//!
//! Each group is owned by one shard: the owner of partition `java_hash(group) % P` of
//! `__consumer_offsets` (P = its partition count, Kafka's formula), so a group's state is only
//! ever touched on that shard; requests for it are sent there with `Mesh::call` (`route`).
//! Group state and committed offsets are written as Kafka-format records (`codec`) to that
//! partition and rebuilt from it at start (`store`). `state` is the pure state machine,
//! `coordinator` runs it on the shard (waiters, timers, persistence).
//!
//! Across brokers, a group's coordinator is the broker leading that partition in the metadata
//! image; a group request reaching another broker answers NOT_COORDINATOR (`route`).
//!
//! Invariants: a group op runs only on the group's owner shard; the owner answers
//! COORDINATOR_LOAD_IN_PROGRESS until it has replayed the group's offsets partition; every
//! message between shards carries owned data only.

pub mod api;
pub mod code;
pub mod codec;
pub mod coordinator;
pub mod state;
pub mod store;
pub mod subscription;
pub mod table;
pub mod txn_offsets;

use shards::ShardId;

pub use self::api::*;
pub use self::coordinator::Coordinator;
use crate::router::{Router, RouterContext};

/// What the group coordinator (`coordinator`, `store`, `txn_offsets`) uses of its shard
/// (built by the shard, `shard::contexts`).
#[derive(Clone, Copy)]
pub struct GroupContext<'a> {
    /// The groups this shard coordinates.
    pub groups: &'a Coordinator,
    pub config: &'a crate::config::GroupSection,
    /// The offsets topic's log on this shard: placement, image, partitions (`coordinator_log`).
    pub log: crate::coordinator_log::io::LogContext<'a>,
}

/// What routing a group op to its coordinator shard (`route`, `list_all`, `complete_txn`) and
/// creating the offsets topic use (built by the shard, `shard::contexts_txn`).
#[derive(Clone, Copy)]
pub struct GroupRoutingContext<'a> {
    /// This shard's group coordinator, for the ops it owns.
    pub group: GroupContext<'a>,
    /// The other shards (mesh), the registry (the offsets topic's creation), the image.
    pub router: RouterContext<'a>,
}

pub use crate::internal_topics::OFFSETS_TOPIC;

/// Kafka's partition for a group: `abs(javaStringHashCode(group)) % partitions`.
pub use crate::coordinator_log::partition_for;

/// The partition count of the offsets topic (the existing topic's, else the config's).
pub fn offsets_partitions(shard: &GroupContext<'_>) -> u32 {
    shard
        .log
        .image
        .borrow()
        .get(OFFSETS_TOPIC)
        .map_or(shard.config.offsets_topic_num_partitions, |m| m.partitions)
}

/// The shard that coordinates `group`.
pub fn owner_of(shard: &GroupContext<'_>, group: &str) -> (ShardId, u32) {
    let partition = partition_for(group, offsets_partitions(shard));
    (
        shard.log.placement.shard_for(OFFSETS_TOPIC, partition),
        partition,
    )
}

/// Serves a [`GroupMsg`] from another shard.
pub async fn serve(shard: &GroupContext<'_>, msg: GroupMsg) {
    msg.reply.send(coordinator::execute(shard, msg.op).await);
}

/// Runs `op` on the group's owner shard (directly when that is this shard).
pub async fn route(shard: &GroupRoutingContext<'_>, op: GroupOp) -> GroupAnswer {
    let Some(group) = op.group() else {
        return coordinator::execute(&shard.group, op).await;
    };
    let (owner, partition) = owner_of(&shard.group, group);
    if !leads_offsets_partition(&shard.group, partition) {
        // Another broker coordinates the group: the client finds it again (FindCoordinator).
        return GroupAnswer::Error(GroupCode::NotCoordinator);
    }
    call_shard(shard, owner, op).await
}

/// Whether this broker leads `partition` of the offsets topic in the metadata image, i.e. is
/// the coordinator of its groups (Kafka: the coordinator is the partition's leader). True
/// while the topic does not exist yet: the owner shard then answers
/// COORDINATOR_LOAD_IN_PROGRESS, as before it is created.
pub fn leads_offsets_partition(shard: &GroupContext<'_>, partition: u32) -> bool {
    crate::coordinator_log::io::leads_partition(&shard.log, OFFSETS_TOPIC, partition)
}

async fn call_shard(shard: &GroupRoutingContext<'_>, owner: ShardId, op: GroupOp) -> GroupAnswer {
    if owner == shard.router.shard_id {
        return coordinator::execute(&shard.group, op).await;
    }
    let call = shard
        .router
        .mesh
        .call(owner, |reply| GroupMsg { op, reply }.into());
    call.await
        .unwrap_or(GroupAnswer::Error(GroupCode::CoordinatorNotAvailable))
}

/// A transaction's marker was written to offsets partition `partition`: completes the
/// producer's pending TxnOffsetCommit offsets there, on the partition's owner shard.
pub async fn complete_txn(
    shard: &GroupRoutingContext<'_>,
    partition: u32,
    producer_id: i64,
    commit: bool,
) {
    let owner = shard.router.placement.shard_for(OFFSETS_TOPIC, partition);
    let op = GroupOp::CompleteTxn {
        partition,
        producer_id,
        commit,
    };
    if let GroupAnswer::Error(code) = call_shard(shard, owner, op).await {
        tracing::warn!(
            partition,
            producer_id,
            ?code,
            "transactional offsets not completed"
        );
    }
}

/// ListGroups: every shard's groups.
pub async fn list_all(shard: &GroupRoutingContext<'_>) -> Result<Vec<Listed>, GroupCode> {
    let calls = shard
        .router
        .mesh
        .shards()
        .map(|id| call_shard(shard, id, GroupOp::List));
    let mut all = Vec::new();
    for answer in futures_util::future::join_all(calls).await {
        match answer {
            GroupAnswer::Listed(groups) => all.extend(groups),
            GroupAnswer::Error(code) => return Err(code),
            _ => return Err(GroupCode::UnknownServerError),
        }
    }
    all.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(all)
}

/// Startup on every shard: replays the offsets partitions this shard owns; shard 0 also
/// creates the offsets topic when it does not exist yet (its partitions are then opened and
/// loaded through the topic broadcast, see `adopted`).
pub async fn start(shard: &GroupContext<'_>) {
    store::load_owned(shard).await;
}

/// On shard 0, once every shard serves its inbox: creates `__consumer_offsets` if absent, with
/// Kafka's configs for it (`GroupCoordinatorService.groupMetadataTopicConfigs`:
/// cleanup.policy=compact, compression.type=producer, segment.bytes=
/// `offsets.topic.segment.bytes`) plus a max.message.bytes large enough for big groups. The
/// shard's log cleaner then keeps it bounded. An existing offsets topic without the compact
/// policy (created by an older Sluice, which compacted it itself) is switched to it.
pub async fn ensure_offsets_topic(shard: &GroupRoutingContext<'_>) {
    let existing = shard
        .router
        .image
        .borrow()
        .get(OFFSETS_TOPIC)
        .map(|m| crate::topics::compaction::policy(&m.configs).compact);
    match existing {
        Some(true) => {}
        Some(false) => make_offsets_topic_compacted(shard).await,
        None => create_offsets_topic(shard).await,
    }
}

async fn create_offsets_topic(shard: &GroupRoutingContext<'_>) {
    let topic = offsets_topic(*shard);
    let created = Router::new(shard.router)
        .create_topics(vec![topic], false)
        .await;
    match created.into_iter().next() {
        Some(Ok(_)) | Some(Err(crate::topics::TopicError::AlreadyExists(_))) => {}
        Some(Err(e)) => shards::fatal(format!("cannot create {OFFSETS_TOPIC}: {e}")),
        None => shards::fatal(format!("cannot create {OFFSETS_TOPIC}: no answer")),
    }
}

/// `__consumer_offsets` as the broker creates it (compacted, `offsets.topic.*` settings).
/// (Takes what converts into the context: the controller's duties call it with the shard.)
pub fn offsets_topic<'a>(shard: impl Into<GroupRoutingContext<'a>>) -> crate::router::NewTopic {
    let shard = &shard.into();
    let mut configs = crate::topics::config::TopicOverrides::new();
    configs.insert("cleanup.policy".into(), "compact".into());
    configs.insert("compression.type".into(), "producer".into());
    configs.insert(
        "segment.bytes".into(),
        shard.group.config.offsets_topic_segment_bytes.to_string(),
    );
    configs.insert(
        "max.message.bytes".into(),
        store::BATCH_BYTES_MAX.to_string(),
    );
    crate::router::NewTopic {
        name: OFFSETS_TOPIC.to_owned(),
        partitions: i32::try_from(shard.group.config.offsets_topic_num_partitions)
            .unwrap_or(i32::MAX),
        replication_factor: offsets_replication_factor(shard),
        configs,
        assignments: None,
    }
}

/// `offsets.topic.replication.factor`. In a KRaft cluster it is Kafka's rule: the topic is
/// created with that factor, and creation fails (INVALID_REPLICATION_FACTOR, retried by the
/// active controller) until that many brokers are registered, so its partitions spread over
/// the whole cluster instead of the first broker up. A single node without KRaft settings caps
/// it at the brokers registered (itself), so `sluice` with no settings keeps its offsets topic.
fn offsets_replication_factor(shard: &GroupRoutingContext<'_>) -> i16 {
    let factor = shard.group.config.offsets_topic_replication_factor;
    if shard.router.is_cluster {
        return factor;
    }
    let registered = shard.router.image.borrow().brokers().count();
    factor.min(i16::try_from(registered).unwrap_or(i16::MAX).max(1))
}

/// Sets cleanup.policy=compact on an existing offsets topic (an IncrementalAlterConfigs SET).
async fn make_offsets_topic_compacted(shard: &GroupRoutingContext<'_>) {
    let entry = crate::topics::alter::IncrementalEntry {
        key: "cleanup.policy".into(),
        op: 0, // SET
        value: Some("compact".into()),
    };
    let change = crate::router::admin::RegistryChange::AlterConfigs {
        topics: vec![(
            OFFSETS_TOPIC.to_owned(),
            crate::router::admin::ConfigChange::IncrementalAlter(vec![entry]),
        )],
        validate_only: false,
    };
    let changed = Router::new(shard.router).change_registry(change).await;
    match changed.into_iter().next() {
        Some(Ok(_)) => tracing::info!("{OFFSETS_TOPIC} switched to cleanup.policy=compact"),
        Some(Err(e)) => shards::fatal(format!("cannot make {OFFSETS_TOPIC} compacted: {e}")),
        None => shards::fatal(format!("cannot make {OFFSETS_TOPIC} compacted: no answer")),
    }
}

/// Called after a shard adopted topic changes: forgets the offsets partitions this broker no
/// longer leads (so it never writes to them again) and loads the ones it now leads.
pub async fn adopted(shard: &GroupContext<'_>, changed: &[crate::topics::TopicMeta]) {
    if changed.iter().any(|m| m.name == OFFSETS_TOPIC) {
        for index in shard.groups.loaded_partitions() {
            if !leads_offsets_partition(shard, index) {
                let groups = shard.groups.unload(index);
                tracing::info!(
                    partition = index,
                    groups,
                    "offsets partition led elsewhere now; groups unloaded"
                );
            }
        }
        store::load_owned(shard).await;
    }
}
