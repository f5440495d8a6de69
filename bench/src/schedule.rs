//! Send schedule: the rate limiter for fixed-rate runs, and the clock all timestamps use.
//!
//! To avoid coordinated omission, the limiter never measures from "when we got round to
//! sending": message `k` of the whole run (over all producers) has the intended time
//! `start + k / rate`, computed from `k` alone, and latency is measured from it. A producer
//! that falls behind sends immediately (catch-up) but the intended times do not move, so its
//! stall shows up as latency instead of silently lowering the offered load.

use std::time::{Duration, Instant};

/// A monotonic clock in nanoseconds since the run started; shared by producers and consumers
/// (one process) so end-to-end latency needs no cross-host clock sync.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
}

impl RunClock {
    pub fn starting_now() -> RunClock {
        RunClock {
            start: Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The intended send times of one producer out of `producer_count`, sharing a total rate.
/// Producer `j` owns global message indices `j, j + n, j + 2n, ...`, so the producers
/// interleave evenly instead of bursting together.
#[derive(Debug, Clone)]
pub struct FixedRateSchedule {
    start_ns: u64,
    rate_msgs_per_s: u64,
    producer_index: u64,
    producer_count: u64,
    next_local: u64,
}

impl FixedRateSchedule {
    pub fn new(
        start_ns: u64,
        rate_msgs_per_s: u64,
        producer_index: u32,
        producer_count: u32,
    ) -> FixedRateSchedule {
        assert!(rate_msgs_per_s > 0, "fixed rate is positive");
        assert!(producer_index < producer_count, "producer index in range");
        FixedRateSchedule {
            start_ns,
            rate_msgs_per_s,
            producer_index: u64::from(producer_index),
            producer_count: u64::from(producer_count),
            next_local: 0,
        }
    }

    /// Intended time of this producer's `local`-th message, in run-clock nanoseconds.
    pub fn intended_ns(&self, local: u64) -> u64 {
        let global =
            u128::from(local) * u128::from(self.producer_count) + u128::from(self.producer_index);
        let offset = global * 1_000_000_000 / u128::from(self.rate_msgs_per_s);
        self.start_ns
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// The next message's intended time; advances the schedule. Independent of wall time.
    pub fn next_intended_ns(&mut self) -> u64 {
        let t = self.intended_ns(self.next_local);
        self.next_local += 1;
        t
    }

    /// Sleeps until `intended_ns` if it is in the future; returns at once when behind.
    /// Sleeping (not spinning) leaves the cores to librdkafka; the sleep's overshoot is
    /// counted in latency because latency is taken from the intended time.
    pub fn wait_until(clock: &RunClock, intended_ns: u64) {
        let now = clock.now_ns();
        if intended_ns > now {
            std::thread::sleep(Duration::from_nanos(intended_ns - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_intended_times_at_10k_are_exactly_spaced() {
        let mut s = FixedRateSchedule::new(5_000, 10_000, 0, 1);
        let times: Vec<u64> = (0..1000).map(|_| s.next_intended_ns()).collect();
        assert_eq!(times[0], 5_000);
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], 100_000, "100 us apart at 10k/s");
        }
        assert_eq!(times[999], 5_000 + 999 * 100_000);
    }

    #[test]
    fn producers_interleave_and_sum_to_the_total_rate() {
        // 3 producers at 30k/s total: merged, the times are a single 33.3us grid.
        let mut all: Vec<u64> = (0..3)
            .flat_map(|j| {
                let mut s = FixedRateSchedule::new(0, 30_000, j, 3);
                (0..100).map(move |_| s.next_intended_ns())
            })
            .collect();
        all.sort_unstable();
        for (k, t) in all.iter().enumerate() {
            assert_eq!(*t, (k as u64) * 1_000_000_000 / 30_000);
        }
    }

    #[test]
    fn slow_consumer_of_the_limiter_does_not_shift_intended_times() {
        let clock = RunClock::starting_now();
        let start = clock.now_ns();
        let mut s = FixedRateSchedule::new(start, 10_000, 0, 1);
        let first = s.next_intended_ns();
        // The caller stalls for 20 ms (200 message slots) before asking again.
        std::thread::sleep(Duration::from_millis(20));
        let second = s.next_intended_ns();
        assert_eq!(first, start);
        assert_eq!(second, start + 100_000, "schedule ignores the stall");
        // Being behind, wait_until returns immediately (catch-up), not after 100 us more.
        let before = std::time::Instant::now();
        FixedRateSchedule::wait_until(&clock, second);
        assert!(before.elapsed() < Duration::from_millis(5));
        assert!(
            clock.now_ns() - second >= 19_000_000,
            "latency includes the stall"
        );
    }

    #[test]
    fn wait_until_waits_for_future_times() {
        let clock = RunClock::starting_now();
        let target = clock.now_ns() + 3_000_000;
        FixedRateSchedule::wait_until(&clock, target);
        assert!(clock.now_ns() >= target);
    }
}
