//! A randomized model of replication under leader failures, in one process: three replicas,
//! a leader serving acks=all and acks=1 produces, followers fetching through their fetch
//! sessions (some paused for a while), ISR shrinks and expansions committed by the
//! "controller", and the leader killed at random moments (its replica restarts from its
//! directory as a follower; a new leader is elected from the ISR). After every run: every
//! acks=all record acknowledged is readable exactly once and in order, and once everyone has
//! caught up, the three logs are byte-identical. Seeds are fixed, so a failure reproduces.

use std::rc::Rc;

use super::failover_tests::{merged, open, request, segment_bytes, values, Follower};
use super::*;
use crate::cluster::election::{partition_change, Election};
use crate::cluster::PartitionRegistration;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

const LAG_MS: i64 = 1_000;

struct World {
    dirs: Vec<tempfile::TempDir>,
    registration: PartitionRegistration,
    leader: Rc<ReplicatedPartition>,
    /// Followers by broker id (every broker but the leader).
    followers: Vec<Follower>,
    paused: Vec<i32>,
    now_ms: i64,
    min_isr: usize,
}

fn config(id: i32, min_isr: usize) -> ReplicationConfig {
    ReplicationConfig {
        local_broker_id: id,
        replica_lag_time_max_ms: LAG_MS,
        min_insync_replicas: min_isr,
        produce_timeout_ms: 200,
        purgatory_waiters_max: 64,
        delete_records_waiters_max: 16,
    }
}

fn leader_registration(r: &PartitionRegistration) -> LeaderRegistration {
    LeaderRegistration {
        replicas: r.replicas.clone(),
        isr: r.isr.clone(),
        leader_epoch: r.leader_epoch,
        partition_epoch: r.partition_epoch,
    }
}

