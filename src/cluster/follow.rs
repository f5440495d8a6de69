//! On a KRaft node, shard 0 keeps every shard's image equal to the node's committed image
//! (`SharedImage`): it computes the records that turn its image into the committed one
//! (`delta`, Kafka's `MetadataDelta`), has the deleted topics' data removed on every shard
//! (`deletion`), and broadcasts the other records (`broadcast::broadcast_records`: every shard
//! applies them, opens new partitions, applies configs and leader epochs). The offset it
//! reached is the shard's `cluster_synced` (what heartbeats report and the controller's
//! commits wait for).
//!
//! Invariants: the delta of image A to image B, applied to A, gives B (tested); changes
//! coalesce (a follower that falls behind applies one delta to the latest image, never a
//! backlog), so nothing here grows with the rate of changes.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::broadcast::{self, Broadcast};
use super::image::{self, MetadataImage};
use super::node::ClusterNode;
use super::records::{
    ConfigRecord, MetadataRecord, PartitionRecord, ProducerIdsRecord, UnregisterBrokerRecord,
    CONFIG_RESOURCE_TOPIC, NO_LEADER,
};
use super::topics::TopicMeta;

/// What following the committed image uses of shard 0 (built by the shard,
/// `shard::contexts_cluster`).
pub struct FollowContext<'a> {
    pub image: &'a RefCell<MetadataImage>,
    /// The metadata offset every shard's image reflects (set here).
    pub cluster_synced: &'a Cell<u64>,
    /// Every shard, to apply each delta.
    pub broadcast: Broadcast<'a>,
}

/// Follows the node's committed image until the process stops.
pub async fn run(shard: &FollowContext<'_>, node: Arc<ClusterNode>) {
    loop {
        sync_once(shard, &node).await;
        node.image.changed().await;
    }
}

async fn sync_once(shard: &FollowContext<'_>, node: &ClusterNode) {
    let target = node.image.current();
    let (removed, records) = delta(&shard.image.borrow(), &target.image);
    if !removed.is_empty() {
        let failed = broadcast::broadcast_removal(&shard.broadcast, &removed).await;
        for (topic, why) in failed {
            tracing::error!(%topic, %why, "a deleted topic's data could not be removed");
        }
    }
    if !records.is_empty() {
        broadcast::broadcast_records(&shard.broadcast, records).await;
    }
    if *shard.image.borrow() != target.image {
        tracing::error!(
            offset = target.offset,
            "shard image differs from the committed image after applying the delta"
        );
    }
    shard.cluster_synced.set(target.offset);
    node.applied_offset
        .store(target.offset, std::sync::atomic::Ordering::Release);
}

/// The topics of `from` gone (or replaced by another id) in `to`, and the records turning the
/// rest of `from` into `to`.
pub fn delta(from: &MetadataImage, to: &MetadataImage) -> (Vec<TopicMeta>, Vec<MetadataRecord>) {
    let mut records = Vec::new();
    for broker in to.brokers() {
        if from.broker(broker.broker_id) != Some(broker) {
            records.push(MetadataRecord::RegisterBroker(broker.clone()));
        }
    }
    for broker in from.brokers() {
        if to.broker(broker.broker_id).is_none() {
            records.push(MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: broker.broker_id,
                broker_epoch: broker.broker_epoch,
            }));
        }
    }
    let removed: Vec<TopicMeta> = from
        .iter()
        .filter(|meta| to.by_id(meta.id).is_none_or(|now| now.name != meta.name))
        .cloned()
        .collect();
    for meta in to.iter() {
        match from.by_id(meta.id).filter(|old| old.name == meta.name) {
            None => records.extend(image::topic_records(meta, NO_LEADER)),
            Some(old) => records.extend(topic_delta(old, meta)),
        }
    }
    let empty = Default::default();
    let (old_configs, new_configs) = (from.broker_config_resources(), to.broker_config_resources());
    for (resource, configs) in new_configs {
        let old = old_configs.get(resource).unwrap_or(&empty);
        records.extend(image::broker_config_records(resource, old, configs));
    }
    for (resource, old) in old_configs {
        if !new_configs.contains_key(resource) {
            records.extend(image::broker_config_records(resource, old, &empty));
        }
    }
    if to.next_producer_id() != from.next_producer_id() {
        records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: NO_LEADER,
            broker_epoch: -1,
            next_producer_id: to.next_producer_id(),
        }));
    }
    // ACLs, SCRAM credentials and client quotas: without these a committed change would reach
    // the node's image but never its shards' authorizer, SASL and quota checks.
    records.extend(from.security().delta(to.security()));
    (removed, records)
}

