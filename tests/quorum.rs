//! The controller quorum (`sluice::cluster::quorum`): three members in one process on loopback
//! ports chosen at run time, each with its own metadata dir. Elections, commits, failover,
//! restart from snapshot + log, garbage on the controller port, unreachable peers.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::cluster::quorum::{
    MetadataApplier, MetadataEvent, MetadataRecord, Quorum, QuorumConfig, QuorumError,
    QuorumHandle, RecordError, RecordHistory, Voter,
};
use tempfile::TempDir;

/// How long a leader may take to appear (elections here take well under a second).
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long every member may take to apply what was committed.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);

fn block_on<F: Future>(f: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(f)
}

fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Binds a stopped member's port again; a stopped member must have released it.
fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("a stopped member still holds {addr}: {e}"),
        }
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn record(i: usize) -> MetadataRecord {
    MetadataRecord::ProducerIds(sluice::cluster::records::ProducerIdsRecord {
        broker_id: 1,
        broker_epoch: 1,
        next_producer_id: i as i64,
    })
}

/// A member's applier: what it applied, and how many records each snapshot restore brought.
#[derive(Default)]
struct Observed {
    history: RecordHistory,
    restored_record_counts: Vec<usize>,
}

impl MetadataApplier for Observed {
    fn apply(&mut self, offset: u64, record: &MetadataRecord) {
        self.history.apply(offset, record)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.history.snapshot()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        self.history.restore(bytes)?;
        self.restored_record_counts.push(self.history.records.len());
        Ok(())
    }
}

/// Three voters, any of them running or stopped.
struct Cluster {
    dirs: Vec<TempDir>,
    voters: Vec<Voter>,
    /// Listeners reserved for members not started yet.
    reserved: Vec<Option<TcpListener>>,
    members: Vec<Option<QuorumHandle>>,
    histories: Vec<Arc<Mutex<Observed>>>,
    snapshot_entries_between: u64,
}

impl Cluster {
    fn new(snapshot_entries_between: u64) -> Cluster {
        init_logging();
        let mut reserved = Vec::new();
        let mut voters = Vec::new();
        for node_id in 1..=3u64 {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            voters.push(Voter { node_id, addr });
            reserved.push(Some(listener));
        }
        Cluster {
            dirs: (0..3)
                .map(|_| tempfile::tempdir().expect("tempdir"))
                .collect(),
            voters,
            reserved,
            members: (0..3).map(|_| None).collect(),
            histories: (0..3).map(|_| Arc::default()).collect(),
            snapshot_entries_between,
        }
    }

    fn config(&self, i: usize) -> QuorumConfig {
        let dir: PathBuf = self.dirs[i].path().join("metadata");
        let mut config = QuorumConfig::new(self.voters[i].node_id, self.voters.clone(), dir);
        config.fetch_timeout_ms = 300;
        config.election_timeout_ms = 300;
        config.request_timeout_ms = 500;
        config.retry_backoff_ms = 20;
        config.retry_backoff_max_ms = 200;
        config.snapshot_entries_between = self.snapshot_entries_between;
        config.segment_bytes = 4096;
        config
    }

    /// Starts member `i` with a fresh applier (state comes from its snapshot and log).
    fn start(&mut self, i: usize) {
        let listener = match self.reserved[i].take() {
            Some(listener) => listener,
            None => rebind(self.voters[i].addr),
        };
        let history = Arc::new(Mutex::new(Observed::default()));
        self.histories[i] = history.clone();
        let handle = Quorum::start_with_listener(self.config(i), Box::new(history), listener)
            .expect("start member");
        self.members[i] = Some(handle);
    }

    fn start_all(&mut self) {
        for i in 0..3 {
            self.start(i);
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(handle) = self.members[i].take() {
            handle.shutdown();
        }
    }

    fn running(&self) -> Vec<usize> {
        (0..3).filter(|i| self.members[*i].is_some()).collect()
    }

    fn member(&self, i: usize) -> &QuorumHandle {
        self.members[i].as_ref().expect("member running")
    }

    /// Waits until every running member names the same running leader; returns its index.
    fn wait_for_leader(&self) -> usize {
        let mut found = None;
        wait_until(LEADER_TIMEOUT, "an agreed leader", || {
            let running = self.running();
            let leaders: Vec<_> = running.iter().map(|i| self.member(*i).leader()).collect();
            let Some(Some(leader)) = leaders.first().copied() else {
                return false;
            };
            let index = (leader - 1) as usize;
            let agreed = leaders.iter().all(|l| *l == Some(leader)) && running.contains(&index);
            if agreed {
                found = Some(index);
            }
            agreed
        });
        found.expect("leader")
    }

    /// Proposes through the current leader, following NOT_CONTROLLER answers.
    fn propose(&self, records: Vec<MetadataRecord>) -> u64 {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let leader = self.wait_for_leader();
            match block_on(self.member(leader).propose(records.clone())) {
                Ok(offset) => return offset,
                Err(QuorumError::NotController { .. }) if Instant::now() < deadline => continue,
                Err(e) => panic!("proposal failed: {e}"),
            }
        }
    }