impl World {
    async fn new(min_isr: usize) -> Self {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let registration = PartitionRegistration {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 1,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        let p = open(dirs[0].path()).await;
        p.become_leader(1).await.unwrap();
        let leader = ReplicatedPartition::new(
            p,
            &leader_registration(&registration),
            0,
            config(1, min_isr),
            0,
        );
        let mut followers = Vec::new();
        for id in [2, 3] {
            let f = open(dirs[(id - 1) as usize].path()).await;
            f.become_follower(1).unwrap();
            followers.push(Follower::new(id, f, 1, 1));
        }
        Self {
            dirs,
            registration,
            leader,
            followers,
            paused: Vec::new(),
            now_ms: 0,
            min_isr,
        }
    }

    /// One fetch by every follower not paused, then the controller commits ISR proposals.
    async fn fetch_round(&mut self) {
        for f in self.followers.iter_mut() {
            if !self.paused.contains(&f.id) {
                f.fetch(&self.leader, self.now_ms).await;
            }
        }
        self.commit_proposals();
    }

    fn commit_proposals(&mut self) {
        for proposal in self.leader.take_isr_proposals() {
            if proposal.partition_epoch != self.registration.partition_epoch {
                self.leader.on_isr_rejected();
                continue;
            }
            self.registration.isr = proposal.new_isr.clone();
            self.registration.partition_epoch += 1;
            self.leader.on_isr_committed(
                self.registration.leader_epoch,
                self.registration.partition_epoch,
                proposal.new_isr,
            );
        }
    }

    fn tick(&mut self, ms: i64) {
        self.now_ms += ms;
        self.leader.maybe_shrink_isr(self.now_ms);
        self.commit_proposals();
    }

    /// acks=all: true when acknowledged.
    async fn produce_all(&mut self, value: &str) -> bool {
        let before = self.leader.log_end_offset();
        let produce = compio::runtime::spawn(self.leader.clone().append(request(value, -1)));
        // Let the append land (or be refused) first, whatever the machine's load, so that the
        // fetch rounds below decide the outcome, not the scheduler.
        for _ in 0..2_000 {
            if self.leader.log_end_offset() > before || produce.is_finished() {
                break;
            }
            compio::time::sleep(Duration::from_millis(1)).await;
        }
        for _ in 0..3 {
            compio::time::sleep(Duration::from_millis(1)).await;
            self.fetch_round().await;
            if produce.is_finished() {
                break;
            }
        }
        if !produce.is_finished() {
            self.leader.resign_waiters_for_test();
        }
        produce.await.unwrap().is_ok()
    }

    /// kill -9 the leader, elect from the ISR, restart the old leader as a follower.
    async fn kill_leader(&mut self) -> bool {
        let old = self.registration.leader;
        let target: Vec<i32> = self
            .registration
            .isr
            .iter()
            .copied()
            .filter(|r| *r != old)
            .collect();
        let Some(change) = partition_change(
            crate::cluster::topics::TopicId(1),
            0,
            &self.registration,
            target,
            Election::Online,
            |r| r != old,
        ) else {
            return false;
        };
        if change.leader < 0 {
            return false; // the ISR is the leader alone: no clean failover (offline)
        }
        self.leader.resign();
        self.registration = merged(&self.registration, &change);
        let new = self.registration.leader;
        let epoch = self.registration.leader_epoch;
        let mut others = std::mem::take(&mut self.followers);
        let at = others.iter().position(|f| f.id == new).unwrap();
        let promoted = others.remove(at).partition;
        promoted.become_leader(epoch).await.unwrap();
        self.leader = ReplicatedPartition::new(
            promoted,
            &leader_registration(&self.registration),
            0,
            config(new, self.min_isr),
            self.now_ms,
        );
        for f in others {
            f.partition.become_follower(epoch).unwrap();
            self.followers
                .push(Follower::new(f.id, f.partition, new, epoch));
        }
        let restarted = open(self.dirs[(old - 1) as usize].path()).await;
        restarted.become_follower(epoch).unwrap();
        self.followers
            .push(Follower::new(old, restarted, new, epoch));
        self.paused.retain(|p| *p != new);
        true
    }
}

impl ReplicatedPartition {
    /// The model's stand-in for the request timeout: answer waiting produces as a resigned
    /// leader would (they were not acknowledged).
    fn resign_waiters_for_test(&self) {
        self.purgatory.borrow_mut().fail_all();
    }
}

async fn run(seed: u64, min_isr: usize) -> (usize, usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut w = World::new(min_isr).await;
    let mut acked: Vec<String> = Vec::new();
    let mut kills = 0;
    for step in 0..60 {
        match rng.below(10) {
            0..=3 => {
                let v = format!("all-{seed}-{step}");
                if w.produce_all(&v).await {
                    acked.push(v);
                }
            }
            4 => {
                let v = format!("one-{seed}-{step}");
                let _ = w.leader.clone().append(request(&v, 1)).await;
            }
            5 | 6 => w.fetch_round().await,
            7 => {
                let id = w.followers[rng.below(2) as usize].id;
                if w.paused.contains(&id) {
                    w.paused.retain(|p| *p != id);
                } else {
                    w.paused.push(id);
                }
            }
            8 => w.tick(LAG_MS / 2 + 1),
            _ => kills += usize::from(w.kill_leader().await),
        }
    }
    // Heal: everyone fetches until caught up and back in the ISR.
    w.paused.clear();
    for _ in 0..8 {
        w.fetch_round().await;
    }
    let end = w.leader.log_end_offset();
    for f in &w.followers {
        assert_eq!(
            f.partition.log_end_offset(),
            end,
            "seed {seed}: follower {} behind",
            f.id
        );
    }
    let leader_dir = (w.registration.leader - 1) as usize;
    for i in 0..3 {
        assert_eq!(
            segment_bytes(w.dirs[i].path()),
            segment_bytes(w.dirs[leader_dir].path()),
            "seed {seed}: replica {} differs from the leader",
            i + 1
        );
    }
    // Every acks=all record: present once, in acknowledgement order.
    let read = values(&w.leader).await;
    let positions: Vec<usize> = acked
        .iter()
        .map(|v| {
            let at: Vec<usize> = read
                .iter()
                .enumerate()
                .filter(|(_, r)| *r == v)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(
                at.len(),
                1,
                "seed {seed} ({kills} kills): {v} read {} times",
                at.len()
            );
            at[0]
        })
        .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "seed {seed}: acknowledged records out of order"
    );
    (kills, acked.len())
}

#[compio::test]
async fn acknowledged_records_survive_random_leader_failures() {
    let (mut kills, mut acked) = (0, 0);
    for seed in 1..=12 {
        let (k, a) = run(seed, 2).await;
        kills += k;
        acked += a;
    }
    for seed in 13..=18 {
        let (k, a) = run(seed, 1).await;
        kills += k;
        acked += a;
    }
    // The model must have exercised what it claims to: failovers and acknowledged writes.
    assert!(kills >= 20, "only {kills} leader failovers");
    assert!(acked >= 100, "only {acked} acks=all records acknowledged");
    eprintln!("{kills} failovers, {acked} acks=all records acknowledged");
}
