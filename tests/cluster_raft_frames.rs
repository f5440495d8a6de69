//! Malformed and random raft frames on a controller listener never stop a node's quorum member
//! (B1 of session 6: one AppendEntries whose first entry did not follow `prev_log_id` panicked
//! openraft's core, and the node served on as a zombie that learnt no metadata). After several
//! hundred frames from a seeded generator, every node still runs, one controller is active,
//! CreateTopics works and every broker's Metadata shows the same topics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{topics_view, Cluster, ClusterOpts};
use common::wait_until;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::impls::Vote;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership};
use sluice::cluster::quorum::{QuorumTypes, RecordBatch};

const KIND_APPEND_ENTRIES: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_PRE_VOTE: u8 = 3;
const KIND_FULL_SNAPSHOT: u8 = 4;
/// The breaker's frame body (version, kind, postcard payload): an AppendEntries whose first
/// entry does not follow `prev_log_id`.
const BREAKER_FRAME: &str = "00017fff0001000100ffff02ff020001010101027f7f";
const SEED: u64 = 0x5eed_0006;
const RANDOM_FRAMES: usize = 200;
const SHAPED_FRAMES: usize = 200;

/// xorshift64*: a deterministic generator for a seed (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn body(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0, kind];
    out.extend_from_slice(payload);
    out
}

/// Random payloads for the raft kinds, as the breaker's `controller_fuzz.py` makes them.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let kind = rng.pick(&[
        KIND_APPEND_ENTRIES,
        KIND_VOTE,
        KIND_PRE_VOTE,
        KIND_FULL_SNAPSHOT,
    ]);
    let len = rng.pick(&[0usize, 1, 2, 3, 5, 8, 13, 20, 40, 100, 300]);
    let payload: Vec<u8> = (0..len)
        .map(|_| {
            let any = rng.below(256) as u8;
            rng.pick(&[0u8, 1, 2, 0x7F, 0x80, 0xFF, any])
        })
        .collect();
    body(kind, &payload)
}

fn log_id(term: u64, node: u64, index: u64) -> LogId<LeaderId<u64, u64>> {
    LogId {
        leader_id: LeaderId {
            term,
            node_id: node,
        },
        index,
    }
}

fn vote(term: u64, node: u64, committed: bool) -> Vote<LeaderId<u64, u64>> {
    Vote {
        leader_id: LeaderId {
            term,
            node_id: node,
        },
        committed,
    }
}

fn membership(ids: &[u64]) -> Membership<u64, BasicNode> {
    let nodes: BTreeMap<u64, BasicNode> = ids
        .iter()
        .map(|id| (*id, BasicNode::new(format!("127.0.0.1:{id}"))))
        .collect();
    Membership::new(vec![ids.iter().copied().collect()], nodes).unwrap()
}

/// Well-encoded raft requests that no peer following the protocol sends: entries that do not
/// follow `prev_log_id` or skip indexes, terms going back or past the leader's vote, senders
/// or memberships naming nodes that are not voters, uncommitted leader votes, snapshots whose
/// data or log ids are nonsense.
fn shaped_frame(rng: &mut Rng) -> Vec<u8> {
    let term = 1 + rng.below(1_000_000);
    let node = rng.pick(&[1u64, 2, 3]);
    let stranger = rng.pick(&[0u64, 4, 99, u64::MAX]);
    let index = rng.below(1 << 40);
    let entry = |t, n, i| Entry {
        log_id: log_id(t, n, i),
        payload: EntryPayload::<RecordBatch, u64, BasicNode>::Normal(RecordBatch(Vec::new())),
    };
    match rng.below(9) {
        0 => {
            // The breaker's kind: the first entry does not follow prev_log_id.
            let skip = 2 + rng.below(1000);
            let prev = rng.pick(&[None, Some(log_id(term, node, index))]);
            let req = AppendEntriesRequest::<QuorumTypes> {
                vote: vote(term, node, true),
                prev_log_id: prev,
                entries: vec![entry(term, node, index + skip)],
                leader_commit: None,
            };
            body(KIND_APPEND_ENTRIES, &postcard::to_allocvec(&req).unwrap())
        }
        1 => {
            // A gap or a repeat inside the batch.
            let second = rng.pick(&[index, index + 2, index + 7]);
            let req = AppendEntriesRequest::<QuorumTypes> {
                vote: vote(term, node, true),
                prev_log_id: None,
                entries: vec![entry(term, node, 0), entry(term, node, second)],
                leader_commit: None,
            };
            body(KIND_APPEND_ENTRIES, &postcard::to_allocvec(&req).unwrap())
        }
        2 => {
            // Entries of a later term than the sender's vote, or going back.
            let (first, second) = rng.pick(&[(term + 1, term + 1), (term, term - 1)]);
            let req = AppendEntriesRequest::<QuorumTypes> {
                vote: vote(term, node, true),
                prev_log_id: Some(log_id(term - 1, node, index)),
                entries: vec![
                    entry(first, node, index + 1),
                    entry(second, node, index + 2),
                ],
                leader_commit: Some(log_id(term + rng.below(2), node, index)),
            };
            body(KIND_APPEND_ENTRIES, &postcard::to_allocvec(&req).unwrap())
        }
        3 => {
            // A sender that is no voter, or an uncommitted leader vote.
            let (from, committed) = rng.pick(&[(stranger, true), (node, false)]);
            let req = AppendEntriesRequest::<QuorumTypes> {
                vote: vote(term, from, committed),
                prev_log_id: None,
                entries: vec![entry(term, from, 0)],
                leader_commit: None,
            };
            body(KIND_APPEND_ENTRIES, &postcard::to_allocvec(&req).unwrap())
        }
        4 => {
            // A membership entry that adds a node.
            let req = AppendEntriesRequest::<QuorumTypes> {
                vote: vote(term, node, true),
                prev_log_id: None,
                entries: vec![Entry {
                    log_id: log_id(term, node, 0),
                    payload: EntryPayload::Membership(membership(&[1, 2, 3, stranger])),
                }],
                leader_commit: None,
            };
            body(KIND_APPEND_ENTRIES, &postcard::to_allocvec(&req).unwrap())
        }
        5 | 6 => {
            // A vote from a stranger, a committed candidate vote, a log past the vote.
            let req = match rng.below(3) {
                0 => VoteRequest::<QuorumTypes>::new(vote(term, stranger, false), None),
                1 => VoteRequest::new(vote(term, node, true), None),
                _ => VoteRequest::new(vote(term, node, false), Some(log_id(term + 1, node, 5))),
            };
            let kind = rng.pick(&[KIND_VOTE, KIND_PRE_VOTE]);
            body(kind, &postcard::to_allocvec(&req).unwrap())
        }
        _ => {
            // Snapshots: data that is no image, no last log id, a future one, a stranger.
            let (last, leader, data): (_, _, Vec<u8>) = match rng.below(4) {
                0 => (Some(log_id(term, node, index)), node, vec![0xFF; 16]),
                1 => (None, node, Vec::new()),
                2 => (Some(log_id(term + 1, node, index)), node, Vec::new()),
                _ => (Some(log_id(term, node, index)), stranger, Vec::new()),
            };
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: StoredMembership::new(None, membership(&[1, 2, 3])),
            };
            let req = (vote(term, leader, true), meta, data);
            body(KIND_FULL_SNAPSHOT, &postcard::to_allocvec(&req).unwrap())
        }
    }
}

