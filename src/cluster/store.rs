//! The single-node controller's persistence of the metadata image: the topics part in
//! `data_dir/__cluster/topics.toml` (the registry file Sluice has always written, now with one
//! registration per partition), the producer-id part in `data_dir/__cluster/producer_ids`
//! (`next_block_start=N`, the file the shard-0 counter wrote before blocks became records) and
//! the dynamic broker configs in `data_dir/__cluster/broker-configs.toml` (cluster-wide and
//! this node's, as before).
//! Both are written atomically (temp file, fsync, rename, fsync dir) by the controller after
//! applying a change to a copy of the image and before any shard adopts it.
//!
//! Loading turns the files into records (`TopicRecord`, `PartitionRecord`, `ConfigRecord`,
//! `ProducerIdsRecord`) and applies them to an empty image, so a data directory written before
//! the image existed is adopted through the same `apply` as every later change: its partitions
//! get one replica on this node leading in epoch 0, and producer ids continue after the
//! persisted block, never going back. Brokers are not persisted: a broker registers again at
//! every start (`register`).
//!
//! A KRaft node (`process.roles` set) writes none of these: its image lives in the replicated
//! metadata log and its snapshots (`quorum`); an existing single-node directory is adopted into
//! an empty cluster image once (`duties`) and its topics file set aside.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::image::{self, MetadataImage, PartitionRegistration};
use super::records::{BrokerEndpoint, MetadataRecord, ProducerIdsRecord, RegisterBrokerRecord};
use super::topics;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Topics(#[from] TopicsFileError),
    #[error("producer id file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("producer id file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("metadata files do not form a valid image: {0}")]
    Image(#[from] image::ImageError),
}

/// The topic registry file could not be read or parsed (the message of `topics::TopicError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopicsFileError(String);

const PRODUCER_IDS_FILE: &str = "producer_ids";
const PRODUCER_IDS_MAGIC: &str = "next_block_start=";

pub fn producer_ids_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster").join(PRODUCER_IDS_FILE)
}

/// Loads the image of `data_dir` as this node (`broker`) last persisted it. Blocking: called
/// once per shard at start, before serving.
pub fn load(data_dir: &Path, broker: i32) -> Result<MetadataImage, StoreError> {
    let mut image = MetadataImage::default();
    let metas = topics::load(data_dir).map_err(|e| TopicsFileError(e.to_string()))?;
    for meta in metas.iter() {
        image.apply_all(&image::topic_records(meta, broker))?;
    }
    let dynamic = topics::dynamic::load(data_dir).map_err(|e| TopicsFileError(e.to_string()))?;
    let none = std::collections::BTreeMap::new();
    image.apply_all(&image::broker_config_records("", &none, &dynamic.cluster))?;
    image.apply_all(&image::broker_config_records(
        &broker.to_string(),
        &none,
        &dynamic.node,
    ))?;
    let security = super::security_store::load_records(data_dir)
        .map_err(|e| TopicsFileError(e.to_string()))?;
    image.apply_all(&security)?;
    if let Some(next) = load_producer_ids(data_dir)? {
        image.apply(&MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: broker,
            broker_epoch: -1,
            next_producer_id: next,
        }))?;
    }
    Ok(image)
}

fn load_producer_ids(data_dir: &Path) -> Result<Option<i64>, StoreError> {
    let path = producer_ids_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    parse_producer_ids(&text)
        .map(Some)
        .map_err(|reason| StoreError::Corrupt {
            path: path.display().to_string(),
            reason,
        })
}

fn parse_producer_ids(text: &str) -> Result<i64, String> {
    let value = text
        .trim()
        .strip_prefix(PRODUCER_IDS_MAGIC)
        .ok_or_else(|| format!("expected {PRODUCER_IDS_MAGIC}N"))?;
    let start: i64 = value.parse().map_err(|e| format!("{value:?}: {e}"))?;
    if start < 0 {
        return Err(format!("negative start {start}"));
    }
    Ok(start)
}

/// Persists the topics part of `image`, written by `broker`. A topic whose partitions all have
/// the registration loading gives (one replica on `broker`, leading in epoch 0) is written
/// without them, so a single node's registry stays as small as before the image existed
/// (100,000 partitions would otherwise add ~10 MB to every rewrite). Runs on a blocking thread
/// so shard 0 keeps serving.
pub async fn persist_topics(
    data_dir: &Path,
    image: &MetadataImage,
    broker: i32,
) -> Result<(), String> {
    let default = PartitionRegistration::single(broker);
    let metas = image
        .iter()
        .map(|meta| {
            let mut meta = meta.clone();
            if meta.registrations.iter().all(|r| *r == default) {
                meta.registrations.clear();
            }
            meta
        })
        .collect();
    topics::persist_metas(data_dir, metas)
        .await
        .map_err(|e| e.to_string())
}

