//! Three replicas in one process: a `ReplicatedPartition` leader on broker 1 and two
//! follower `Partition`s (brokers 2, 3) that replicate by calling `follower_fetch` and
//! `append_as_follower`, as the fetcher does over the network.

use std::rc::Rc;

use super::*;
use crate::partition::proxy::AppendOrigin;
use crate::replication::isr::IsrState;

const LAG_MS: i64 = 1_000;

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

struct Cluster {
    _dirs: Vec<tempfile::TempDir>,
    leader: Rc<ReplicatedPartition>,
    followers: Vec<(i32, Rc<Partition>)>,
}

async fn cluster(min_isr: usize, produce_timeout_ms: i64) -> Cluster {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let local = open(dirs[0].path()).await;
    local.become_leader(1).await.unwrap();
    let registration = LeaderRegistration {
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        leader_epoch: 1,
        partition_epoch: 0,
    };
    let config = ReplicationConfig {
        local_broker_id: 1,
        replica_lag_time_max_ms: LAG_MS,
        min_insync_replicas: min_isr,
        produce_timeout_ms,
        purgatory_waiters_max: 16,
        delete_records_waiters_max: 16,
    };
    let leader = ReplicatedPartition::new(local, &registration, 0, config, 0);
    let mut followers = Vec::new();
    for (id, dir) in [(2, &dirs[1]), (3, &dirs[2])] {
        let f = open(dir.path()).await;
        f.become_follower(1).unwrap();
        followers.push((id, f));
    }
    Cluster {
        _dirs: dirs,
        leader,
        followers,
    }
}

impl Cluster {
    /// One fetch round of follower `id` at time `now_ms`; returns the high watermark learnt.
    async fn replicate(&self, id: i32, now_ms: i64) -> i64 {
        let (_, f) = self.followers.iter().find(|(i, _)| *i == id).unwrap();
        let answer = self
            .leader
            .follower_fetch(id, f.log_end_offset(), f.latest_epoch(), 1, 1 << 20, now_ms)
            .await
            .unwrap();
        assert_eq!(answer.diverging_epoch, None);
        if let Some(slice) = &answer.read.slice {
            let bytes = slice.read_bytes().await.unwrap();
            f.append_as_follower(bytes, now_ms).await.unwrap();
        }
        answer.read.high_watermark.min(f.log_end_offset())
    }

    /// Two fetch rounds: the first brings the records, the second tells the leader the
    /// follower has them (the leader learns a follower's log end from its next fetch offset).
    async fn catch_up(&self, id: i32, now_ms: i64) -> i64 {
        self.replicate(id, now_ms).await;
        self.replicate(id, now_ms).await
    }

    fn dir(&self, i: usize) -> &std::path::Path {
        self._dirs[i].path()
    }
}

/// Waits (bounded) until the leader's log reaches `end`: a spawned append has landed.
async fn landed(leader: &ReplicatedPartition, end: i64) {
    for _ in 0..5_000 {
        if leader.log_end_offset() >= end {
            return;
        }
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "the append did not land: log end {}",
        leader.log_end_offset()
    );
}