/// Sends one frame on a fresh connection and waits (briefly) for the answer or the close.
fn send(addr: SocketAddr, frame_bytes: &[u8]) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return;
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let _ = stream.write_all(frame_bytes);
    let mut buf = [0u8; 256];
    let _ = stream.read(&mut buf);
}

fn assert_healthy(cluster: &mut Cluster, topic: &str) {
    for i in 0..3 {
        assert!(cluster.broker_mut(i).is_running(), "node {} died", i + 1);
    }
    wait_until(Duration::from_secs(30), "one active controller", || {
        cluster.controller_index(0).is_some()
    });
    assert_eq!(cluster.create_topic(topic, 3, Duration::from_secs(30)), 0);
    wait_until(
        Duration::from_secs(30),
        "every broker's Metadata with the new topic, the same everywhere",
        || {
            let views: Vec<_> = (0..3).map(|i| topics_view(&cluster.metadata(i))).collect();
            views[0].iter().any(|t| t.0 == topic) && views.iter().all(|v| *v == views[0])
        },
    );
}

#[test]
fn malformed_raft_frames_never_stop_a_quorum_member() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    let breaker = frame(
        &(0..BREAKER_FRAME.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&BREAKER_FRAME[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>(),
    );
    for i in 0..3 {
        send(cluster.controller_addr(i), &breaker);
    }
    assert_healthy(&mut cluster, "after-breaker-frame");
    let mut rng = Rng(SEED);
    for n in 0..RANDOM_FRAMES + SHAPED_FRAMES {
        let target = cluster.controller_addr(n % 3);
        let bytes = if n % 2 == 0 {
            random_frame(&mut rng)
        } else {
            shaped_frame(&mut rng)
        };
        send(target, &frame(&bytes));
    }
    assert_healthy(&mut cluster, "after-random-frames");
    let mut refused = 0;
    for i in 0..3 {
        let log = cluster.broker(i).log_text();
        assert!(!log.contains("panicked"), "node {} panicked:\n{log}", i + 1);
        refused += log.matches("refused a malformed raft request").count();
    }
    // The breaker's frame on each node and every shaped frame were refused by the validator
    // (not merely rejected by openraft).
    assert!(
        refused >= SHAPED_FRAMES + 3,
        "only {refused} refusals logged"
    );
}

/// A quorum member that stops on a fatal error (here: its metadata directory vanished, so the
/// next snapshot cannot be written) ends the process with the fatal exit code, as Kafka's
/// `ProcessTerminatingFaultHandler` halts a broker whose raft thread failed, instead of serving
/// on with a dead quorum member.
#[test]
fn a_fatal_quorum_error_ends_the_process() {
    let opts = ClusterOpts {
        nodes: 1,
        extra_toml: "\"metadata.log.max.entries.between.snapshots\" = 3\n".into(),
        ..ClusterOpts::default()
    };
    let mut cluster = Cluster::start(opts);
    let dir = cluster.broker(0).data_dir().join("__cluster_metadata-0");
    assert!(dir.is_dir(), "{dir:?}");
    std::fs::rename(&dir, dir.with_extension("moved")).unwrap();
    // Metadata records until a snapshot is due (each topic is one or more entries); the node
    // may die during a request, so each runs on a thread whose panic is expected.
    for n in 0..5 {
        let broker = cluster.broker_mut(0);
        if !broker.is_running() {
            break;
        }
        let addr = broker.socket_addr();
        let create = move || common::cluster::create_topic(addr, &format!("t{n}"), 1);
        let _ = std::thread::spawn(create).join();
    }
    let status = cluster
        .broker_mut(0)
        .wait_for_exit(Duration::from_secs(30))
        .expect("the node still runs with a dead quorum member");
    assert_eq!(status.code(), Some(70), "{status:?}");
    assert!(cluster
        .broker(0)
        .log_text()
        .contains("controller quorum member stopped on a fatal error"));
}
