//! Unit tests of the queue checker (`tests/common/checker.rs`) that the fault tests use: each
//! kind of broken promise (lost, duplicated, reordered, unexpected) is reported, and a clean
//! history (with re-reads and unacknowledged sends) is not.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "common/checker.rs"]
mod checker;

use checker::QueueChecker;

/// Three values acknowledged in order on partition 0 and read back in order: clean, even
/// with a re-read of the same offsets and an unacknowledged send that did (or did not) land.
#[test]
fn a_clean_history_is_clean() {
    let mut c = QueueChecker::new();
    for v in ["s-0", "s-1", "s-2"] {
        c.acked(0, "s", v.as_bytes());
    }
    c.sent(b"s-3");
    c.sent(b"s-4");
    for (o, v) in [(0, "s-0"), (1, "s-1"), (2, "s-2"), (3, "s-3")] {
        c.read(0, o, v.as_bytes());
    }
    c.read(0, 1, b"s-1");
    let report = c.report();
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.acked, report.read), (3, 4));
}

#[test]
fn lost_records_are_reported() {
    let mut c = QueueChecker::new();
    c.acked(0, "s", b"a");
    c.acked(0, "s", b"b");
    c.acked(1, "t", b"c");
    c.read(0, 0, b"a");
    let report = c.report();
    assert_eq!(report.lost, vec![(0, "b".into()), (1, "c".into())]);
    assert!(!report.is_clean());
    assert!(report.to_string().contains("2 lost"));
}

/// A value read at two offsets is a duplicate (a retry written twice); a value acknowledged
/// on one partition and read only on another is lost there.
#[test]
fn duplicates_are_reported() {
    let mut c = QueueChecker::new();
    c.acked(0, "s", b"a");
    c.read(0, 0, b"a");
    c.read(0, 5, b"a");
    let report = c.report();
    assert_eq!(report.duplicated, vec![(0, "a".into(), vec![0, 5])]);
    assert!(report.lost.is_empty());
    let mut c = QueueChecker::new();
    c.acked(0, "s", b"a");
    c.read(1, 0, b"a");
    assert_eq!(c.report().lost, vec![(0, "a".into())]);
}

/// Acknowledged a then b on one stream, stored b before a: reordered. Two streams to one
/// partition interleave freely.
#[test]
fn reordering_within_a_stream_is_reported() {
    let mut c = QueueChecker::new();
    c.acked(0, "s", b"a");
    c.acked(0, "s", b"b");
    c.acked(0, "t", b"x");
    c.acked(0, "t", b"y");
    c.read(0, 0, b"b");
    c.read(0, 1, b"x");
    c.read(0, 2, b"a");
    c.read(0, 3, b"y");
    let report = c.report();
    assert_eq!(
        report.reordered,
        vec![(0, "s".into(), "a".into(), "b".into())]
    );
    assert!(report.lost.is_empty() && report.duplicated.is_empty());
}

/// A value nobody sent, and two different values at one offset, are unexpected.
#[test]
fn unexpected_values_and_offset_conflicts_are_reported() {
    let mut c = QueueChecker::new();
    c.acked(0, "s", b"a");
    c.read(0, 0, b"a");
    c.read(0, 1, b"garbage");
    c.read(0, 0, b"other");
    let report = c.report();
    assert_eq!(report.unexpected.len(), 2, "{report}");
    assert!(report.unexpected.iter().any(|u| u.contains("never sent")));
    assert!(report
        .unexpected
        .iter()
        .any(|u| u.contains("read both a and other")));
}

/// A read record as the fault tests hand it over (`kafka::Received` implements the same).
struct Read(i32, i64, &'static str);

impl checker::ReadRecord for Read {
    fn placed(&self) -> (i32, i64, &[u8]) {
        (self.0, self.1, self.2.as_bytes())
    }
}

/// `read_all` reads every record given, so `assert_clean` passes once everything acknowledged
/// was read and fails (panics with the report) while a record is missing.
#[test]
fn read_all_reads_every_record_and_assert_clean_checks_the_report() {
    let mut c = QueueChecker::new();
    c.acked(0, "s", b"a");
    c.acked(1, "s", b"b");
    c.read_all(&[Read(0, 0, "a")]);
    let missing = std::panic::catch_unwind(|| c.assert_clean());
    assert!(missing.is_err(), "b was acknowledged and not read");
    c.read_all(&[Read(1, 0, "b")]);
    c.assert_clean();
    assert_eq!(c.report().read, 2);
}
