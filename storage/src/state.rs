//! `State`: the mutable offsets and segment map of one `Log`, shared (through
//! `Rc<RefCell<..>>`) by the log and its group-commit fsync tasks (`commit.rs`).
//!
//! Invariants: `log_start <= log_end`; `durable_end <= log_end` except transiently during
//! truncation (which bumps `generation` so an fsync started before it cannot move
//! `durable_end`); the last segment of `segments` is the active one.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::checkpoint::Checkpoint;
use crate::error::StorageError;
use crate::offset::TimestampOffset;
use crate::segment::Segment;

pub(crate) struct State {
    pub segments: BTreeMap<i64, Rc<Segment>>,
    pub log_start: i64,
    pub log_end: i64,
    pub durable_end: i64,
    pub recovery_point: i64,
    pub max_ts: Option<TimestampOffset>,
    /// Records appended since open (never reset).
    pub appended_messages_total: u64,
    /// `appended_messages_total` as of the last completed fsync's start.
    pub flushed_messages_total: u64,
    pub oldest_unflushed_ms: Option<i64>,
    /// Broker wall clock of the last append (segments, fsync start times).
    pub last_now_ms: i64,
    /// Bumped by truncation: an fsync started before it proves nothing about what follows.
    pub generation: u64,
    pub closed: bool,
    /// Appends queued or being written and not yet answered (`append.rs`): the shard's sync
    /// batch lets them land before it starts this log's fsync (`sync.rs`).
    pub appends_in_flight: u32,
}

impl State {
    pub fn active(&self) -> Result<Rc<Segment>, StorageError> {
        if self.closed {
            return Err(StorageError::Closed);
        }
        self.segments
            .values()
            .next_back()
            .cloned()
            .ok_or(StorageError::Closed)
    }

    pub fn recompute_max_ts(&mut self) {
        self.max_ts = None;
        for seg in self.segments.values() {
            if let Some(m) = seg.max_ts.get() {
                if self
                    .max_ts
                    .is_none_or(|cur| m.timestamp_ms > cur.timestamp_ms)
                {
                    self.max_ts = Some(m);
                }
            }
        }
    }

    pub fn unflushed_messages(&self) -> u64 {
        self.appended_messages_total
            .saturating_sub(self.flushed_messages_total)
    }

    /// An fsync that started at (`end`, `messages_total`, `started_ms`) in `generation`
    /// completed: advance to what it covers, no further.
    pub fn mark_durable(
        &mut self,
        end: i64,
        messages_total: u64,
        started_ms: i64,
        generation: u64,
    ) {
        if generation != self.generation {
            return;
        }
        self.durable_end = self.durable_end.max(end.min(self.log_end));
        self.flushed_messages_total = self.flushed_messages_total.max(messages_total);
        // Appends the fsync did not cover came after it started.
        self.oldest_unflushed_ms = (self.unflushed_messages() > 0).then(|| {
            self.oldest_unflushed_ms
                .map_or(started_ms, |t| t.max(started_ms))
        });
    }

    /// Truncation: fsyncs in flight no longer count; nothing is left unflushed by policy.
    pub fn reset_durability(&mut self) {
        self.generation += 1;
        self.durable_end = self.durable_end.min(self.log_end);
        self.flushed_messages_total = self.appended_messages_total;
        self.oldest_unflushed_ms = None;
    }

    pub(crate) fn checkpoint(&self, clean_shutdown: bool) -> Checkpoint {
        Checkpoint {
            log_start_offset: self.log_start,
            recovery_point: self.recovery_point,
            clean_shutdown,
        }
    }
}
