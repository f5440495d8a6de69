//! Process-wide stop signals: the cooperative `Shutdown` flag every shard watches, and `fatal`,
//! the non-cooperative stop for unrecoverable errors.
//!
//! Invariants:
//! - `Shutdown` only ever goes from "running" to "triggered", never back;
//! - waiting is event-driven (an `event_listener::Event`), so idle shards do not poll the flag;
//! - `trigger` wakes at most one task per runtime thread from the triggering thread: every
//!   waiter on a compio runtime waits on a thread-local event that one relay task per thread
//!   (and per `Shutdown`) notifies from inside that thread. Waking a compio task from a foreign
//!   thread pushes into that runtime's bounded remote-wake queue (64 entries) and spins while it
//!   is full, and `event_listener` wakes while holding its list lock, so waking thousands of
//!   connection tasks of one shard straight from the signal thread deadlocks (the shard, polling
//!   a woken task, blocks on that lock while the signal thread spins on its full queue);
//! - `fatal` never returns and never lets a shard keep serving.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

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
    /// Notified by `trigger` from any thread. Listened to by one relay task per runtime thread,
    /// and directly only by waiters outside a compio runtime.
    event: Event,
}

/// The waiters of one `Shutdown` on one thread; notified on that thread only.
struct Relay {
    inner: Weak<Inner>,
    local: Event,
}

thread_local! {
    /// This thread's relays, one per live `Shutdown` that has a waiter here.
    static RELAYS: RefCell<Vec<Rc<Relay>>> = const { RefCell::new(Vec::new()) };
}

/// Removes its relay from the thread's list when the relay task ends or is dropped (e.g. with
/// its runtime), so a later runtime on the same thread starts a fresh relay.
struct RelayRegistration(Rc<Relay>);

impl Drop for RelayRegistration {
    fn drop(&mut self) {
        let _ = RELAYS.try_with(|relays| {
            if let Ok(mut relays) = relays.try_borrow_mut() {
                relays.retain(|r| !Rc::ptr_eq(r, &self.0));
            }
        });
    }
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

    /// Asks every holder to stop accepting work, drain, flush and return. Idempotent. Wakes at
    /// most one relay task per runtime thread (plus waiters outside any runtime), so it never
    /// blocks on a busy shard however many tasks wait there.
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
            let listener = match self.local_relay() {
                Some(relay) => relay.local.listen(),
                None => self.inner.event.listen(),
            };
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }

    /// The relay of this `Shutdown` on the current thread, started on first use; `None` outside
    /// a compio runtime.
    fn local_relay(&self) -> Option<Rc<Relay>> {
        let found = RELAYS.with(|relays| {
            let mut relays = relays.borrow_mut();
            relays.retain(|r| r.inner.strong_count() > 0);
            relays
                .iter()
                .find(|r| std::ptr::eq(r.inner.as_ptr(), Arc::as_ptr(&self.inner)))
                .cloned()
        });
        if found.is_some() {
            return found;
        }
        let relay = Rc::new(Relay {
            inner: Arc::downgrade(&self.inner),
            local: Event::new(),
        });
        let registration = RelayRegistration(relay.clone());
        let inner = self.inner.clone();
        let spawned = compio::runtime::Runtime::try_with_current(|runtime| {
            runtime.spawn(relay_task(inner, registration)).detach();
        });
        if spawned.is_err() {
            return None;
        }
        RELAYS.with(|relays| relays.borrow_mut().push(relay.clone()));
        Some(relay)
    }
}

/// Waits on the cross-thread event (the only listener of this thread), then wakes this thread's
/// waiters from inside the thread, where a wake-up is a push onto the runtime's local queue.
async fn relay_task(inner: Arc<Inner>, registration: RelayRegistration) {
    loop {
        if inner.triggered.load(Ordering::SeqCst) {
            break;
        }
        let listener = inner.event.listen();
        if inner.triggered.load(Ordering::SeqCst) {
            break;
        }
        listener.await;
    }
    registration.0.local.notify(usize::MAX);
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

    /// Thousands of tasks of one runtime waiting, triggered from another thread: with one
    /// foreign wake per waiter this deadlocks on compio's 64-entry remote-wake queue (the storm
    /// behind a SIGTERM that never stopped a broker with many idle connections).
    #[test]
    fn trigger_from_another_thread_wakes_thousands_of_waiters() {
        const WAITERS: usize = 5_000;
        let shutdown = Shutdown::new();
        let waiter = shutdown.clone();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = compio::runtime::Runtime::new().expect("compio runtime");
            let woken = runtime.block_on(async move {
                let tasks: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let waiter = waiter.clone();
                        compio::runtime::spawn(async move { waiter.wait().await })
                    })
                    .collect();
                // Let every task register before the trigger.
                compio::time::sleep(std::time::Duration::from_millis(50)).await;
                started_tx.send(()).expect("started");
                let mut woken = 0;
                for task in tasks {
                    if task.await.is_ok() {
                        woken += 1;
                    }
                }
                woken
            });
            let _ = done_tx.send(woken);
        });
        started_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("waiters started");
        let trigger = std::thread::spawn(move || shutdown.trigger());
        let woken = done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("every waiter woke within 10 s of the trigger");
        assert_eq!(woken, WAITERS);
        trigger.join().expect("trigger thread");
    }

    #[test]
    fn a_new_runtime_on_the_same_thread_gets_a_fresh_relay() {
        let shutdown = Shutdown::new();
        for _ in 0..2 {
            let runtime = compio::runtime::Runtime::new().expect("compio runtime");
            runtime.block_on(async {
                let mut waiting = pin!(shutdown.wait());
                assert!(futures_util::poll!(waiting.as_mut()).is_pending());
            });
            drop(runtime);
        }
        let waiter = shutdown.clone();
        let thread = std::thread::spawn(move || {
            // Same Shutdown, a runtime on a thread that has never waited on it.
            compio::runtime::Runtime::new()
                .expect("compio runtime")
                .block_on(waiter.wait());
        });
        compio::runtime::Runtime::new()
            .expect("compio runtime")
            .block_on(async {
                let mut waiting = pin!(shutdown.wait());
                assert!(futures_util::poll!(waiting.as_mut()).is_pending());
                let trigger = shutdown.clone();
                std::thread::spawn(move || trigger.trigger())
                    .join()
                    .expect("trigger");
                waiting.await;
            });
        thread.join().expect("waiter thread");
    }
}
