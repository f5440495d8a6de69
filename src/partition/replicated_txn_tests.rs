//! Transactions on a replicated leader: a marker is answered only once the ISR has it (Kafka
//! appends markers with acks=-1), and the last stable offset a leader answers never passes
//! its high watermark (read_committed reads up to min(LSO, high watermark)), whether a
//! transaction is open or not. A leader (broker 1) and one follower `Partition` (broker 2)
//! replicating by calling `follower_fetch` / `append_as_follower`, as the fetcher does.

use std::rc::Rc;

use super::*;
use crate::partition::api::MarkerItem;
use crate::partition::handle::PartitionHandle;
use crate::partition::proxy::AppendOrigin;

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

/// One fetch round of the follower.
async fn replicate(leader: &ReplicatedPartition, follower: &Partition) {
    let answer = leader
        .follower_fetch(
            2,
            follower.log_end_offset(),
            follower.latest_epoch(),
            1,
            1 << 20,
            10,
        )
        .await
        .unwrap();
    if let Some(slice) = &answer.read.slice {
        let bytes = slice.read_bytes().await.unwrap();
        follower.append_as_follower(bytes, 10).await.unwrap();
    }
}

fn append(producer: Option<i64>, values: &[&str]) -> AppendRequest {
    let mut builder = storage::BatchBuilder::new(1_000);
    if let Some(id) = producer {
        builder = builder.producer(id, 0, 0).transactional();
    }
    for v in values {
        builder = builder.record(Some(b"k"), Some(v.as_bytes()), &[]);
    }
    AppendRequest {
        verification_guard: None,
        records: builder.build().freeze(),
        origin: AppendOrigin::Client,
        acks: 1,
        flush_on_acks_all: false,
        now_ms: 0,
        timeout_ms: None,
    }
}

fn assert_lso_within_hw(leader: &ReplicatedPartition, lso: i64, hw: i64) {
    assert_eq!(
        (leader.last_stable_offset(), leader.high_watermark()),
        (lso, hw)
    );
    assert!(leader.last_stable_offset() <= leader.high_watermark());
}

#[compio::test]
async fn markers_wait_for_the_isr_and_the_lso_stays_within_the_high_watermark() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let local = open(dirs[0].path()).await;
    local.become_leader(1).await.unwrap();
    let registration = LeaderRegistration {
        replicas: vec![1, 2],
        isr: vec![1, 2],
        leader_epoch: 1,
        partition_epoch: 0,
    };
    let config = ReplicationConfig {
        local_broker_id: 1,
        replica_lag_time_max_ms: 60_000,
        min_insync_replicas: 1,
        produce_timeout_ms: 10_000,
        purgatory_waiters_max: 16,
        delete_records_waiters_max: 16,
    };
    let leader = ReplicatedPartition::new(local, &registration, 0, config, 0);
    let follower = open(dirs[1].path()).await;
    follower.become_follower(1).unwrap();

    // An open transaction (offsets 0-1) not replicated yet: nothing is stable or visible.
    leader
        .clone()
        .append(append(Some(7), &["a", "b"]))
        .await
        .unwrap();
    assert_lso_within_hw(&leader, 0, 0);
    replicate(&leader, &follower).await;
    replicate(&leader, &follower).await;
    assert_lso_within_hw(&leader, 0, 2);

    // The commit marker (offset 2): written, but answered only once the follower has it;
    // meanwhile the transaction is closed on the leader and its LSO is the high watermark.
    let handle = PartitionHandle::Replicated(leader.clone());
    let item = MarkerItem {
        tp: TopicPartition::new("t", 0),
        producer_id: 7,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit: true,
        transaction_version: 0,
    };
    let marker = compio::runtime::spawn(async move { handle.write_marker(item, 10, false).await });
    for _ in 0..5_000 {
        if leader.log_end_offset() == 3 {
            break;
        }
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(leader.log_end_offset(), 3, "the marker landed");
    compio::time::sleep(Duration::from_millis(20)).await;
    assert!(!marker.is_finished(), "answered before the ISR had it");
    assert_lso_within_hw(&leader, 2, 2);
    let read = leader.read(0, 1 << 20, true, -1, true).await.unwrap();
    assert_eq!(read.last_stable_offset, 2);
    replicate(&leader, &follower).await;
    replicate(&leader, &follower).await;
    marker.await.unwrap().unwrap();
    assert_lso_within_hw(&leader, 3, 3);

    // No transaction open: records past the high watermark are not stable either.
    leader.clone().append(append(None, &["c"])).await.unwrap();
    assert_eq!(leader.log_end_offset(), 4);
    assert_lso_within_hw(&leader, 3, 3);
    // A new transaction replicated, then more records: the LSO is its first offset.
    replicate(&leader, &follower).await;
    leader
        .clone()
        .append(append(Some(8), &["d"]))
        .await
        .unwrap();
    replicate(&leader, &follower).await;
    replicate(&leader, &follower).await;
    assert_lso_within_hw(&leader, 4, 5);
}