    fn history(&self, i: usize) -> Vec<(u64, MetadataRecord)> {
        self.histories[i]
            .lock()
            .expect("history")
            .history
            .records
            .clone()
    }

    /// Waits until every running member applied `count` records; checks they agree.
    fn wait_converged(&self, count: usize) -> Vec<(u64, MetadataRecord)> {
        wait_until(CONVERGE_TIMEOUT, "every member to apply everything", || {
            self.running()
                .iter()
                .all(|i| self.history(*i).len() >= count)
        });
        let running = self.running();
        let first = self.history(running[0]);
        assert_eq!(first.len(), count, "no record applied twice or invented");
        for i in &running[1..] {
            assert_eq!(
                self.history(*i),
                first,
                "member {i} applied a different sequence"
            );
        }
        first
    }
}

fn records_of(history: &[(u64, MetadataRecord)]) -> Vec<MetadataRecord> {
    history.iter().map(|(_, r)| r.clone()).collect()
}

#[test]
fn a_leader_is_elected_and_every_member_applies_the_same_records_in_order() {
    let mut cluster = Cluster::new(10_000);
    cluster.start_all();
    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % 3;
    let events = cluster.member(follower).subscribe();

    let mut offsets = Vec::new();
    for i in 0..20 {
        // Two records per batch: both share the batch's offset.
        offsets.push(cluster.propose(vec![record(2 * i), record(2 * i + 1)]));
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets increase: {offsets:?}"
    );

    let history = cluster.wait_converged(40);
    let expected: Vec<_> = (0..40).map(record).collect();
    assert_eq!(records_of(&history), expected);
    for (i, (offset, _)) in history.iter().enumerate() {
        assert_eq!(
            *offset,
            offsets[i / 2],
            "record {i} applied at its batch's offset"
        );
    }

    // A follower refuses proposals and names the leader (Kafka's NOT_CONTROLLER).
    match block_on(cluster.member(follower).propose(vec![record(99)])) {
        Err(QuorumError::NotController { leader_id }) => {
            assert_eq!(leader_id, Some(leader as u64 + 1))
        }
        other => panic!("a follower accepted a proposal: {other:?}"),
    }

    // The follower's subscriber saw every record, in order.
    let mut seen = Vec::new();
    while seen.len() < 40 {
        match events
            .recv_timeout(CONVERGE_TIMEOUT)
            .expect("subscribed event")
        {
            MetadataEvent::Record { offset, record } => seen.push((offset, record)),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, history);
}

#[test]
fn killing_the_leader_elects_another_and_loses_nothing_committed() {
    let mut cluster = Cluster::new(10_000);
    cluster.start_all();
    let old_leader = cluster.wait_for_leader();
    for i in 0..10 {
        cluster.propose(vec![record(i)]);
    }
    cluster.stop(old_leader);
    let stopped_at = Instant::now();
    let new_leader = cluster.wait_for_leader();
    let failover = stopped_at.elapsed();
    eprintln!("failover took {failover:?}");
    assert_ne!(new_leader, old_leader);
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    for i in 10..20 {
        cluster.propose(vec![record(i)]);
    }
    let history = cluster.wait_converged(20);
    assert_eq!(
        records_of(&history),
        (0..20).map(record).collect::<Vec<_>>()
    );

    // The old leader comes back as a follower and catches up.
    cluster.start(old_leader);
    cluster.wait_for_leader();
    let history = cluster.wait_converged(20);
    assert_eq!(
        records_of(&history),
        (0..20).map(record).collect::<Vec<_>>()
    );
}

#[test]
fn a_restarted_member_recovers_from_snapshot_and_log_and_converges() {
    // A snapshot every 10 entries: 35 proposals leave a snapshot and a purged log behind.
    let mut cluster = Cluster::new(10);
    cluster.start_all();
    let leader = cluster.wait_for_leader();
    for i in 0..35 {
        cluster.propose(vec![record(i)]);
    }
    cluster.wait_converged(35);
    let follower = (leader + 1) % 3;
    cluster.stop(follower);
    let dir = cluster.dirs[follower].path().join("metadata");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("metadata dir")
        .map(|d| {
            d.expect("dirent")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("snapshot-")),
        "a snapshot was written: {names:?}"
    );
    assert!(
        names.iter().any(|n| n == "purged"),
        "the log was purged: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n == &format!("{:020}.log", 1)),
        "the first segment was deleted: {names:?}"
    );

    // More commits while it is down (the leader snapshots and purges past the follower's log
    // end), then it restarts with an empty applier: it restores its own snapshot, then needs
    // the leader's (InstallSnapshot) to catch up.
    for i in 35..60 {
        cluster.propose(vec![record(i)]);
    }
    cluster.start(follower);
    let history = cluster.wait_converged(60);
    assert_eq!(
        records_of(&history),
        (0..60).map(record).collect::<Vec<_>>()
    );
    let restores = cluster.histories[follower]
        .lock()
        .expect("observed")
        .restored_record_counts
        .clone();
    assert!(
        restores.first().is_some_and(|n| (20..=35).contains(n)),
        "started from its own snapshot: {restores:?}"
    );
    assert!(
        restores.iter().any(|n| *n > 35),
        "caught up through the leader's snapshot: {restores:?}"
    );

    // The whole cluster restarts: every member rebuilds the same state.
    for i in 0..3 {
        cluster.stop(i);
    }
    cluster.start_all();
    cluster.wait_for_leader();
    cluster.propose(vec![record(60)]);
    let history = cluster.wait_converged(61);
    assert_eq!(
        records_of(&history),
        (0..61).map(record).collect::<Vec<_>>()
    );
}

/// Sends `bytes` and returns whether the member closed the connection within a bound.
fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // The member may close before reading all of it: a write error is fine.
    let _ = stream.write_all(bytes);
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => return false,
        }
    }
}

