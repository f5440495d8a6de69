//! Kafka's `connections.max.idle.ms` for one client connection: when bytes last moved on it,
//! and whether a response is being written, so the reader can close a connection that stayed
//! idle too long (Kafka's `Selector` idle expiry, default 10 minutes).
//!
//! Invariants: a connection counts as active while a response is being written (a slow reader
//! draining a large fetch is not idle) and whenever bytes were read, a request was handled or a
//! response written within the limit; a negative limit never expires, as Kafka's (no idle
//! expiry manager). Without it, connections whose client vanished without a FIN (a dropped NAT
//! entry, a powered-off host) would be held forever and, once `max.connections.per.shard` of
//! them piled up, every new client would be refused.

use std::cell::Cell;
use std::time::{Duration, Instant};

pub struct Activity {
    last: Cell<Instant>,
    writing: Cell<bool>,
    max_idle: Option<Duration>,
}

impl Activity {
    /// `max_idle_ms` as Kafka's `connections.max.idle.ms`: negative = never idle.
    pub fn new(max_idle_ms: i64) -> Self {
        Self {
            last: Cell::new(Instant::now()),
            writing: Cell::new(false),
            max_idle: u64::try_from(max_idle_ms).ok().map(Duration::from_millis),
        }
    }

    /// Bytes moved or a request was handled just now.
    pub fn touch(&self) {
        self.last.set(Instant::now());
    }

    /// A response write starts (`true`) or ends (`false`, which also counts as activity).
    pub fn set_writing(&self, writing: bool) {
        self.writing.set(writing);
        self.touch();
    }

    /// Completes once the connection has been idle for the limit (never without one). One
    /// future may be polled again and again over the connection's life: it re-reads the last
    /// activity each time its timer fires.
    pub async fn expired(&self) {
        let Some(max_idle) = self.max_idle else {
            return std::future::pending().await;
        };
        loop {
            let idle = self.last.get().elapsed();
            if !self.writing.get() && idle >= max_idle {
                return;
            }
            let left = match self.writing.get() {
                true => max_idle,
                false => max_idle.saturating_sub(idle),
            };
            compio::time::sleep(left).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_limit_never_expires_and_zero_expires_at_once() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let never = Activity::new(-1);
            let waited = compio::time::timeout(Duration::from_millis(50), never.expired()).await;
            assert!(waited.is_err(), "a negative limit must never expire");
            let at_once = Activity::new(0);
            let waited = compio::time::timeout(Duration::from_millis(50), at_once.expired()).await;
            assert!(waited.is_ok(), "a zero limit expires at once");
        });
    }

    #[test]
    fn activity_and_writing_push_the_expiry_back() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let activity = Activity::new(60);
            let started = Instant::now();
            activity.set_writing(true);
            let writer = async {
                compio::time::sleep(Duration::from_millis(150)).await;
                activity.set_writing(false);
            };
            let (_, ()) = futures_util::join!(writer, activity.expired());
            // Not before the write ended (150 ms) plus the limit (60 ms).
            assert!(
                started.elapsed() >= Duration::from_millis(200),
                "expired after {:?}",
                started.elapsed()
            );
        });
    }
}
