//! Leader failover in one process, every piece of replication composed as the brokers will
//! compose them: fetch sessions (`replication::fetcher`) drive follower fetches against the
//! `ReplicatedPartition` leader and appends/truncations on the followers; the controller's
//! election (`cluster::election`) picks the new leader from the ISR; the old leader, restarted
//! from its directory, truncates its divergent (never acknowledged with acks=all) tail through
//! the Fetch diverging epoch and ends byte-identical to the new leader. Every acks=all record
//! survives, in order, exactly once.

use std::rc::Rc;

use super::*;
use crate::cluster::election::{partition_change, Election};
use crate::cluster::records::PartitionChangeRecord;
use crate::cluster::PartitionRegistration;
use crate::partition::proxy::AppendOrigin;
use crate::replication::fetcher::{FetchAction, FetcherConfig, FetcherSession, PartitionAnswer};
use crate::replication::truncation::truncation_offset;

pub(super) async fn open(dir: &std::path::Path) -> Rc<Partition> {
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

pub(super) fn request(value: &str, acks: i16) -> AppendRequest {
    AppendRequest {
        verification_guard: None,
        records: storage::BatchBuilder::new(1_000)
            .record(Some(b"k"), Some(value.as_bytes()), &[])
            .build()
            .freeze(),
        origin: AppendOrigin::Client,
        acks,
        flush_on_acks_all: false,
        now_ms: 0,
        timeout_ms: None,
    }
}

/// A follower broker: its partition and its fetch session to the current leader.
pub(super) struct Follower {
    pub(super) id: i32,
    pub(super) partition: Rc<Partition>,
    session: FetcherSession,
}

impl Follower {
    pub(super) fn new(id: i32, partition: Rc<Partition>, leader: i32, leader_epoch: i32) -> Self {
        let mut session = FetcherSession::new(leader, FetcherConfig::default());
        session.add_partition(
            "t",
            0,
            partition.log_end_offset(),
            leader_epoch,
            partition.latest_epoch(),
        );
        Self {
            id,
            partition,
            session,
        }
    }

    /// One fetch from `leader` and what its answer says to do (the fetcher task's loop body).
    pub(super) async fn fetch(&mut self, leader: &ReplicatedPartition, now_ms: i64) {
        self.reconcile(leader, now_ms).await;
        let Some(plan) = self.session.fetch_plan(now_ms) else {
            return;
        };
        for p in plan.partitions {
            let fetched = leader
                .follower_fetch(
                    self.id,
                    p.fetch_offset,
                    p.last_fetched_epoch,
                    p.current_leader_epoch,
                    p.partition_max_bytes as u32,
                    now_ms,
                )
                .await;
            let (answer, slice) = match fetched {
                Ok(ok) => (
                    PartitionAnswer {
                        error_code: 0,
                        high_watermark: ok.read.high_watermark,
                        diverging_epoch: ok.diverging_epoch,
                        has_records: ok.read.slice.is_some(),
                    },
                    ok.read.slice,
                ),
                Err(e) => (
                    PartitionAnswer {
                        error_code: crate::handlers::error::partition_error_code(&e),
                        high_watermark: -1,
                        diverging_epoch: None,
                        has_records: false,
                    },
                    None,
                ),
            };
            let f = &self.partition;
            match self
                .session
                .on_response("t", 0, p.fetch_offset, &answer, now_ms)
            {
                FetchAction::Append { .. } => {
                    let (end, epoch) = (f.log_end_offset(), f.latest_epoch());
                    if !self
                        .session
                        .log_still_ends_at("t", 0, p.fetch_offset, end, epoch)
                    {
                        continue;
                    }
                    let bytes = slice.unwrap().read_bytes().await.unwrap();
                    let appended = f.append_as_follower(bytes, now_ms).await.unwrap();
                    self.session
                        .on_appended("t", 0, appended.last_offset + 1, f.latest_epoch());
                }
                FetchAction::Truncate(diverging) => {
                    let own = |epoch| {
                        let (e, o) = f.own_end_offset_for_epoch(epoch);
                        EpochEndOffset::new(e, o)
                    };
                    let t = truncation_offset(diverging, own, f.log_end_offset(), p.fetch_offset);
                    let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
                    f.truncate_to(t.offset, limits, now_ms).await.unwrap();
                    self.session.on_truncated(
                        "t",
                        0,
                        f.log_end_offset(),
                        f.latest_epoch(),
                        t.completed,
                    );
                }
                FetchAction::UpToDate { .. } => {}
                other => panic!("unexpected fetch action {other:?}"),
            }
        }
    }

    /// The fetcher's OffsetForLeaderEpoch step for a partition reconciling its log.
    async fn reconcile(&mut self, leader: &ReplicatedPartition, now_ms: i64) {
        if self.session.truncating().is_empty() {
            return;
        }
        let f = &self.partition;
        let (e, o) = leader.end_offset_for_epoch(f.latest_epoch());
        let own = |epoch| {
            let (e, o) = f.own_end_offset_for_epoch(epoch);
            EpochEndOffset::new(e, o)
        };
        let fetch_offset = self.session.state("t", 0).unwrap().fetch_offset;
        let t = truncation_offset(
            EpochEndOffset::new(e, o),
            own,
            f.log_end_offset(),
            fetch_offset,
        );
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        f.truncate_to(t.offset, limits, now_ms).await.unwrap();
        self.session
            .on_truncated("t", 0, f.log_end_offset(), f.latest_epoch(), t.completed);
    }
}

pub(super) fn segment_bytes(dir: &std::path::Path) -> Vec<u8> {
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

/// Every record value readable below the leader's high watermark, in offset order.
pub(super) async fn values(leader: &ReplicatedPartition) -> Vec<String> {
    let read = leader.read(0, 16 << 20, true, -1, false).await.unwrap();
    let bytes = read.slice.unwrap().read_bytes().await.unwrap();
    let mut out = Vec::new();
    for batch in storage::split_batches(&bytes) {
        for record in storage::batch::records(batch.unwrap()).unwrap() {
            out.push(String::from_utf8(record.unwrap().value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

/// Produces `value` with acks=all and replicates until it is acknowledged.
async fn produce_all(
    leader: &Rc<ReplicatedPartition>,
    followers: &mut [Follower],
    value: &str,
    now_ms: i64,
) {
    let produce = compio::runtime::spawn(leader.clone().append(request(value, -1)));
    // Bounded: fetch rounds until acknowledged (the append lands on the runtime's schedule).
    for _ in 0..5_000 {
        compio::time::sleep(Duration::from_millis(1)).await;
        for f in followers.iter_mut() {
            f.fetch(leader, now_ms).await;
        }
        if produce.is_finished() {
            break;
        }
    }
    produce.await.unwrap().unwrap();
}

#[compio::test]
async fn leader_failover_loses_no_acknowledged_record() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let config = |id| ReplicationConfig {
        local_broker_id: id,
        replica_lag_time_max_ms: 10_000,
        min_insync_replicas: 2,
        produce_timeout_ms: 10_000,
        purgatory_waiters_max: 16,
        delete_records_waiters_max: 16,
    };
    let mut registration = PartitionRegistration {
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        leader: 1,
        leader_epoch: 1,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let leader_registration = |r: &PartitionRegistration| LeaderRegistration {
        replicas: r.replicas.clone(),
        isr: r.isr.clone(),
        leader_epoch: r.leader_epoch,
        partition_epoch: r.partition_epoch,
    };
    // Epoch 1: broker 1 leads, 2 and 3 follow.
    let a = open(dirs[0].path()).await;
    a.become_leader(1).await.unwrap();
    let leader_a =
        ReplicatedPartition::new(a, &leader_registration(&registration), 0, config(1), 0);
    let mut followers = Vec::new();
    for (id, dir) in [(2, &dirs[1]), (3, &dirs[2])] {
        let p = open(dir.path()).await;
        p.become_follower(1).unwrap();
        followers.push(Follower::new(id, p, 1, 1));
    }
    let mut acked = Vec::new();
    for i in 0..5 {
        let v = format!("all-{i}");
        produce_all(&leader_a, &mut followers, &v, 10).await;
        acked.push(v);
    }
    // Broker 1 then writes with acks=1 and nobody fetches it: never acknowledged to an
    // acks=all producer, allowed to be lost.
    leader_a
        .clone()
        .append(request("acks1-lost", 1))
        .await
        .unwrap();
    leader_a
        .clone()
        .append(request("acks1-lost-2", 1))
        .await
        .unwrap();
    let a_end = leader_a.log_end_offset();
    assert_eq!(a_end, 7);
    // kill -9 broker 1: the controller fences it and elects from the ISR.
    let learnt_hw = followers[0].partition.log_end_offset();
    drop(leader_a);
    let change = partition_change(
        crate::cluster::topics::TopicId(1),
        0,
        &registration,
        vec![2, 3],
        Election::Online,
        |r| r != 1,
    )
    .unwrap();
    assert_eq!(change.leader, 2, "the first ISR member in replica order");
    registration = merged(&registration, &change);
    assert_eq!(
        (registration.leader_epoch, registration.isr.clone()),
        (2, vec![2, 3])
    );
    // Epoch 2: broker 2 leads, 3 follows it; broker 1 is down.
    let b = followers.remove(0).partition;
    b.become_leader(2).await.unwrap();
    let leader_b = ReplicatedPartition::new(
        b,
        &leader_registration(&registration),
        learnt_hw,
        config(2),
        20,
    );
    let c = followers.remove(0).partition;
    c.become_follower(2).unwrap();
    let mut followers = vec![Follower::new(3, c, 2, 2)];
    for i in 5..8 {
        let v = format!("all-{i}");
        produce_all(&leader_b, &mut followers, &v, 30).await;
        acked.push(v);
    }
    // Broker 1 restarts from its directory and follows broker 2: the Fetch diverging epoch
    // truncates its two acks=1 records, then it copies epoch 2.
    let a = open(dirs[0].path()).await;
    assert_eq!(
        a.log_end_offset(),
        a_end,
        "its divergent tail survived the crash"
    );
    a.become_follower(2).unwrap();
    let mut returning = Follower::new(1, a, 2, 2);
    for _ in 0..4 {
        returning.fetch(&leader_b, 40).await;
        followers[0].fetch(&leader_b, 40).await;
    }
    assert_eq!(
        returning.partition.log_end_offset(),
        leader_b.log_end_offset()
    );
    assert_eq!(segment_bytes(dirs[0].path()), segment_bytes(dirs[1].path()));
    assert_eq!(segment_bytes(dirs[2].path()), segment_bytes(dirs[1].path()));
    // Caught up, broker 1 is proposed back into the ISR.
    let proposals = leader_b.take_isr_proposals();
    assert!(
        proposals.iter().any(|p| p.new_isr.contains(&1)),
        "{proposals:?}"
    );
    // Every acks=all record, exactly once and in order; the acks=1 tail is gone.
    assert_eq!(values(&leader_b).await, acked);
}

pub(super) fn merged(
    current: &PartitionRegistration,
    change: &PartitionChangeRecord,
) -> PartitionRegistration {
    let mut image = crate::cluster::MetadataImage::default();
    let topic_id = change.topic_id;
    use crate::cluster::records::{MetadataRecord, PartitionRecord, TopicRecord};
    image
        .apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }))
        .unwrap();
    image
        .apply(&MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id,
            replicas: current.replicas.clone(),
            isr: current.isr.clone(),
            leader: current.leader,
            leader_epoch: current.leader_epoch,
            partition_epoch: current.partition_epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }))
        .unwrap();
    image
        .apply(&MetadataRecord::PartitionChange(change.clone()))
        .unwrap();
    image.partition("t", 0).unwrap().clone()
}

/// The healed-partition divergence found by `replication_faults_split`: broker 1 leads epoch
/// 1; broker 2 is elected in epoch 2 with the same log end (3) and writes a different batch
/// there. Broker 1 becomes a follower and joins its fetcher at its log end (3, epoch 1: no
/// divergence for the leader to see), and only then a leader append that was in flight when
/// it lost leadership lands at offset 3. The fetcher must not append the new leader's batch
/// at 3 over a log ending at 4 (refused forever) but reconcile by leader epoch: truncate the
/// late record and end byte-identical to broker 2, every acks=all record kept.
#[compio::test]
async fn a_leader_append_landing_after_becoming_follower_is_truncated() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let config = |id| ReplicationConfig {
        local_broker_id: id,
        replica_lag_time_max_ms: 10_000,
        min_insync_replicas: 1,
        produce_timeout_ms: 10_000,
        purgatory_waiters_max: 16,
        delete_records_waiters_max: 16,
    };
    let registration = |leader_epoch, isr: Vec<i32>| LeaderRegistration {
        replicas: vec![1, 2],
        isr,
        leader_epoch,
        partition_epoch: leader_epoch,
    };
    let a = open(dirs[0].path()).await;
    a.become_leader(1).await.unwrap();
    let leader_a =
        ReplicatedPartition::new(a.clone(), &registration(1, vec![1, 2]), 0, config(1), 0);
    let b = open(dirs[1].path()).await;
    b.become_follower(1).unwrap();
    let mut followers = vec![Follower::new(2, b.clone(), 1, 1)];
    let mut acked = Vec::new();
    for i in 0..3 {
        let v = format!("all-{i}");
        produce_all(&leader_a, &mut followers, &v, 10).await;
        acked.push(v);
    }
    // Broker 1 is cut off; broker 2 leads epoch 2 from the same log end and writes there.
    drop(followers);
    // Until it leads with its followers, the former follower takes no append (it would carry
    // epoch 1 and be acknowledged by one replica), even once it took epoch 2.
    let refused = |p: &Rc<Partition>| {
        let handle = super::super::handle::PartitionHandle::Local(p.clone());
        handle.append_request(request("too-early", -1))
    };
    assert!(matches!(
        refused(&b).await,
        Err(PartitionError::NotLeaderOrFollower)
    ));
    b.become_leader(2).await.unwrap();
    assert!(matches!(
        refused(&b).await,
        Err(PartitionError::NotLeaderOrFollower)
    ));
    let leader_b = ReplicatedPartition::new(b.clone(), &registration(2, vec![2]), 3, config(2), 20);
    for i in 3..6 {
        let v = format!("all-{i}");
        produce_all(&leader_b, &mut [], &v, 30).await;
        acked.push(v);
    }
    // Healed: broker 1 resigns, becomes a follower and joins the fetcher at its log end...
    leader_a.resign();
    a.become_follower(2).unwrap();
    let mut returning = Follower::new(1, a.clone(), 2, 2);
    assert_eq!(returning.session.state("t", 0).unwrap().fetch_offset, 3);
    // ...and then the leader append in flight since before lands at 3.
    let late = a.clone().append(request("late-unacknowledged", 1)).await;
    assert_eq!(late.unwrap().ok.base_offset, 3);
    assert_eq!(a.log_end_offset(), 4);
    for _ in 0..6 {
        returning.fetch(&leader_b, 40).await;
    }
    assert_eq!(a.log_end_offset(), leader_b.log_end_offset());
    assert_eq!(segment_bytes(dirs[0].path()), segment_bytes(dirs[1].path()));
    assert_eq!(values(&leader_b).await, acked);
    assert_eq!(
        a.latest_epoch(),
        2,
        "the epoch cache follows the copied log"
    );
}
