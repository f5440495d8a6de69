//! Commit latency and throughput of the controller quorum (`sluice::cluster::quorum`): three
//! members in this process, on loopback ports picked at run time, each with its own metadata
//! dir (fsync per append, as in production), Kafka's default quorum timeouts.
//!
//! 1. latency: `--sequential` proposals of one record, one at a time, through the leader:
//!    p50 / p99 / max from `propose` to its answer (committed on a majority and applied on the
//!    leader);
//! 2. throughput: `--concurrency` proposers in flight, batches of `--batch` records, for
//!    `--total` records: records/s and batches/s.
//!
//!   cargo run --release --example quorum_bench -- [--sequential 2000] [--total 100000] \
//!       [--batch 1,100] [--concurrency 64] [--dir /path/on/the/disk/to/test]

// A tool, not the broker: a failed step should stop it loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::TcpListener;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use sluice::cluster::quorum::{
    MetadataApplier, MetadataRecord, Quorum, QuorumConfig, QuorumHandle, RecordError, Voter,
};

/// Counts what it applies: the bench measures the quorum, not an image.
#[derive(Default)]
struct Counter(u64);

impl MetadataApplier for Counter {
    fn apply(&mut self, _offset: u64, _record: &MetadataRecord) {
        self.0 += 1;
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| RecordError::Invalid("counter snapshot is 8 bytes"))?;
        self.0 = u64::from_be_bytes(bytes);
        Ok(())
    }
}

#[derive(Parser)]
struct Args {
    /// Sequential one-record proposals for the latency figure.
    #[arg(long, default_value_t = 2000)]
    sequential: usize,
    /// Records per throughput run.
    #[arg(long, default_value_t = 100_000)]
    total: usize,
    /// Records per proposal in the throughput runs (comma-separated: one run each).
    #[arg(long, default_value = "1,100", value_delimiter = ',')]
    batch: Vec<usize>,
    /// Proposals in flight in the throughput runs.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Parent of the members' metadata dirs (default: the system temp dir).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn record(i: usize) -> MetadataRecord {
    MetadataRecord::PartitionChange(sluice::cluster::records::PartitionChangeRecord {
        partition_id: (i % 1000) as u32,
        topic_id: sluice::cluster::records::TopicId(i as u128 / 1000),
        isr: Some(vec![1, 2, 3]),
        leader: 1,
        replicas: None,
        removing_replicas: None,
        adding_replicas: None,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir_in(&parent).expect("tempdir"))
        .collect();
    let listeners: Vec<_> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let voters: Vec<Voter> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| Voter {
            node_id: i as u64 + 1,
            addr: l.local_addr().expect("addr"),
        })
        .collect();
    let members: Vec<QuorumHandle> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let config = QuorumConfig::new(
                i as u64 + 1,
                voters.clone(),
                dirs[i].path().join("metadata"),
            );
            let applier = Box::new(Counter::default());
            Quorum::start_with_listener(config, applier, listener).expect("start")
        })
        .collect();
    let started = Instant::now();
    let leader = loop {
        let leaders: Vec<_> = members.iter().map(|m| m.leader()).collect();
        if let Some(Some(l)) = leaders.first() {
            if leaders.iter().all(|x| x == &Some(*l)) {
                break (*l - 1) as usize;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no leader");
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "leader elected in {:?} (node {})",
        started.elapsed(),
        leader + 1
    );
    let members = Rc::new(members);
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut latencies = Vec::with_capacity(args.sequential);
        for i in 0..args.sequential {
            let t = Instant::now();
            members[leader].propose(vec![record(i)]).await.expect("propose");
            latencies.push(t.elapsed());
        }
        latencies.sort();
        if !latencies.is_empty() {
            println!(
                "sequential commit latency, {} proposals of 1 record: p50 {:?} p99 {:?} max {:?}",
                latencies.len(),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                latencies[latencies.len() - 1]
            );
        }
        for &batch in &args.batch {
            let proposals = args.total.div_ceil(batch);
            let next = Rc::new(std::cell::Cell::new(0usize));
            let t = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..args.concurrency {
                let (members, next) = (members.clone(), next.clone());
                tasks.push(compio::runtime::spawn(async move {
                    loop {
                        let n = next.get();
                        if n >= proposals {
                            return;
                        }
                        next.set(n + 1);
                        let records = (0..batch).map(|j| record(n * batch + j)).collect();
                        members[leader].propose(records).await.expect("propose");
                    }
                }));
            }
            for task in tasks {
                task.await.expect("proposer");
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "throughput, {} in flight, {} records/proposal: {:.0} records/s ({:.0} proposals/s, {} records in {:.2} s)",
                args.concurrency,
                batch,
                (proposals * batch) as f64 / secs,
                proposals as f64 / secs,
                proposals * batch,
                secs
            );
        }
    });
    let members = Rc::try_unwrap(members).ok().expect("members");
    for member in members {
        member.shutdown();
    }
}