/// Persists the producer-id part of `image`.
pub async fn persist_producer_ids(data_dir: &Path, image: &MetadataImage) -> Result<(), String> {
    let text = format!("{PRODUCER_IDS_MAGIC}{}\n", image.next_producer_id());
    let path = producer_ids_path(data_dir);
    crate::atomic_file::write_off_thread(path.clone(), text.into_bytes())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Persists the dynamic broker configs in force on `node` (`__cluster/broker-configs.toml`).
pub async fn persist_broker_configs(
    data_dir: &Path,
    image: &MetadataImage,
    node: i32,
) -> Result<(), String> {
    topics::dynamic::persist(data_dir, &image.dynamic_configs(node))
        .await
        .map_err(|e| e.to_string())
}

/// This process's registration (the same record on every shard): every listener as clients
/// reach it, a fresh incarnation id, and a broker epoch that grows across restarts (the start
/// time in ms, as no log offset exists to use as Kafka does).
pub fn register(
    broker: i32,
    rack: Option<String>,
    end_points: Vec<BrokerEndpoint>,
) -> MetadataRecord {
    static STARTED: OnceLock<(u128, i64)> = OnceLock::new();
    let (incarnation_id, broker_epoch) = *STARTED.get_or_init(|| {
        let epoch = crate::clock::system_now_ms();
        (topics::TopicId::generate("incarnation").0, epoch)
    });
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: broker,
        incarnation_id,
        broker_epoch,
        end_points,
        rack,
        fenced: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_id_file_format_round_trips_and_rejects_garbage() {
        assert_eq!(parse_producer_ids("next_block_start=3000\n"), Ok(3000));
        assert!(parse_producer_ids("3000").is_err());
        assert!(parse_producer_ids("next_block_start=-1").is_err());
        assert!(parse_producer_ids("next_block_start=x").is_err());
    }

    /// A data directory written before the image existed: a registry without registrations
    /// and a shard-0 producer id counter.
    #[test]
    fn an_old_data_dir_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("__cluster");
        std::fs::create_dir_all(&cluster).unwrap();
        std::fs::write(
            cluster.join("topics.toml"),
            "[[topic]]\nname = \"orders\"\nid = \"6ba7b810-9dad-41d1-80b4-00c04fd430c8\"\n\
             partitions = 2\n\n[topic.configs]\n\"retention.ms\" = \"1000\"\n",
        )
        .unwrap();
        std::fs::write(cluster.join("producer_ids"), "next_block_start=7000\n").unwrap();
        let image = load(dir.path(), 5).unwrap();
        let meta = image.get("orders").unwrap();
        assert_eq!(meta.partitions, 2);
        assert_eq!(
            meta.id.uuid().to_string(),
            "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
        );
        assert_eq!(
            meta.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(
            image.partition("orders", 1),
            Some(&PartitionRegistration::single(5))
        );
        assert_eq!(image.next_producer_id(), 7000, "ids never go back");
    }

    #[test]
    fn a_single_nodes_registry_is_written_without_registrations() {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::cluster::topics::TopicMeta {
            name: "t".into(),
            id: topics::TopicId::generate("t"),
            partitions: 3,
            configs: Default::default(),
            registrations: Vec::new(),
        };
        let mut image = MetadataImage::default();
        image.apply_all(&image::topic_records(&meta, 2)).unwrap();
        let data_dir = dir.path().to_owned();
        let written = image.clone();
        compio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                persist_topics(&data_dir, &written, 2).await.unwrap();
            });
        let text = std::fs::read_to_string(topics::registry_path(dir.path())).unwrap();
        assert!(!text.contains("registrations"), "{text}");
        assert_eq!(load(dir.path(), 2).unwrap(), image);
    }

    #[test]
    fn the_image_round_trips_through_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = MetadataImage::default();
        let meta = crate::cluster::topics::TopicMeta {
            name: "t".into(),
            id: topics::TopicId::generate("t"),
            partitions: 0,
            configs: Default::default(),
            registrations: Vec::new(),
        };
        let mut records = image::topic_records(&meta, 1);
        records.push(MetadataRecord::Partition(
            crate::cluster::records::PartitionRecord {
                partition_id: 0,
                topic_id: meta.id,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 9,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            },
        ));
        records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 1,
            next_producer_id: 2000,
        }));
        image.apply_all(&records).unwrap();
        let data_dir = dir.path().to_owned();
        let written = image.clone();
        compio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                persist_topics(&data_dir, &written, 1).await.unwrap();
                persist_producer_ids(&data_dir, &written).await.unwrap();
            });
        // The broker this image was written by is not persisted (it registers at start), and
        // partition 0's stored registration is kept, not replaced by a default one.
        let loaded = load(dir.path(), 3).unwrap();
        assert_eq!(loaded, image);
        assert_eq!(loaded.partition("t", 0).map(|r| r.leader_epoch), Some(4));
    }
}
