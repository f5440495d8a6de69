//! Process-wide stop signals: the cooperative `Shutdown` flag every shard watches, and `fatal`,
//! the non-cooperative stop for unrecoverable errors.
//!
//! Invariants:
//! - `Shutdown` only ever goes from "running" to "triggered", never back;
//! - waiting is event-driven (an `event_listener::Event`), so idle shards do not poll the flag;
//! - `fatal` never returns and never lets a shard keep serving.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// Exit code of [`fatal`]: EX_SOFTWARE from sysexits.h.
pub const FATAL_EXIT_CODE: i32 = 70;

/// Shared "please stop" flag. Cloning shares the same flag; `Send + Sync`.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    event: Event,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop accepting work, drain, flush and return. Idempotent.
    pub fn trigger(&self) {
        if !self.inner.triggered.swap(true, Ordering::SeqCst) {
            self.inner.event.notify(usize::MAX);
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Completes once `trigger` has been called (at once if it already was).
    pub async fn wait(&self) {
        loop {
            if self.is_triggered() {
                return;
            }
            // Register before the second check so a trigger in between is not missed.
            let listener = self.inner.event.listen();
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }
}

/// Logs `msg` at error level and terminates the whole process with exit code 70 (EX_SOFTWARE)
/// right away, so no shard keeps serving after an unrecoverable error (e.g. fsync EIO).
pub fn fatal(msg: impl std::fmt::Display) -> ! {
    tracing::error!("fatal: {msg}");
    // Also straight to stderr: the tracing subscriber may be missing or buffered.
    eprintln!("fatal: {msg}");
    std::process::exit(FATAL_EXIT_CODE)
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    #[test]
    fn trigger_is_visible_to_clones_and_wakes_waiters() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_triggered());
        compio::runtime::Runtime::new()
            .expect("compio runtime")
            .block_on(async {
                let mut waiting = pin!(clone.wait());
                assert!(futures_util::poll!(waiting.as_mut()).is_pending());
                shutdown.trigger();
                waiting.await;
                assert!(clone.is_triggered());
                // Already triggered: returns at once, and triggering again is harmless.
                shutdown.trigger();
                clone.wait().await;
            });
    }

    #[test]
    fn wait_wakes_across_threads() {
        let shutdown = Shutdown::new();
        let waiter = shutdown.clone();
        let thread = std::thread::spawn(move || {
            compio::runtime::Runtime::new()
                .expect("compio runtime")
                .block_on(waiter.wait());
            waiter.is_triggered()
        });
        shutdown.trigger();
        assert!(thread.join().expect("waiter thread"));
    }
}