fn topic_delta(old: &TopicMeta, new: &TopicMeta) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (index, r) in (0u32..).zip(&new.registrations) {
        let before = usize::try_from(index)
            .ok()
            .and_then(|i| old.registrations.get(i));
        if before != Some(r) {
            records.push(MetadataRecord::Partition(PartitionRecord {
                partition_id: index,
                topic_id: new.id,
                replicas: r.replicas.clone(),
                isr: r.isr.clone(),
                leader: r.leader,
                leader_epoch: r.leader_epoch,
                partition_epoch: r.partition_epoch,
                adding_replicas: r.adding_replicas.clone(),
                removing_replicas: r.removing_replicas.clone(),
            }));
        }
    }
    let config = |name: &String, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: new.name.clone(),
            name: name.clone(),
            value: value.cloned(),
        })
    };
    for name in old.configs.keys().filter(|k| !new.configs.contains_key(*k)) {
        records.push(config(name, None));
    }
    for (name, value) in &new.configs {
        if old.configs.get(name) != Some(value) {
            records.push(config(name, Some(value)));
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{
        FenceBrokerRecord, PartitionChangeRecord, RegisterBrokerRecord, RemoveTopicRecord,
    };
    use crate::cluster::topics::TopicId;

    fn topic(name: &str, id: u128, partitions: u32) -> Vec<MetadataRecord> {
        let meta = TopicMeta {
            name: name.into(),
            id: TopicId(id),
            partitions,
            configs: [("retention.ms".to_owned(), "5".to_owned())].into(),
            registrations: Vec::new(),
        };
        image::topic_records(&meta, 1)
    }

    fn broker(id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            incarnation_id: 1,
            broker_epoch: 3,
            end_points: Vec::new(),
            rack: None,
            fenced: false,
        })
    }

    #[test]
    fn the_delta_turns_one_image_into_the_other() {
        let mut a = MetadataImage::default();
        a.apply_all(&[broker(1), broker(2)]).unwrap();
        a.apply_all(&topic("gone", 1, 2)).unwrap();
        a.apply_all(&topic("kept", 2, 1)).unwrap();
        a.apply_all(&topic("again", 3, 1)).unwrap();
        let mut b = a.clone();
        let changes = [
            MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: TopicId(1),
            }),
            MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: TopicId(3),
            }),
            MetadataRecord::FenceBroker(FenceBrokerRecord { id: 2, epoch: 3 }),
            MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: 1,
                broker_epoch: 3,
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                partition_id: 0,
                topic_id: TopicId(2),
                isr: None,
                leader: -1,
                replicas: None,
                removing_replicas: None,
                adding_replicas: None,
            }),
            MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: "kept".into(),
                name: "retention.ms".into(),
                value: None,
            }),
            MetadataRecord::Config(ConfigRecord {
                resource_type: crate::cluster::records::CONFIG_RESOURCE_BROKER,
                resource_name: String::new(),
                name: "log.retention.ms".into(),
                value: Some("9".into()),
            }),
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 2,
                broker_epoch: 3,
                next_producer_id: 1000,
            }),
        ];
        b.apply_all(&changes).unwrap();
        b.apply_all(&topic("again", 4, 3)).unwrap();
        b.apply_all(&topic("new", 5, 2)).unwrap();
        let (removed, records) = delta(&a, &b);
        let names: Vec<&str> = removed.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["again", "gone"]);
        let mut c = a.clone();
        for meta in &removed {
            c.apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: meta.id,
            }))
            .unwrap();
        }
        c.apply_all(&records).unwrap();
        assert_eq!(c, b);
        assert_eq!(
            delta(&b, &b),
            (Vec::new(), Vec::new()),
            "no change, no records"
        );
    }
}
