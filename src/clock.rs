//! The broker's one wall clock. Every "now in epoch milliseconds" on the data path (append
//! timestamps, producer-state expiry, group commit timestamps, cleaner horizons, retention)
//! comes from here, so a test can pin or move time instead of sleeping.
//!
//! Invariants: `Clock::system()` is `SystemTime::now()` clamped to `[0, i64::MAX]` ms; a
//! manual clock only moves when its handle says so; a `Clock` is cheap to clone and shard-local
//! (`Rc`), like everything it is handed to.

use std::cell::Cell;
use std::rc::Rc;

/// Wall-clock milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The clock a service reads: the system's, or a manual one a test drives.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Rc<Cell<i64>>>,
}

impl Clock {
    /// The system wall clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock standing at `start_ms` until the returned handle moves it.
    pub fn manual(start_ms: i64) -> (Self, ManualClock) {
        let cell = Rc::new(Cell::new(start_ms));
        (
            Self {
                manual: Some(cell.clone()),
            },
            ManualClock(cell),
        )
    }

    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(cell) => cell.get(),
            None => system_now_ms(),
        }
    }
}

/// The handle that moves a manual [`Clock`].
pub struct ManualClock(Rc<Cell<i64>>);

impl ManualClock {
    pub fn set_ms(&self, now_ms: i64) {
        self.0.set(now_ms);
    }

    pub fn advance_ms(&self, by_ms: i64) {
        self.0.set(self.0.get().saturating_add(by_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let (clock, hand) = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        hand.advance_ms(500);
        assert_eq!(clock.clone().now_ms(), 1_500);
        hand.set_ms(7);
        assert_eq!(clock.now_ms(), 7);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(Clock::system().now_ms() > 1_577_836_800_000);
    }
}
