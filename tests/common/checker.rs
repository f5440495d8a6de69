//! A queue checker for fault tests (replication, kill -9, partitions): producers record what
//! they sent and what was acknowledged, consumers record what they read, and the checker
//! reports every way the log broke Kafka's promise to an acks=all producer:
//!
//! - **lost**: acknowledged, never read;
//! - **duplicated**: one value read at two or more different offsets (a retry written twice);
//! - **reordered**: two values acknowledged in one order on one (partition, stream) and
//!   stored in the other order (a stream is one producer's sequence to one partition, which
//!   Kafka keeps in order with idempotence);
//! - **unexpected**: a value read that no producer sent, or two different values read at the
//!   same offset (replicas that diverged and were both served).
//!
//! Values must be unique across the test (e.g. `"<stream>-<seq>"`). Re-reading the same
//! (offset, value), as a consumer does after a rebalance or a restart, is not a duplicate.
//! Sent-but-unacknowledged values may or may not appear (both are correct).
//!
//! Invariants: the checker only holds what it is given; `report` does not change it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// A record a consumer read, as the checker takes it: (partition, offset, value).
pub trait ReadRecord {
    fn placed(&self) -> (i32, i64, &[u8]);
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct QueueChecker {
    sent: HashSet<Vec<u8>>,
    /// (partition, stream) -> values in acknowledgement order.
    acked: BTreeMap<(i32, String), Vec<Vec<u8>>>,
    /// (partition, offset) -> value read there.
    read: BTreeMap<(i32, i64), Vec<u8>>,
    /// Offsets where a second, different value was read.
    conflicts: Vec<(i32, i64, Vec<u8>, Vec<u8>)>,
}

/// What `report` found; `is_clean` when nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub acked: usize,
    pub read: usize,
    /// (partition, value)
    pub lost: Vec<(i32, String)>,
    /// (partition, value, offsets)
    pub duplicated: Vec<(i32, String, Vec<i64>)>,
    /// (partition, stream, earlier-acked value, later-acked value stored before it)
    pub reordered: Vec<(i32, String, String, String)>,
    /// Human-readable: a foreign value, or two values at one offset.
    pub unexpected: Vec<String>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
            && self.unexpected.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} acknowledged, {} read: {} lost, {} duplicated, {} reordered, {} unexpected",
            self.acked,
            self.read,
            self.lost.len(),
            self.duplicated.len(),
            self.reordered.len(),
            self.unexpected.len()
        )?;
        for (p, v) in self.lost.iter().take(20) {
            writeln!(f, "  lost: partition {p} value {v}")?;
        }
        for (p, v, o) in self.duplicated.iter().take(20) {
            writeln!(f, "  duplicated: partition {p} value {v} at offsets {o:?}")?;
        }
        for (p, s, a, b) in self.reordered.iter().take(20) {
            writeln!(
                f,
                "  reordered: partition {p} stream {s}: {b} stored before {a}"
            )?;
        }
        for u in self.unexpected.iter().take(20) {
            writeln!(f, "  unexpected: {u}")?;
        }
        Ok(())
    }
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

impl QueueChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A value handed to a producer (it may or may not be acknowledged).
    pub fn sent(&mut self, value: &[u8]) {
        self.sent.insert(value.to_vec());
    }

    /// A value acknowledged to its producer, in the order the acknowledgements came on this
    /// (partition, stream). Implies `sent`.
    pub fn acked(&mut self, partition: i32, stream: &str, value: &[u8]) {
        self.sent.insert(value.to_vec());
        self.acked
            .entry((partition, stream.to_owned()))
            .or_default()
            .push(value.to_vec());
    }

    /// Every record of `received`, read.
    pub fn read_all<'a, R: ReadRecord + 'a>(&mut self, received: impl IntoIterator<Item = &'a R>) {
        for r in received {
            let (partition, offset, value) = r.placed();
            self.read(partition, offset, value);
        }
    }

    /// Asserts the report finds nothing wrong.
    pub fn assert_clean(&self) {
        let report = self.report();
        assert!(report.is_clean(), "{report:?}");
    }

    /// A value a consumer read at `offset` of `partition`.
    pub fn read(&mut self, partition: i32, offset: i64, value: &[u8]) {
        match self.read.get(&(partition, offset)) {
            Some(existing) if existing.as_slice() != value => {
                self.conflicts
                    .push((partition, offset, existing.clone(), value.to_vec()));
            }
            Some(_) => {}
            None => {
                self.read.insert((partition, offset), value.to_vec());
            }
        }
    }

    pub fn report(&self) -> CheckReport {
        let mut report = CheckReport {
            acked: self.acked.values().map(Vec::len).sum(),
            read: self.read.len(),
            ..CheckReport::default()
        };
        // Where each value was read, per partition.
        let mut offsets: HashMap<(i32, &[u8]), Vec<i64>> = HashMap::new();
        for ((partition, offset), value) in &self.read {
            offsets
                .entry((*partition, value.as_slice()))
                .or_default()
                .push(*offset);
            if !self.sent.contains(value) {
                report.unexpected.push(format!(
                    "partition {partition} offset {offset}: value {} was never sent",
                    text(value)
                ));
            }
        }
        for (partition, offset, a, b) in &self.conflicts {
            report.unexpected.push(format!(
                "partition {partition} offset {offset}: read both {} and {}",
                text(a),
                text(b)
            ));
        }
        for ((partition, value), at) in &offsets {
            if at.len() > 1 {
                report
                    .duplicated
                    .push((*partition, text(value), at.clone()));
            }
        }
        report.duplicated.sort();
        for ((partition, stream), values) in &self.acked {
            let mut previous: Option<(&[u8], i64)> = None;
            for value in values {
                let Some(at) = offsets.get(&(*partition, value.as_slice())) else {
                    report.lost.push((*partition, text(value)));
                    continue;
                };
                let first = at.iter().copied().min().unwrap_or(-1);
                if let Some((before, before_at)) = previous {
                    if first < before_at {
                        report.reordered.push((
                            *partition,
                            stream.clone(),
                            text(before),
                            text(value),
                        ));
                    }
                }
                previous = Some((value.as_slice(), first));
            }
        }
        report
    }
}
