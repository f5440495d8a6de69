use std::{
    collections::BTreeMap,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use compio_log::{debug, instrument};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct TimerRuntime {
    generation: u64,
    wheel: BTreeMap<TimerKey, Option<Waker>>,
}

impl TimerRuntime {
    pub fn new() -> Self {
        Self {
            generation: 0,
            wheel: BTreeMap::default(),
        }
    }

    /// Return true if the timer has completed.
    pub fn is_completed(&self, key: &TimerKey) -> bool {
        !self.wheel.contains_key(key)
    }

    /// Insert a new timer. If the deadline is in the past, return `None`.
    pub fn insert(&mut self, deadline: Instant) -> Option<TimerKey> {
        if deadline <= Instant::now() {
            return None;
        }
        let key = TimerKey {
            deadline,
            generation: self.generation,
        };
        self.wheel.insert(key, None);

        self.generation = self
            .generation
            .checked_add(1)
            .expect("too many timers created");

        Some(key)
    }

    /// Update the waker for a timer.
    pub fn update_waker(&mut self, key: &TimerKey, waker: &Waker) {
        // Only set the waker if the timer is not completed
        let Some(w) = self.wheel.get_mut(key) else {
            return;
        };

        // If there's already a waker set, check for duplication
        if let Some(w) = w
            && waker.will_wake(w)
        {
            return;
        }

        *w = Some(waker.clone())
    }

    /// Cancel a timer.
    pub fn cancel(&mut self, key: &TimerKey) {
        self.wheel.remove(key);
    }

    /// Get the minimum timeout duration for the next poll.
    pub fn min_timeout(&self) -> Option<Duration> {
        self.wheel.first_key_value().map(|(key, _)| {
            let now = Instant::now();
            key.deadline.saturating_duration_since(now)
        })
    }

    /// Wake all the timer futures that have reached their deadline.
    pub fn wake(&mut self) {
        if self.wheel.is_empty() {
            return;
        }

        let now = Instant::now();

        // Sluice patch: the expired timers are taken from the front one by one instead of by
        // `split_off`, which allocates a node on every call (once per turn of the event loop
        // while any timer is set); same timers woken, in the same order.
        while let Some(entry) = self.wheel.first_entry() {
            if entry.key().deadline > now {
                break;
            }
            if let Some(w) = entry.remove() {
                w.wake();
            }
        }
    }

    pub fn poll_timer(&mut self, cx: &mut Context<'_>, key: &TimerKey) -> Poll<()> {
        instrument!(compio_log::Level::DEBUG, "poll_timer", ?cx, ?key);
        if self.is_completed(key) {
            debug!("ready");
            Poll::Ready(())
        } else {
            debug!("pending");
            self.update_waker(key, cx.waker());
            Poll::Pending
        }
    }
}

// Sluice patch: tests of the patched `wake` (deadline order, equal deadlines in insertion
// order, cancelled and not-yet-due timers left alone).
#[cfg(test)]
mod sluice_wake_tests {
    use std::{
        sync::{Arc, Mutex},
        task::{Wake, Waker},
        time::{Duration, Instant},
    };

    use super::TimerRuntime;

    /// A waker that records its label in a shared list when woken.
    struct Label(usize, Arc<Mutex<Vec<usize>>>);

    impl Wake for Label {
        fn wake(self: Arc<Self>) {
            self.1.lock().expect("woken list").push(self.0);
        }
    }

    fn waker(label: usize, woken: &Arc<Mutex<Vec<usize>>>) -> Waker {
        Waker::from(Arc::new(Label(label, woken.clone())))
    }

    /// Sleeps until `deadline` has passed (the wheel compares with `Instant::now()`).
    fn pass(deadline: Instant) {
        while Instant::now() <= deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn due_timers_wake_in_deadline_then_insertion_order_and_others_stay() {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = TimerRuntime::new();
        let base = Instant::now() + Duration::from_millis(30);
        let late = base + Duration::from_secs(60);
        // Inserted out of deadline order; labels 1 and 2 share a deadline, as do 4 and 5.
        let plan = [
            (3, base + Duration::from_millis(2)),
            (1, base),
            (9, late),
            (2, base),
            (4, base + Duration::from_millis(5)),
            (5, base + Duration::from_millis(5)),
            (6, base + Duration::from_millis(3)),
        ];
        let mut keys = Vec::new();
        for (label, deadline) in plan {
            let key = wheel.insert(deadline).expect("a deadline in the future");
            wheel.update_waker(&key, &waker(label, &woken));
            keys.push((label, key));
        }
        let key_of = |label| keys.iter().find(|(l, _)| *l == label).map(|(_, k)| *k);
        // A cancelled timer is never woken, even once due.
        wheel.cancel(&key_of(6).expect("timer 6"));
        // Nothing is due yet.
        wheel.wake();
        assert!(woken.lock().expect("list").is_empty());

        pass(base + Duration::from_millis(5));
        wheel.wake();
        assert_eq!(*woken.lock().expect("list"), vec![1, 2, 3, 4, 5]);
        for label in [1, 2, 3, 4, 5, 6] {
            assert!(wheel.is_completed(&key_of(label).expect("key")), "{label}");
        }
        // The late timer is still set and is the next deadline.
        let nine = key_of(9).expect("timer 9");
        assert!(!wheel.is_completed(&nine));
        let next = wheel.min_timeout().expect("one timer left");
        assert!(next > Duration::from_secs(50), "{next:?}");
        // Waking again wakes nothing more.
        wheel.wake();
        assert_eq!(woken.lock().expect("list").len(), 5);
        wheel.cancel(&nine);
        assert_eq!(wheel.min_timeout(), None);
    }

    #[test]
    fn a_due_timer_without_a_waker_completes_silently() {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = TimerRuntime::new();
        let deadline = Instant::now() + Duration::from_millis(5);
        let silent = wheel.insert(deadline).expect("future deadline");
        let loud = wheel.insert(deadline).expect("future deadline");
        wheel.update_waker(&loud, &waker(7, &woken));
        // A past deadline is not inserted at all.
        assert!(wheel.insert(Instant::now()).is_none());
        pass(deadline);
        wheel.wake();
        assert!(wheel.is_completed(&silent) && wheel.is_completed(&loud));
        assert_eq!(*woken.lock().expect("list"), vec![7]);
    }
}