#[test]
fn garbage_on_the_controller_port_closes_the_connection_and_never_crashes() {
    let mut cluster = Cluster::new(10_000);
    cluster.start_all();
    let leader = cluster.wait_for_leader();
    cluster.propose(vec![record(0)]);
    let victim = (leader + 1) % 3;
    let addr = cluster.voters[victim].addr;

    let mut frames: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // A length over controller.quorum.request.max.bytes.
        vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 1],
        // A well-framed request of an unknown frame version.
        vec![0, 0, 0, 3, 9, 1, 0],
        // Version 0, unknown request kind.
        vec![0, 0, 0, 3, 0, 200, 0],
        // Version 0, AppendEntries, a payload that is not one.
        vec![0, 0, 0, 6, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF],
        // A frame shorter than its header.
        vec![0, 0, 0, 1, 0],
    ];
    // Pseudo-random garbage, deterministic.
    let mut x: u32 = 0x9E37_79B9;
    for _ in 0..20 {
        let frame: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        frames.push(frame);
    }
    for (n, frame) in frames.iter().enumerate() {
        assert!(
            closed_after(addr, frame),
            "garbage {n} did not close the connection"
        );
    }
    // A length prefix alone, then silence and a close from our side: nothing to crash on.
    drop(TcpStream::connect(addr).and_then(|mut s| s.write_all(&[0, 0, 0x10, 0])));

    // The member still serves raft: new commits reach it.
    for i in 1..5 {
        cluster.propose(vec![record(i)]);
    }
    let history = cluster.wait_converged(5);
    assert_eq!(records_of(&history), (0..5).map(record).collect::<Vec<_>>());
}

#[test]
fn a_member_whose_peers_are_unreachable_keeps_retrying_then_joins() {
    let mut cluster = Cluster::new(10_000);
    // The peers' ports are bound but nobody accepts: every RPC to them times out.
    cluster.start(0);
    std::thread::sleep(Duration::from_millis(1500)); // several election timeouts, on purpose
    assert_eq!(
        cluster.member(0).leader(),
        None,
        "no leader without a majority"
    );
    match block_on(cluster.member(0).propose(vec![record(0)])) {
        Err(QuorumError::NotController { leader_id: None }) => {}
        other => panic!("a member without a quorum accepted a proposal: {other:?}"),
    }
    // The peers come up: the lone member is still alive, an election succeeds, and it applies
    // what commits.
    cluster.start(1);
    cluster.start(2);
    cluster.wait_for_leader();
    cluster.propose(vec![record(1)]);
    let history = cluster.wait_converged(1);
    assert_eq!(records_of(&history), vec![record(1)]);
}