fn request(values: &[&str], acks: i16) -> AppendRequest {
    let mut builder = storage::BatchBuilder::new(1_000);
    for v in values {
        builder = builder.record(Some(b"k"), Some(v.as_bytes()), &[]);
    }
    AppendRequest {
        verification_guard: None,
        records: builder.build().freeze(),
        origin: AppendOrigin::Client,
        acks,
        flush_on_acks_all: false,
        now_ms: 0,
        timeout_ms: None,
    }
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

/// acks=all is answered only once both followers have the batch; consumers see nothing past
/// the high watermark meanwhile; afterwards the three replicas are byte-identical.
#[compio::test]
async fn acks_all_waits_for_the_isr_and_replicas_are_identical() {
    let c = cluster(2, 10_000).await;
    let produce = compio::runtime::spawn(c.leader.clone().append(request(&["a", "b"], -1)));
    // Let the append run: it is written but not acknowledged, not readable.
    landed(&c.leader, 2).await;
    assert_eq!(c.leader.log_end_offset(), 2);
    assert_eq!(c.leader.high_watermark(), 0);
    assert!(c
        .leader
        .read(0, 1 << 20, true, -1, false)
        .await
        .unwrap()
        .slice
        .is_none());
    assert!(!produce.is_finished());
    c.replicate(2, 10).await;
    compio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        c.leader.high_watermark(),
        0,
        "the leader learns it on the next fetch"
    );
    c.replicate(2, 10).await;
    compio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        !produce.is_finished(),
        "follower 3 is in the ISR and lacks it"
    );
    assert_eq!(c.leader.high_watermark(), 0);
    c.catch_up(3, 10).await;
    let answered = produce.await.unwrap().unwrap();
    assert_eq!(answered.ok.base_offset, 0);
    assert_eq!(c.leader.high_watermark(), 2);
    assert!(c
        .leader
        .read(0, 1 << 20, true, -1, false)
        .await
        .unwrap()
        .slice
        .is_some());
    // The followers learn the high watermark on their next fetch.
    assert_eq!(c.replicate(2, 20).await, 2);
    // acks=1 answers at once.
    let one = c.leader.clone().append(request(&["c"], 1)).await.unwrap();
    assert_eq!(one.ok.base_offset, 2);
    c.catch_up(2, 30).await;
    c.catch_up(3, 30).await;
    let leader_bytes = segment_bytes(c.dir(0));
    assert!(!leader_bytes.is_empty());
    assert_eq!(leader_bytes, segment_bytes(c.dir(1)));
    assert_eq!(leader_bytes, segment_bytes(c.dir(2)));
}

/// A stopped follower leaves the ISR after replica.lag.time.max.ms (once the controller
/// commits it), so acks=all continues with two; with the second follower stopped too,
/// acks=all answers NOT_ENOUGH_REPLICAS and writes nothing; both back, they rejoin.
#[compio::test]
async fn stopped_followers_shrink_the_isr_then_rejoin() {
    let c = cluster(2, 10_000).await;
    c.replicate(2, 0).await;
    c.replicate(3, 0).await;
    let produce = compio::runtime::spawn(c.leader.clone().append(request(&["a"], -1)));
    landed(&c.leader, 1).await;
    c.catch_up(2, 500).await;
    // Follower 3 has stopped.
    c.leader.maybe_shrink_isr(LAG_MS);
    assert!(
        c.leader.take_isr_proposals().is_empty(),
        "not lagging long enough"
    );
    c.leader.maybe_shrink_isr(LAG_MS + 1);
    let proposals = c.leader.take_isr_proposals();
    assert_eq!(proposals.len(), 1);
    assert_eq!(proposals[0].new_isr, vec![1, 2]);
    assert!(!produce.is_finished(), "the shrink is not committed yet");
    c.leader
        .on_isr_committed(1, 1, proposals[0].new_isr.clone());
    assert!(
        produce.await.unwrap().is_ok(),
        "acknowledged by leader and follower 2"
    );
    assert_eq!(c.leader.high_watermark(), 1);
    // Follower 2 stops too and the leader moves on: after the lag, the ISR is the leader.
    c.leader.clone().append(request(&["x"], 1)).await.unwrap();
    c.leader.maybe_shrink_isr(500 + LAG_MS + 1);
    let p = c.leader.take_isr_proposals();
    assert_eq!(p[0].new_isr, vec![1]);
    c.leader.on_isr_committed(1, 2, p[0].new_isr.clone());
    assert_eq!(c.leader.high_watermark(), 2, "the ISR is the leader alone");
    let refused = c.leader.clone().append(request(&["b"], -1)).await;
    assert_eq!(
        refused.err(),
        Some(PartitionError::NotEnoughReplicas { isr: 1, min_isr: 2 })
    );
    assert_eq!(c.leader.log_end_offset(), 2, "nothing written");
    // acks=1 still works; the high watermark is the leader's log end.
    c.leader.clone().append(request(&["c"], 1)).await.unwrap();
    assert_eq!(c.leader.high_watermark(), 3);
    // Both come back and catch up: each is proposed back, one at a time.
    c.catch_up(2, 5_000).await;
    let p = c.leader.take_isr_proposals();
    assert_eq!(p[0].new_isr, vec![1, 2]);
    c.leader.on_isr_committed(1, 3, p[0].new_isr.clone());
    c.catch_up(3, 5_000).await;
    let p = c.leader.take_isr_proposals();
    assert_eq!(p[0].new_isr, vec![1, 2, 3]);
    c.leader.on_isr_committed(1, 4, p[0].new_isr.clone());
    assert_eq!(
        c.leader.state().isr_state(),
        &IsrState::Committed { isr: vec![1, 2, 3] }
    );
    // acks=all works again once both have the batch.
    let produce = compio::runtime::spawn(c.leader.clone().append(request(&["d"], -1)));
    landed(&c.leader, 4).await;
    c.catch_up(2, 5_100).await;
    assert!(!produce.is_finished());
    c.catch_up(3, 5_100).await;
    assert_eq!(produce.await.unwrap().unwrap().ok.base_offset, 3);
    assert_eq!(c.leader.high_watermark(), 4);
}

