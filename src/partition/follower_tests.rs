use std::rc::Rc;

use super::*;
use crate::partition::proxy::{AppendOrigin, AppendRequest, PartitionProxy};
use crate::partition::TopicPartition;

async fn open(dir: &std::path::Path) -> Rc<Partition> {
    let log = storage::Log::open(dir.to_path_buf(), storage::LogConfig::default())
        .await
        .unwrap();
    let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
    let producers = crate::producers::ProducerStates::new(limits.state);
    Rc::new(Partition::new(
        TopicPartition::new("t", 0),
        log,
        8,
        producers,
    ))
}

fn batch(values: &[&str]) -> Bytes {
    let mut builder = storage::BatchBuilder::new(1_000);
    for v in values {
        builder = builder.record(Some(b"k"), Some(v.as_bytes()), &[]);
    }
    builder.build().freeze()
}

async fn produce(p: &Rc<Partition>, values: &[&str]) {
    let request = AppendRequest {
        verification_guard: None,
        records: batch(values),
        origin: AppendOrigin::Client,
        acks: 1,
        flush_on_acks_all: false,
        now_ms: 2_000,
        timeout_ms: None,
    };
    p.clone().append(request).await.unwrap();
}

/// Everything the leader has from `offset`, as a follower fetch would carry it.
async fn fetch(leader: &Partition, offset: i64) -> Bytes {
    let end = leader.log.log_end_offset();
    let slice = leader
        .log
        .read(storage::Offset(offset), 1 << 20, true, end)
        .await
        .unwrap();
    slice.read_bytes().await.unwrap()
}

fn segment_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect()
}

/// The follower stores the leader's batches unchanged: same offsets, same leader epochs,
/// byte-identical segment files; its leader-epoch cache learns each epoch from the batches.
#[compio::test]
async fn follower_copies_are_byte_identical() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path()).await;
    leader.become_leader(0).await.unwrap();
    produce(&leader, &["a", "b"]).await;
    leader.become_leader(3).await.unwrap();
    produce(&leader, &["c"]).await;
    let follower = open(fd.path()).await;
    follower.become_follower(3).unwrap();
    let appended = follower
        .append_as_follower(fetch(&leader, 0).await, 2_000)
        .await
        .unwrap();
    assert_eq!((appended.base_offset, appended.last_offset), (0, 2));
    assert_eq!(follower.log_end_offset(), 3);
    assert_eq!(segment_bytes(ld.path()), segment_bytes(fd.path()));
    assert_eq!(follower.own_end_offset_for_epoch(0), (0, 2));
    assert_eq!(follower.latest_epoch(), 3);
    assert_eq!(
        std::fs::read_to_string(fd.path().join(super::super::epochs::CHECKPOINT_FILE)).unwrap(),
        "0\n2\n0 0\n3 2\n"
    );
    // Replaying the same batches (a stale fetch position) is refused, nothing written.
    let again = follower
        .append_as_follower(fetch(&leader, 0).await, 2_000)
        .await;
    assert!(matches!(
        again,
        Err(PartitionError::OffsetOutOfRange { .. })
    ));
    assert_eq!(follower.log_end_offset(), 3);
}

/// A batch whose CRC does not match is refused (CORRUPT_MESSAGE), nothing written.
#[compio::test]
async fn corrupt_batches_are_refused() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path()).await;
    leader.become_leader(0).await.unwrap();
    produce(&leader, &["a"]).await;
    let mut bytes = fetch(&leader, 0).await.to_vec();
    let n = bytes.len();
    bytes[n - 2] ^= 0x55;
    let follower = open(fd.path()).await;
    follower.become_follower(0).unwrap();
    let refused = follower.append_as_follower(Bytes::from(bytes), 2_000).await;
    assert!(
        matches!(refused, Err(PartitionError::Corrupt(_))),
        "{refused:?}"
    );
    assert_eq!(follower.log_end_offset(), 0);
}

/// A divergent tail is removed with its epochs: the follower then continues from the new
/// leader's batches and ends byte-identical to it.
#[compio::test]
async fn truncation_removes_the_divergent_tail_and_its_epochs() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
    // The old leader (now a follower) wrote offsets 0..2 in epoch 0, then 2..4 in epoch 1
    // that never replicated.
    let old = open(fd.path()).await;
    old.become_leader(0).await.unwrap();
    produce(&old, &["a", "b"]).await;
    let common = fetch(&old, 0).await;
    old.become_leader(1).await.unwrap();
    produce(&old, &["lost-1", "lost-2"]).await;
    // The new leader has the common prefix, then epoch 2.
    let new = open(ld.path()).await;
    new.become_follower(0).unwrap();
    new.append_as_follower(common, 2_000).await.unwrap();
    new.become_leader(2).await.unwrap();
    produce(&new, &["c"]).await;
    // The old leader asks about its latest epoch (1); the new leader answers epoch 0 ending
    // at 2; the old leader truncates to 2 (not to 0: it keeps the common prefix).
    use crate::replication::truncation::{truncation_offset, EpochEndOffset};
    let (e, o) = new.end_offset_for_epoch(old.latest_epoch());
    assert_eq!((e, o), (0, 2));
    let t = truncation_offset(
        EpochEndOffset::new(e, o),
        |epoch| {
            let (e, o) = old.own_end_offset_for_epoch(epoch);
            EpochEndOffset::new(e, o)
        },
        old.log_end_offset(),
        0,
    );
    assert!(t.completed);
    assert_eq!(t.offset, 2);
    old.become_follower(2).unwrap();
    old.truncate_to(t.offset, limits, 2_000).await.unwrap();
    assert_eq!(old.log_end_offset(), 2);
    assert_eq!(old.latest_epoch(), 0, "epoch 1 is gone with its records");
    old.append_as_follower(fetch(&new, 2).await, 2_000)
        .await
        .unwrap();
    assert_eq!(segment_bytes(ld.path()), segment_bytes(fd.path()));
    assert_eq!(old.latest_epoch(), 2);
}

#[test]
fn truncate_from_end_keeps_epochs_below_the_log_end() {
    let mut cache = LeaderEpochCache::default();
    cache.assign(0, 0);
    cache.assign(2, 5);
    cache.assign(4, 9);
    assert_eq!(truncate_from_end(&cache, 10), None);
    let cut = truncate_from_end(&cache, 9).unwrap();
    assert_eq!(cut.latest_epoch(), Some(2));
    let cut = truncate_from_end(&cache, 5).unwrap();
    assert_eq!(cut.latest_epoch(), Some(0));
}

/// A follower whose log ends before the leader's log start restarts empty there.
#[compio::test]
async fn truncate_fully_and_start_at_the_leaders_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
    let p = open(dir.path()).await;
    p.become_leader(0).await.unwrap();
    produce(&p, &["a", "b", "c"]).await;
    p.truncate_fully_and_start_at(40, limits).await.unwrap();
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (40, 40));
    assert_eq!(p.latest_epoch(), -1);
    let reopened = open(dir.path()).await;
    assert_eq!(reopened.log_end_offset(), 40);
}
