//! DescribeLogDirs (api key 35, v1-4): this broker's log directory (Sluice has one,
//! `data_dir`) with, per partition replica it holds, its size in bytes, its offset lag and
//! whether it is a future replica (never: Sluice has no intra-broker moves). As Kafka's
//! `ReplicaManager.describeLogDirs`: a null topic list means every partition, a named
//! partition this broker does not hold is left out, `offset_lag` is max(high watermark - log
//! end offset, 0), and v4 adds the directory's total and usable bytes (statvfs). CLUSTER
//! DESCRIBE is required (else CLUSTER_AUTHORIZATION_FAILED, v3+ top-level, no results).
//! `kafka-log-dirs --describe` reads it.
//!
//! Invariant: every shard answers for the partitions it owns, each partition once (the
//! partition map has one owner per partition); a shard that does not answer contributes none.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::ResponseError;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::partition::PartitionProxy;
use crate::security::acl::Operation;
use crate::shard::{Shard, ShardMsg};

/// (topic, partition, size bytes, offset lag) of one replica.
type ReplicaDir = (String, i32, i64, i64);

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeLogDirsRequest = request.decode()?;
        if !super::authz::cluster_allowed(&shard, &request, Operation::Describe) {
            let response = DescribeLogDirsResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
            return Outcome::encoded(&response, version);
        }
        let wanted: Option<BTreeSet<(String, i32)>> = body.topics.map(|topics| {
            topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
                .collect()
        });
        let replicas = collect(&shard).await;
        Outcome::encoded(&respond(&shard, replicas, wanted.as_ref()), version)
    })
}

/// Every shard's replicas.
async fn collect(shard: &Rc<Shard>) -> Vec<ReplicaDir> {
    let calls = shard.mesh.shards().map(|id| async move {
        if id == shard.id {
            return local_replicas(shard);
        }
        shard
            .mesh
            .call(id, |reply| {
                ShardMsg::run(move |shard| async move {
                    reply.send(local_replicas(&shard));
                })
            })
            .await
            .unwrap_or_default()
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn local_replicas(shard: &Shard) -> Vec<ReplicaDir> {
    shard
        .partitions
        .all()
        .iter()
        .map(|p| {
            let size = i64::try_from(p.storage().size_bytes()).unwrap_or(i64::MAX);
            let lag = (p.high_watermark() - p.log_end_offset()).max(0);
            let index = i32::try_from(p.tp.partition).unwrap_or(i32::MAX);
            (p.tp.topic.clone(), index, size, lag)
        })
        .collect()
}

fn respond(
    shard: &Shard,
    replicas: Vec<ReplicaDir>,
    wanted: Option<&BTreeSet<(String, i32)>>,
) -> DescribeLogDirsResponse {
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (topic, index, size, lag) in replicas {
        if wanted.is_some_and(|w| !w.contains(&(topic.clone(), index))) {
            continue;
        }
        by_topic.entry(topic).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(size)
                .with_offset_lag(lag)
                .with_is_future_key(false),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = &shard.config.server.data_dir;
    let (total, usable) = dir_space(dir).unwrap_or((-1, -1));
    let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&path.to_string_lossy()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// (total, usable) bytes of the file system holding `dir` (Kafka: `FileStore` total and usable
/// space); None when it cannot be read.
fn dir_space(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between platforms (u32 on some, u64 on others).
    #[allow(clippy::useless_conversion)]
    let (fragment, blocks, available) = (
        u64::from(stat.f_frsize),
        u64::from(stat.f_blocks),
        u64::from(stat.f_bavail),
    );
    let total = blocks.saturating_mul(fragment);
    let usable = available.saturating_mul(fragment);
    Some((
        i64::try_from(total).unwrap_or(i64::MAX),
        i64::try_from(usable).unwrap_or(i64::MAX),
    ))
}