/// An acks=all produce not replicated in time answers REQUEST_TIMED_OUT; one waiting when
/// leadership moves answers NOT_LEADER_OR_FOLLOWER; a resigned leader refuses appends and
/// follower fetches.
#[compio::test]
async fn timeouts_and_resignation() {
    let c = cluster(1, 50).await;
    let timed_out = c.leader.clone().append(request(&["a"], -1)).await;
    assert_eq!(timed_out.err(), Some(PartitionError::RequestTimedOut));
    // The Produce request's own timeout_ms bounds the wait (Kafka's DelayedProduce), not the
    // leader's default.
    let c = cluster(1, 60_000).await;
    let started = std::time::Instant::now();
    let own = AppendRequest {
        verification_guard: None,
        timeout_ms: Some(50),
        ..request(&["a"], -1)
    };
    let timed_out = c.leader.clone().append(own).await;
    assert_eq!(timed_out.err(), Some(PartitionError::RequestTimedOut));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let c = cluster(1, 10_000).await;
    let waiting = compio::runtime::spawn(c.leader.clone().append(request(&["a"], -1)));
    compio::time::sleep(Duration::from_millis(10)).await;
    c.leader.resign();
    assert_eq!(
        waiting.await.unwrap().err(),
        Some(PartitionError::Unavailable)
    );
    let refused = c.leader.clone().append(request(&["b"], 1)).await;
    assert_eq!(refused.err(), Some(PartitionError::Unavailable));
    let fetch = c.leader.follower_fetch(2, 0, -1, 1, 1 << 20, 0).await;
    assert!(matches!(fetch, Err(PartitionError::Unavailable)));
}

/// A follower whose last fetched epoch diverges from the leader's log gets the diverging
/// epoch and no records; a fetch from a broker that is not a replica is refused.
#[compio::test]
async fn diverging_follower_is_told_where_to_truncate() {
    let c = cluster(1, 10_000).await;
    c.leader
        .clone()
        .append(request(&["a", "b"], 1))
        .await
        .unwrap();
    // A follower claiming epoch 0 up to offset 5: the leader's epoch 0 ended at 0 (it leads
    // in epoch 1 from offset 0).
    let answer = c
        .leader
        .follower_fetch(2, 5, 0, 1, 1 << 20, 0)
        .await
        .unwrap();
    assert_eq!(answer.diverging_epoch, Some(EpochEndOffset::new(0, 0)));
    assert!(answer.read.slice.is_none());
    let stranger = c.leader.follower_fetch(9, 0, -1, 1, 1 << 20, 0).await;
    assert!(matches!(stranger, Err(PartitionError::Unavailable)));
}
